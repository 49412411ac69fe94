"""``errors.md``: every error code the gateway, the CLI and the operator produce.

The codes are collected from the code: the gateway's error tree (the OpenAPI document's
error types are generated from the same tree), the teachers' typed reasons, the config
loader's codes (its own plus the pydantic types it gives a fix for), and the reasons of
the operator's Warning Events and Stalled conditions (read from the ``apprentice.kube``
sources: they are string literals at the call sites). Cause and fix come from
:mod:`apprentice.docs_reference.catalog`. Each entry's anchor is
:func:`apprentice.config.errors.docs_url`'s, so the links error messages carry land on it.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

from apprentice.config import errors as config_errors
from apprentice.docs_reference import ROOT
from apprentice.docs_reference.catalog import ENTRIES
from apprentice.docs_reference.markdown import GENERATED, cell
from apprentice.gateway import errors as gateway_errors
from apprentice.gateway import openapi  # noqa: F401  (imports every module adding to the tree)
from apprentice.kube import task_status

KUBE = ROOT / "operator" / "apprentice" / "kube"

#: The config loader's own codes (the rest are pydantic's types).
CONFIG_CODES = config_errors.LOADER_CODES

SOURCES = (
    ("gateway", "Gateway error types",
     "The `type` of an HTTP error body `{\"error\": {\"type\", \"message\", \"details\", "
     "\"docs\"}}`, and of the exceptions the Python facade raises. `apprentice batch` writes "
     "the same object for each failed line."),
    ("teacher", "Teacher reasons",
     "`details.reason` of a `teacher_unavailable` error, and the `type` label of "
     "`apprentice_errors_total` when the teacher failed."),
    ("config", "Configuration problems",
     "The code of each problem `apprentice validate-config` (and every command that loads "
     "a config) prints, one per line with its path and fix."),
    ("operator", "Operator reasons",
     "Reasons of the operator's Warning Events (`kubectl get events`) and of `Stalled` "
     "conditions (`kubectl describe dt`)."),
)  # fmt: skip


def _subclasses(
    cls: type[gateway_errors.GatewayError],
) -> Iterator[type[gateway_errors.GatewayError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def gateway_codes() -> set[str]:
    """Every type in the tree: those HTTP answers carry and those only the facade raises."""
    base = gateway_errors.GatewayError
    return {base.type} | {sub.type for sub in _subclasses(base)}


def _kube_sources() -> Iterator[Path]:
    yield from sorted(KUBE.rglob("*.py"))


def operator_codes() -> set[str]:
    """Warning Event reasons and Stalled reasons, as written at their call sites."""
    found = set(task_status.WAITING_REASONS)  # Warning Events with a computed reason
    for path in _kube_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            seqs = [node.args] if isinstance(node, ast.Call) else []
            seqs += [node.elts] if isinstance(node, ast.Tuple) else []
            for seq in seqs:
                for a, b in itertools.pairwise(seq):
                    if _const(a) == "Warning" and isinstance(_const(b), str):
                        found.add(str(_const(b)))
            if (
                isinstance(node, ast.keyword)
                and node.arg == "problem_reason"
                and isinstance(value := _const(node.value), str)
            ):
                found.add(value)
            if isinstance(node, ast.arguments):
                for arg, default in zip(node.kwonlyargs, node.kw_defaults, strict=True):
                    if arg.arg == "problem_reason" and default is not None:
                        found.add(str(_const(default)))
    return found


def _const(node: ast.AST) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def codes() -> set[tuple[str, str]]:
    """Every (source, code) the code can produce."""
    return (
        {("gateway", c) for c in gateway_codes()}
        | {("teacher", r) for r in gateway_errors.PROVIDER_REASONS}
        | {("config", c) for c in (*CONFIG_CODES, *config_errors.FIXES, "validation")}
        | {("operator", r) for r in operator_codes()}
    )


_INTRO = """# Errors reference

Every error the gateway, the CLI and the operator produce has a stable code and an entry
here with its cause and its fix. Error messages link to their entry: HTTP error bodies
carry it as `docs`, configuration problems and the CLI's errors end with it, and the
operator's Warning Events append it to their message.
"""

_EXIT_CODES = """
## CLI exit codes {#cli-exit-codes}

| code | meaning |
|---|---|
| 0 | done (`validate-config`: the file is valid; `evaluate`: the evaluator separates the pairs) |
| 1 | the command ran and failed: a config problem, an unreadable file, a store or gateway \
error (the message says which, with its link) |
| 2 | the command line is wrong (argparse's usage error, or a flag value out of range) |
"""


def render() -> str:
    parts = [
        GENERATED.format(
            source="the error codes in the code and apprentice/docs_reference/catalog.py"
        ),
        _INTRO,
    ]
    have = codes()
    for source, title, intro in SOURCES:
        parts.append(f"\n## {title} {{#{source}}}\n\n{intro}\n")
        for code in sorted(c for s, c in have if s == source):
            cause, fix = ENTRIES.get((source, code), ("(undocumented)", "(undocumented)"))
            anchor = config_errors.docs_url(source, code).rsplit("#", 1)[1]
            parts.append(f"\n### `{code}` {{#{anchor}}}\n\n")
            parts.append(f"**Cause.** {cell(cause)}\n\n**Fix.** {cell(fix)}\n")
    parts.append(_EXIT_CODES)
    return "".join(parts)
