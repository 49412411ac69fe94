"""Input/output validation against a task's schemas with validators compiled once per task.

``schemas.validation_errors`` compiles a validator on every call; the request path
cannot afford that at thousands of requests per second, so each task's two
validators are built at start-up and reused. ``is_valid`` is the fast path; the
error list (with JSON paths) is only built when a document is invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from apprentice.config import TaskConfig


def _path(parts: Any) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return text or "<root>"


@dataclass(frozen=True)
class SchemaCheck:
    """One compiled JSON Schema validator."""

    validator: Any

    @classmethod
    def compile(cls, schema: dict[str, Any]) -> SchemaCheck:
        return cls(Draft202012Validator(schema))

    def errors(self, instance: Any) -> list[dict[str, str]]:
        """Every failure as ``{"path", "message"}``; empty when valid."""
        if self.validator.is_valid(instance):
            return []
        found = sorted(self.validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [{"path": _path(e.absolute_path), "message": e.message} for e in found]

    def is_valid(self, instance: Any) -> bool:
        return bool(self.validator.is_valid(instance))


@dataclass(frozen=True)
class TaskSchemas:
    """The compiled input and output validators of one task."""

    input: SchemaCheck
    output: SchemaCheck

    @classmethod
    def for_task(cls, task: TaskConfig) -> TaskSchemas:
        return cls(SchemaCheck.compile(task.input_schema), SchemaCheck.compile(task.output_schema))
