"""The size rules the contributing guide states hold for the package.

Modules under 400 lines and functions under 60 (issue 12), except tables: a function
that is one declarative literal (an OpenAPI document's parts, the metric declarations)
is listed in TABLES with why, and a new one must be added there deliberately.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "apprentice"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

#: "module path:qualified name" -> why it is a table, not logic to split.
TABLES = {
    "gateway/openapi.py:_components": "the OpenAPI document's component schemas, a literal",
    "gateway/openapi.py:_public_paths": "the OpenAPI document's public paths, a literal per route",
    "gateway/openapi.py:_admin_paths": "the OpenAPI document's admin paths, a literal per route",
    "reporting/metrics.py:Metrics.__init__": "the Prometheus metric declarations, one per metric",
}


def _modules() -> list[Path]:
    found = sorted(PACKAGE.rglob("*.py"))
    assert len(found) > 100, f"the package was not found under {PACKAGE}"
    return found


def _functions(tree: ast.Module) -> list[tuple[str, int]]:
    """(qualified name, lines with decorators) of every function, nested ones included."""
    out: list[tuple[str, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    first = min([d.lineno for d in child.decorator_list] + [child.lineno])
                    out.append((name, (child.end_lineno or child.lineno) - first + 1))
                walk(child, f"{name}.")
            else:
                walk(child, prefix)

    walk(tree, "")
    return out


def test_modules_are_under_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines (split them): {long}"


def test_functions_are_under_60_lines_except_tables() -> None:
    long: dict[str, int] = {}
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, lines in _functions(tree):
            if lines > MAX_FUNCTION_LINES:
                long[f"{rel}:{name}"] = lines
    untabled = {k: v for k, v in long.items() if k not in TABLES}
    assert untabled == {}, f"functions over {MAX_FUNCTION_LINES} lines (split them): {untabled}"
