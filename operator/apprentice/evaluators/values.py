"""Normalising and comparing JSON values, shared by exact and structured matching.

Both matchers must agree on what "the same answer" means: ``"Billing "`` and
``"billing"`` are the same category when the task says strings compare
ignoring case and whitespace, and ``2`` and ``2.0`` are the same number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from apprentice.config import EvaluatorOptions

__all__ = ["MISSING", "Comparison", "Missing", "lookup", "normalize", "values_equal"]

_SPACE = re.compile(r"\s+")


class Missing:
    """Marker for a path that does not exist in an output (distinct from JSON null)."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<missing>"


MISSING = Missing()


@dataclass(frozen=True)
class Comparison:
    """How strings, numbers and lists compare (from the task's ``evaluator_options``)."""

    case_insensitive: bool = True
    normalize_whitespace: bool = True
    numeric_tolerance: float = 0.0
    lists_as_sets: bool = False

    @classmethod
    def from_options(cls, options: EvaluatorOptions) -> Comparison:
        return cls(
            case_insensitive=options.case_insensitive,
            normalize_whitespace=options.normalize_whitespace,
            numeric_tolerance=options.numeric_tolerance,
            lists_as_sets=options.lists_as_sets,
        )


def _is_number(value: Any) -> bool:
    # bool is an int subclass, but True is an answer, not the number 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def normalize_string(text: str, how: Comparison) -> str:
    if how.normalize_whitespace:
        text = _SPACE.sub(" ", text).strip()
    if how.case_insensitive:
        text = text.casefold()
    return text


def normalize(value: Any, how: Comparison) -> Any:
    """A copy of ``value`` with strings normalised and integral floats as ints.

    Keys are left alone: they come from the schema, not from the model's prose.
    """
    if isinstance(value, str):
        return normalize_string(value, how)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: normalize(item, how) for key, item in value.items()}
    if isinstance(value, list):
        return [normalize(item, how) for item in value]
    return value


def values_equal(left: Any, right: Any, how: Comparison) -> bool:
    """Whether two JSON values agree under ``how`` (recursive, tolerance on numbers)."""
    if _is_number(left) and _is_number(right):
        if how.numeric_tolerance > 0:
            return bool(abs(float(left) - float(right)) <= how.numeric_tolerance)
        return bool(left == right)
    if isinstance(left, str) and isinstance(right, str):
        return normalize_string(left, how) == normalize_string(right, how)
    if isinstance(left, dict) and isinstance(right, dict):
        if left.keys() != right.keys():
            return False
        return all(values_equal(left[key], right[key], how) for key in left)
    if isinstance(left, list) and isinstance(right, list):
        if how.lists_as_sets:
            # Every element has a partner on the other side; order and repeats ignored.
            return all(any(values_equal(a, b, how) for b in right) for a in left) and all(
                any(values_equal(b, a, how) for a in left) for b in right
            )
        return len(left) == len(right) and all(
            values_equal(a, b, how) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return type(left) is type(right) and bool(left == right)


def lookup(output: Any, path: str) -> Any:
    """The value at a dotted path (``a.b``, ``items.0.name``), or :data:`MISSING`."""
    current = output
    for part in path.split("."):
        if isinstance(current, dict):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"-?\d+", part):
            index = int(part)
            if not -len(current) <= index < len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current
