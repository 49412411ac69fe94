"""What the store keeps: one frozen dataclass per table, plus the split rule.

Records are plain values so the gateway, the orchestrator and reporting can
build and compare them without a database. Times are timezone-aware
``datetime`` objects (the store refuses naive ones: a naive ``datetime.now()``
is local time and would silently shift every calendar window). Money is in
USD as ``float``.

The split rule lives here because it must never change: an example's split is
a function of the hash of its input only, so an input that once landed in
``heldout`` is never trained on, whatever process or version computes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Required, TypedDict

from apprentice.json_types import JsonObject
from apprentice.prompts import canonical_json
from apprentice.vocabulary import Route, StoredRoute, StoredServedBy, VersionStateName

Split = Literal["train", "heldout"]
SpendKind = Literal["teacher", "judge", "embedding", "student"]

SPLITS: tuple[Split, ...] = ("train", "heldout")

# 2**64: the first 16 hex digits of the hash read as an integer in [0, 2**64).
_HASH_SPACE = float(1 << 64)


def input_hash(task_input: dict[str, Any]) -> str:
    """SHA-256 (hex) of the input's canonical JSON: equal inputs, equal hashes."""
    return hashlib.sha256(canonical_json(task_input).encode("utf-8")).hexdigest()


def assign_split(hash_hex: str, heldout_fraction: float) -> Split:
    """``heldout`` for about ``heldout_fraction`` of hashes, ``train`` otherwise.

    A pure function of the hash (first 64 bits as a uniform number in [0, 1)),
    so the split of an input is stable forever and across processes.
    """
    if not 0.0 <= heldout_fraction <= 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1], got {heldout_fraction}")
    position = int(hash_hex[:16], 16) / _HASH_SPACE
    return "heldout" if position < heldout_fraction else "train"


@dataclass(frozen=True)
class RequestRecord:
    """One request the gateway answered (or failed to answer).

    ``route`` is the scheduler's decision; ``served_by`` who produced the
    answer the caller got (``None`` when the request failed). ``cost`` is what
    the request spent in USD: the sum of its spend lines (teacher, paid student,
    judge), made from those lines in the transaction that writes them. ``error`` is the typed reason
    (e.g. ``RateLimited``, ``budget_exhausted``) or ``None``. ``tags`` are the
    caller's per-request metadata (``customer=acme``), for reports and exports.

    ``input`` and ``output`` are what the caller asked and was answered (the validated
    input, the served output; ``None`` for a request that got no answer, and for rows
    written before the store kept them): a correction (``POST /v1/feedback``) turns them
    into an example on any replica. The gateway passes its own references (the store's
    writer serialises them, off the event loop); :meth:`Store.request_record` reads them
    back, while listings (:meth:`Store.requests`) leave them ``None`` to stay cheap.
    """

    id: str
    task: str
    received_at: datetime
    route: StoredRoute
    served_by: StoredServedBy | None  # cache: a repeat the answer cache served
    teacher_model: str | None = None
    teacher_provider: str | None = None
    student_version: str | None = None
    latency_ms: float = 0.0
    error: str | None = None
    cost: float = 0.0
    tags: dict[str, str] = field(default_factory=dict)  # the caller's metadata (tags)
    caller: str | None = None  # the API key's public id, when keys are in use
    input: dict[str, Any] | None = None  # what was asked (None: no answer, or an old row)
    output: dict[str, Any] | None = None  # the answer served (teacher's, student's, cache's)

    @property
    def teacher_called(self) -> bool:
        """True when the route sent the request to the teacher."""
        return self.route != Route.local_only


_new = object.__new__


def request_row(
    *, id: str, task: str, received_at: datetime, route: StoredRoute,
    served_by: StoredServedBy | None, teacher_model: str | None, teacher_provider: str | None,
    student_version: str | None, latency_ms: float, error: str | None, cost: float,
    tags: dict[str, str], caller: str | None, input: dict[str, Any] | None,
    output: dict[str, Any] | None,
) -> RequestRecord:  # fmt: skip
    """``RequestRecord(...)`` with every field given, for the request path: the same frozen
    value (equal, immutable), a quarter of the cost. A frozen dataclass's ``__init__`` sets
    each of its 15 fields through ``object.__setattr__`` (~2.4 µs a row); this fills the
    new instance's ``__dict__`` in one call. tests/store/test_request_row.py keeps the two
    equal, field for field."""
    row = _new(RequestRecord)
    row.__dict__.update(
        id=id, task=task, received_at=received_at, route=route, served_by=served_by,
        teacher_model=teacher_model, teacher_provider=teacher_provider,
        student_version=student_version, latency_ms=latency_ms, error=error, cost=cost,
        tags=tags, caller=caller, input=input, output=output,
    )  # fmt: skip
    return row


