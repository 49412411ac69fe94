"""records.request_row builds the same frozen RequestRecord as its constructor."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from apprentice.store import records


def _fields() -> dict[str, object]:
    return {
        "id": "r1", "task": "t", "received_at": datetime(2026, 1, 2, tzinfo=UTC),
        "route": "both", "served_by": "teacher", "teacher_model": "m", "teacher_provider": "p",
        "student_version": "v3", "latency_ms": 1.5, "error": "RateLimited", "cost": 0.25,
        "tags": {"customer": "acme"}, "caller": "key1", "input": {"q": 1}, "output": {"a": 2},
    }  # fmt: skip


def test_every_field_of_the_record_is_a_parameter() -> None:
    params = list(inspect.signature(records.request_row).parameters)
    assert params == [f.name for f in dataclasses.fields(records.RequestRecord)]


def test_the_row_equals_the_constructed_one_and_stays_frozen() -> None:
    fast = records.request_row(**_fields())  # type: ignore[arg-type]
    slow = records.RequestRecord(**_fields())  # type: ignore[arg-type]
    assert fast == slow and repr(fast) == repr(slow)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    assert fast.teacher_called and dataclasses.replace(fast, cost=1.0).cost == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.cost = 2.0  # type: ignore[misc]
