"""After a shift: train and judge on what the teacher says *now*.

When the teacher's behaviour changes (a category appears, one is renamed, two
are merged), the examples from before the change contradict it. Two generic
rules, for any task, applied from the time of the last shift, drift or
emergency alarm (``since``):

- **retire the vanished**: a label-like field (a top-level string that takes
  few distinct values, such as a category) whose value the teacher has not
  given once since the change, although it has answered at least
  :data:`MIN_AFTER` times, was renamed or merged away; the examples from
  before the change that carry it are dropped, from training and from the
  held-out split that judges the next version. The held-out split alone holds
  a tenth of the answers, too few to tell soon after the change, so what
  vanished is decided on every answer (``evidence``) and applied to it. A new
  category retires nothing: the old answers are still right.
- **judge on the recent**: once :data:`MIN_RECENT_HELDOUT` held-out answers
  were given since the change, the next version (and the active one it must not
  lose to) is scored on those alone: the old world no longer decides.
- **weight the recent**: examples since the change count ``RECENT_WEIGHT``
  times in training, so a handful of answers about a new category are not
  drowned by thousands from before.

Pure functions over duck-typed examples (``output``, ``created_at``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

__all__ = [
    "MIN_AFTER",
    "MIN_RECENT_HELDOUT",
    "RECENT_WEIGHT",
    "heldout",
    "label_fields",
    "retire",
    "vanished",
]

MIN_AFTER = 30  # answers since the change before a missing value counts as vanished
RECENT_WEIGHT = 3
MIN_RECENT_HELDOUT = 20  # held-out answers since the change that are enough to judge on
MAX_LABELS = 50  # a field with more distinct values is free text, not a label

E = TypeVar("E")


def _get(example: Any, name: str) -> Any:
    if isinstance(example, dict):
        return example.get(name)
    return getattr(example, name, None)


def _is_label(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64 and len(value.split()) <= 3


def label_fields(examples: Iterable[Any]) -> list[str]:
    """Top-level fields whose values are short strings taking few distinct values."""
    values: dict[str, set[str]] = {}
    rejected: set[str] = set()
    for example in examples:
        output = _get(example, "output")
        if not isinstance(output, dict):
            continue
        for key, value in output.items():
            if key in rejected:
                continue
            if not _is_label(value):
                rejected.add(key)
                continue
            values.setdefault(key, set()).add(value)
            if len(values[key]) > MAX_LABELS:
                rejected.add(key)
    return sorted(k for k in values if k not in rejected)


def vanished(examples: Sequence[Any], since: datetime) -> dict[str, set[str]]:
    """Per label field, the values given before ``since`` and never after it."""
    after = [e for e in examples if _created(e) >= since]
    if len(after) < MIN_AFTER:
        return {}
    before = [e for e in examples if _created(e) < since]
    out: dict[str, set[str]] = {}
    for field in label_fields(examples):
        now = {_get(e, "output").get(field) for e in after}
        old = {_get(e, "output").get(field) for e in before}
        gone = {v for v in old - now if isinstance(v, str)}
        if gone:
            out[field] = gone
    return out


def _created(example: Any) -> datetime:
    at = _get(example, "created_at")
    if not isinstance(at, datetime):
        raise ValueError(f"example {_get(example, 'id')!r} has no created_at datetime")
    return at


def retire(
    examples: Sequence[E], since: datetime | None, *, evidence: Sequence[Any] | None = None
) -> tuple[list[E], int]:
    """The examples the teacher still stands by, and how many were retired.

    ``evidence`` (default: ``examples``) are the answers that decide which label
    values vanished: all of the task's answers when only a split is filtered.
    """
    if since is None:
        return list(examples), 0
    gone = vanished(examples if evidence is None else evidence, since)
    if not gone:
        return list(examples), 0
    kept: list[E] = []
    for example in examples:
        output = _get(example, "output")
        stale = _created(example) < since and any(
            output.get(field) in values for field, values in gone.items()
        )
        if not stale:
            kept.append(example)
    return kept, len(examples) - len(kept)


def weights(examples: Sequence[Any], since: datetime | None) -> list[int]:
    """Training repeats per example: ``RECENT_WEIGHT`` since the change, else 1."""
    if since is None:
        return [1] * len(examples)
    return [RECENT_WEIGHT if _created(e) >= since else 1 for e in examples]


def heldout(
    examples: Sequence[E], since: datetime | None, *, evidence: Sequence[Any] | None = None
) -> list[E]:
    """The held-out examples that judge a version: the recent ones when enough exist.

    ``evidence``: every answer of the task (train and held-out), which decides
    what vanished (see :func:`retire`); without it the held-out split decides alone.
    """
    kept, _ = retire(examples, since, evidence=evidence)
    if since is None:
        return kept
    recent = [e for e in kept if _created(e) >= since]
    return recent if len(recent) >= MIN_RECENT_HELDOUT else kept
