"""Input/output validation against a task's schemas with validators compiled once per task.

``schemas.validation_errors`` compiles a validator on every call; the request path
cannot afford that at thousands of requests per second, so each task's two
validators are built at start-up and reused. ``is_valid`` is the fast path; the
error list (with JSON paths) is only built when a document is invalid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator

from apprentice.config import TaskConfig


def _path(parts: Any) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return text or "<root>"


def _is_integer(v: Any) -> bool:
    # JSON Schema: 1.0 is an integer; a JSON boolean is not a number.
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


# JSON Schema scalar types -> a test of the value a JSON parser produced.
_SCALARS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


def _flat_check(schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """A plain-Python validity test for the common flat shape, or ``None``.

    The shorthand schemas of the seed (an object of scalar, ``dict`` or ``list``
    fields, all required, closed) compile to a few ``isinstance`` checks, an
    order of magnitude cheaper than a jsonschema pass. Any other keyword makes it
    fall back to jsonschema; invalid documents always get jsonschema's messages.
    """
    if set(schema) - {"type", "properties", "required", "additionalProperties"}:
        return None
    if schema.get("type") != "object":
        return None
    props = schema.get("properties", {})
    fields: dict[str, Callable[[Any], bool]] = {}
    for name, sub in props.items():
        if not isinstance(sub, dict) or set(sub) != {"type"} or sub["type"] not in _SCALARS:
            return None
        fields[name] = _SCALARS[sub["type"]]
    required = frozenset(schema.get("required", []))
    closed = schema.get("additionalProperties", True) is False
    if not isinstance(schema.get("additionalProperties", True), bool):
        return None
    allowed = frozenset(fields)

    def check(instance: Any) -> bool:
        if not isinstance(instance, dict):
            return False
        if not required <= instance.keys():
            return False
        if closed and not instance.keys() <= allowed:
            return False
        for key, value in instance.items():
            test = fields.get(key)
            if test is not None and not test(value):
                return False
        return True

    return check


@dataclass(frozen=True)
class SchemaCheck:
    """One compiled JSON Schema validator (with a fast path for flat objects)."""

    validator: Any
    fast: Callable[[Any], bool] | None = None

    @classmethod
    def compile(cls, schema: dict[str, Any]) -> SchemaCheck:
        return cls(Draft202012Validator(schema), _flat_check(schema))

    def errors(self, instance: Any) -> list[dict[str, str]]:
        """Every failure as ``{"path", "message"}``; empty when valid."""
        if self.is_valid(instance):
            return []
        found = sorted(self.validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [{"path": _path(e.absolute_path), "message": e.message} for e in found]

    def is_valid(self, instance: Any) -> bool:
        if self.fast is not None:
            return self.fast(instance)
        return bool(self.validator.is_valid(instance))


@dataclass(frozen=True)
class TaskSchemas:
    """The compiled input and output validators of one task."""

    input: SchemaCheck
    output: SchemaCheck

    @classmethod
    def for_task(cls, task: TaskConfig) -> TaskSchemas:
        return cls(SchemaCheck.compile(task.input_schema), SchemaCheck.compile(task.output_schema))
