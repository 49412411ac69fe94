"""Rows to records and back: time and JSON conversions shared by both backends.

Times are integer microseconds since the epoch (UTC) in the database; see
:mod:`apprentice.store.schema` for why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from apprentice.prompts import canonical_json
from apprentice.store.records import (
    ComparisonRecord,
    EventRecord,
    ExampleRecord,
    ModelVersionRecord,
    RequestRecord,
    SpendRecord,
)

Row = tuple[Any, ...]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch."""
    if moment.tzinfo is None:
        raise ValueError(
            f"the store needs timezone-aware datetimes, got naive {moment.isoformat()}: "
            "use datetime.now(UTC)"
        )
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    """Integer microseconds since the epoch -> aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=int(value))


def load_json(value: Any) -> dict[str, Any]:
    """JSONB arrives parsed (psycopg), TEXT as a string (sqlite3)."""
    if isinstance(value, str | bytes):
        return cast(dict[str, Any], json.loads(value))
    return cast(dict[str, Any], value)


REQUEST_COLUMNS = (
    "id, task, received_at, route, served_by, teacher_model, teacher_provider,"
    " student_version, latency_ms, error, cost, tags, caller"
)
"""A request row as listings read it (reports, exports): without the input and output."""

ANSWER_COLUMNS = "input, output"
"""What a request was asked and answered; read one request at a time (:func:`request`)."""


Canonical = Callable[[Any], str]
""":func:`apprentice.prompts.canonical_json`, or a :class:`CanonicalOnce` of a batch."""


class CanonicalOnce:
    """``canonical_json`` of each object once per group commit: a request's input and
    output are its example's too (the same objects), and serialising them twice was
    a quarter of the request rows' Python on the store's writer thread.

    By identity, each object held so its id cannot be reused while this lives; the
    records are immutable once queued, so one object has one text for the batch.
    """

    def __init__(self) -> None:
        self._texts: dict[int, tuple[object, str]] = {}

    def __call__(self, value: Any) -> str:
        hit = self._texts.get(id(value))
        if hit is not None and hit[0] is value:
            return hit[1]
        text = canonical_json(value)
        self._texts[id(value)] = (value, text)
        return text


def answer_json(value: dict[str, Any] | None, canonical: Canonical = canonical_json) -> str | None:
    """The canonical JSON of a request's input or served output (``None`` stays NULL).

    Runs on the store's writer thread, never on the event loop. A string holding a lone
    surrogate (which no UTF-8 column takes) is written escaped (``\\udXXX``), so it can
    never fail the request's row; it reads back as the same string."""
    if value is None:
        return None
    text = canonical(value)  # an encoder built once (prompts.canonical_json)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text


def request_values(r: RequestRecord, canonical: Canonical = canonical_json) -> tuple[Any, ...]:
    """``r`` as the values of ``REQUEST_COLUMNS``, then ``ANSWER_COLUMNS``."""
    return (
        r.id,
        r.task,
        to_micros(r.received_at),
        r.route,
        r.served_by,
        r.teacher_model,
        r.teacher_provider,
        r.student_version,
        float(r.latency_ms),
        r.error,
        float(r.cost),
        canonical_json(r.tags) if r.tags else None,
        r.caller,
        answer_json(r.input, canonical),
        answer_json(r.output, canonical),
    )


def request(row: Row) -> RequestRecord:
    """A request row (``REQUEST_COLUMNS``, then ``ANSWER_COLUMNS`` when selected)."""
    answered = len(row) > 13
    return RequestRecord(
        id=row[0],
        task=row[1],
        received_at=from_micros(row[2]),
        route=row[3],
        served_by=row[4],
        teacher_model=row[5],
        teacher_provider=row[6],
        student_version=row[7],
        latency_ms=float(row[8]),
        error=row[9],
        cost=float(row[10]),
        tags={str(k): str(v) for k, v in load_json(row[11]).items()} if row[11] else {},
        caller=row[12],
        input=load_json(row[13]) if answered and row[13] is not None else None,
        output=load_json(row[14]) if answered and row[14] is not None else None,
    )


def example(row: Row) -> ExampleRecord:
    return ExampleRecord(
        task=row[0],
        input=load_json(row[1]),
        output=load_json(row[2]),
        input_hash=row[3],
        split=row[4],
        teacher_provider=row[5],
        teacher_model=row[6],
        created_at=from_micros(row[7]),
        cost=float(row[8]),
        request_id=row[9],
        weight=float(row[10]),
        trained_in_version=row[11],
        id=int(row[12]),
    )


def comparison(row: Row) -> ComparisonRecord:
    return ComparisonRecord(
        task=row[0],
        request_id=row[1],
        at=from_micros(row[2]),
        score=float(row[3]),
        details=load_json(row[4]),
        student_version=row[5],
        phase=row[6],
        sampling_rate=None if row[7] is None else float(row[7]),
        id=int(row[8]),
    )


def spend(row: Row) -> SpendRecord:
    return SpendRecord(
        task=row[0],
        at=from_micros(row[1]),
        amount=float(row[2]),
        kind=row[3],
        request_id=row[4],
        provider=row[5],
        model=row[6],
        input_tokens=int(row[7]),
        output_tokens=int(row[8]),
        id=int(row[9]),
        caller=row[10],
    )


def version(row: Row) -> ModelVersionRecord:
    return ModelVersionRecord(
        task=row[0],
        version=row[1],
        state=row[2],
        path=row[3],
        base_model=row[4],
        created_at=from_micros(row[5]),
        updated_at=from_micros(row[6]),
        heldout_score=None if row[7] is None else float(row[7]),
        reason=row[8],
        metrics=load_json(row[9]),
        promoted_at=None if row[10] is None else from_micros(row[10]),
    )


def event(row: Row) -> EventRecord:
    return EventRecord(
        task=row[0],
        at=from_micros(row[1]),
        kind=row[2],
        message=row[3],
        data=load_json(row[4]),
        id=int(row[5]),
    )