@dataclass(frozen=True)
class ExampleRecord:
    """An (input, teacher output) pair kept for training, with provenance.

    ``id`` is assigned by the store (``None`` before insertion).
    ``trained_in_version`` is the first version whose training run used it.
    """

    task: str
    input: dict[str, Any]
    output: dict[str, Any]
    input_hash: str
    split: Split
    teacher_provider: str | None
    teacher_model: str | None
    created_at: datetime
    cost: float = 0.0
    request_id: str | None = None
    weight: float = 1.0
    trained_in_version: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class ComparisonRecord:
    """One request answered by both teacher and student, scored in [0, 1]."""

    task: str
    request_id: str
    at: datetime
    score: float
    details: dict[str, Any] = field(default_factory=dict)
    student_version: str | None = None
    phase: str | None = None
    sampling_rate: float | None = None
    id: int | None = None


@dataclass(frozen=True)
class SpendRecord:
    """One line of the spend ledger (USD). ``task`` is ``None`` for global spend."""

    task: str | None
    at: datetime
    amount: float
    kind: SpendKind = "teacher"
    request_id: str | None = None
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    id: int | None = None
    reservation: str | None = None
    """The budget reservation this line settles (its row is deleted in the same
    transaction). If that row is gone (a lease expired and booked it at its worst
    case), the line is not written again: the worst case already covers it."""
    caller: str | None = None
    """The API key (public id) the line is charged to: its budget scope counts it."""


@dataclass(frozen=True)
class ReservationRecord:
    """A budget reservation held in the store while a paid call is in flight.

    ``owner`` names the gateway holding it (restart settles its own rows),
    ``expires_at`` when any gateway may settle it at ``amount`` (its worst case).
    """

    id: str
    task: str
    amount: float
    owner: str
    created_at: datetime
    expires_at: datetime
    kind: SpendKind = "teacher"
    request_id: str | None = None
    caller: str | None = None  # the API key charged (its caps count the hold)


@dataclass(frozen=True)
class ModelVersionRecord:
    """A trained adapter: ``candidate -> validating -> promoted | rejected -> retired``.

    ``version`` is ``v<N>``; ``promoted_at`` is set each time it is promoted
    and orders rollbacks (the previous promoted version is the retired one
    promoted most recently).
    """

    task: str
    version: str
    state: VersionStateName
    path: str
    base_model: str | None
    created_at: datetime
    updated_at: datetime
    heldout_score: float | None = None
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    promoted_at: datetime | None = None

    @property
    def number(self) -> int:
        """The ``N`` of ``v<N>``."""
        return version_number(self.version)


@dataclass(frozen=True)
class EventRecord:
    """Something worth a line in a report: phase change, alarm, training, promotion."""

    task: str | None
    at: datetime
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class RequestCounts:
    """Running totals per task, kept in the request transaction (no table scans)."""

    requests: int = 0
    teacher_calls: int = 0
    student_answers: int = 0
    errors: int = 0
    comparisons: int = 0
    cache_hits: int = 0  # repeats the answer cache served (no call, no example)


class RequestWrite(TypedDict, total=False):
    """One request transaction: :meth:`Store.record_request`'s arguments, ``request``
    included (what :meth:`Store.record_requests` takes, one per write)."""

    request: Required[RequestRecord]
    example: ExampleRecord | None
    comparison: ComparisonRecord | None
    spend: Sequence[SpendRecord]
    task_state: JsonObject | None
    shadow: ComparisonRecord | None


@dataclass(frozen=True)
class RecordResult:
    """What :meth:`Store.record_request` did: the example's id and whether it was new."""

    example_id: int | None
    example_added: bool
    comparison_id: int | None


@dataclass(frozen=True)
class HourBucket:
    """One hour of a task's (or all tasks') traffic, for the report's plots.

    ``teacher_spend`` is the ledger's sum for the hour; ``mean_score`` is the
    mean agreement of the hour's comparisons (``None`` when there were none).
    """

    start: datetime
    requests: int = 0
    teacher_calls: int = 0
    student_answers: int = 0
    errors: int = 0
    spend: float = 0.0
    comparisons: int = 0
    mean_score: float | None = None


def version_name(number: int) -> str:
    """``v<N>``."""
    return f"v{number}"


def version_number(version: str) -> int:
    """``N`` of ``v<N>``; a typed error for anything else."""
    if not (version.startswith("v") and version[1:].isdigit()):
        raise ValueError(f"model version must look like 'v<N>' (e.g. 'v3'), got {version!r}")
    return int(version[1:])
