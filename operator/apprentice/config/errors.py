"""Config errors that name the path, a stable code and the fix.

pydantic reports ``('tasks', 0, 'confidence_thresholds')`` and a message; users
need ``tasks[0].confidence_thresholds.coaching_trigger (0.9) must be below
phase2_to_phase3 (0.85)``. Cross-field rules raise :class:`RuleError`, which
carries the field it is about so the path points at the value to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

DOCS = "https://apprentice.dev/docs/reference/errors/"
"""Where each error code has its entry (cause and fix); every issue carries its link there."""

#: Codes the loader gives itself; any other config code is pydantic's error type.
LOADER_CODES = ("rule", "env_missing", "yaml", "type", "file")


def docs_url(source: str, code: str) -> str:
    """The link to ``code``'s entry; ``source`` is gateway, teacher, config or operator.

    Config codes pydantic invents beyond the ones with a fix of their own share the
    ``validation`` entry, so every link lands on an entry that exists.
    """
    if source == "config" and code not in LOADER_CODES and code not in FIXES:
        code = "validation"
    return f"{DOCS}#{source}-{code}"


class RuleError(ValueError):
    """A cross-field rule broken; ``field`` is the key the user should change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where (``path``), a stable ``code``, what is wrong and the fix."""

    path: str
    code: str
    message: str
    fix: str = ""

    @property
    def docs(self) -> str:
        """The link to this code's entry in the errors reference (cause and fix)."""
        return docs_url("config", self.code)

    def __str__(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix else ""
        sep = " " if self.message.startswith("(") else ": "
        return f"{self.path}{sep}{self.message}{fix} [{self.docs}]"


class ConfigError(ValueError):
    """One or more problems with a config; ``str()`` lists them one per line."""

    def __init__(self, issues: list[ConfigIssue], source: str = "<config>") -> None:
        self.issues = issues
        self.source = source
        super().__init__("\n".join(str(i) for i in issues))


def format_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


#: The fix for pydantic's error types that have one (each gets its own errors entry).
FIXES = {
    "extra_forbidden": "remove it or check its spelling against the reference apprentice.yaml",
    "missing": "add it",
    "enum": "use one of the listed values",
    "literal_error": "use one of the listed values",
}


def issues_from(exc: ValidationError) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        ctx = err.get("ctx") or {}
        cause = ctx.get("error")
        if isinstance(cause, RuleError):
            path = format_path((*loc, cause.field))
            issues.append(ConfigIssue(path, "rule", cause.message))
            continue
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] not in ("value_error",) and "input" in err and err["type"] != "missing":
            message = f"{message} (got {err['input']!r})"
        issues.append(
            ConfigIssue(format_path(loc), err["type"], message, FIXES.get(err["type"], ""))
        )
    return issues
