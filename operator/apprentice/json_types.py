"""JSON values as types: what a task's input and answer are, wherever they travel.

A task's input and its answers are JSON objects checked against the task's schemas.
Typing them ``JsonObject`` rather than ``dict[str, Any]`` keeps mypy checking what the
request path does with them: a value read out of one must be narrowed before it is
used as a string or a number, as it would have to be at run time.
"""

from __future__ import annotations

from typing import TypeAlias

__all__ = ["JsonObject", "JsonValue"]

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
"""Any value ``json.loads`` can return."""

JsonObject: TypeAlias = "dict[str, JsonValue]"
"""A JSON object: a task's input or answer, an error's details, a response body."""
