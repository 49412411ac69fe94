"""Task schemas compiled once: the one validator every answer passes through.

``Draft202012Validator(schema)`` costs far more than checking one document, and
an answer used to be checked twice (by the teacher or the student parse, then
again by the gateway), each time compiling a validator. Here each task's two
schemas are compiled once (:func:`for_task`, memoised per task config) and every
layer uses the same objects: the teacher's repair retry, the student's parse,
the gateway's input check. ``is_valid`` is the fast path; the error list (with
JSON paths) is only built when a document is invalid.

This module imports nothing of the project, so teachers, students and the
gateway may all use it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from jsonschema import Draft202012Validator

__all__ = ["HasSchemas", "SchemaCheck", "TaskSchemas", "compiled", "for_task"]


def _path(parts: Iterable[str | int]) -> str:
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
    fields: dict[str, Callable[[Any], bool]] = {}
    for name, sub in schema.get("properties", {}).items():
        if not isinstance(sub, dict) or set(sub) != {"type"} or sub["type"] not in _SCALARS:
            return None
        fields[name] = _SCALARS[sub["type"]]
    if not isinstance(schema.get("additionalProperties", True), bool):
        return None
    required = frozenset(schema.get("required", []))
    closed = schema.get("additionalProperties", True) is False
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

    validator: Draft202012Validator
    fast: Callable[[Any], bool] | None = None

    @classmethod
    def compile(cls, schema: dict[str, Any]) -> SchemaCheck:
        return cls(Draft202012Validator(schema), _flat_check(schema))

    def is_valid(self, instance: Any) -> bool:
        if self.fast is not None:
            return self.fast(instance)
        return bool(self.validator.is_valid(instance))

    def errors(self, instance: Any) -> list[dict[str, str]]:
        """Every failure as ``{"path", "message"}``; empty when valid."""
        if self.is_valid(instance):
            return []
        found = sorted(self.validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [{"path": _path(e.absolute_path), "message": e.message} for e in found]

    def problems(self, instance: Any) -> list[str]:
        """Every failure as ``'path: message'`` (the form sent back in a repair request)."""
        return [f"{e['path']}: {e['message']}" for e in self.errors(instance)]


class HasSchemas(Protocol):
    """A task config: its two normalised JSON Schemas."""

    @property
    def name(self) -> str: ...

    @property
    def input_schema(self) -> dict[str, Any]: ...

    @property
    def output_schema(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TaskSchemas:
    """The compiled input and output validators of one task."""

    input: SchemaCheck
    output: SchemaCheck


_MAX = 512  # task configs held; a long test session builds many, a gateway a few
_lock = threading.Lock()
_tasks: OrderedDict[int, tuple[HasSchemas, TaskSchemas]] = OrderedDict()
_schemas: OrderedDict[int, tuple[dict[str, Any], SchemaCheck]] = OrderedDict()


def for_task(task: HasSchemas) -> TaskSchemas:
    """The task's validators, compiled the first time this config object is seen."""
    hit = _tasks.get(id(task))
    if hit is not None and hit[0] is task:
        return hit[1]
    built = TaskSchemas(compiled(task.input_schema), compiled(task.output_schema))
    with _lock:
        _tasks[id(task)] = (task, built)  # the config is held, so its id is never reused
        while len(_tasks) > _MAX:
            _tasks.popitem(last=False)
    return built


def compiled(schema: dict[str, Any]) -> SchemaCheck:
    """``schema``'s validator, compiled once per schema object (treat schemas as frozen)."""
    hit = _schemas.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    check = SchemaCheck.compile(schema)
    with _lock:
        _schemas[id(schema)] = (schema, check)
        while len(_schemas) > _MAX:
            _schemas.popitem(last=False)
    return check
