"""The store's interface: what the gateway, the orchestrator and reporting may ask.

One interface, two backends (SQLite, PostgreSQL), same behaviour (``tests/store`` runs both).

Threading and asyncio: every method is synchronous, blocking and thread-safe.
Writes commit durably before they return (a request transaction fsyncs: from
0.3 to 4 ms on the CI machine's disk), so async callers run them with
``await asyncio.to_thread(store.record_request, ...)`` and never call them
directly on the event loop; under load, :meth:`Store.record_requests` commits
everything queued meanwhile with one fsync (about 10,000 requests/s on SQLite
in batches of 100, against about 300/s one by one). Reads are short but still
touch the disk; call them through ``asyncio.to_thread`` as well, except in
start-up code where blocking the loop does not matter.

Errors (all raised ``from`` the driver's error where there is one)::

    StoreError
     ├── UnsupportedStoreUrl      the url's scheme names no backend
     ├── StoreUnavailableError    the database failed (connection lost, disk full, locked)
     ├── MigrationError           the schema is newer than this code, or a step failed
     ├── DuplicateRequestError    a request id was recorded twice
     ├── UnknownVersionError      no such model version for the task
     ├── VersionExistsError       add_version with a name already taken
     └── InvalidTransitionError   a version state change the lifecycle forbids
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from apprentice.store.api_keys import ApiKeyRecord
from apprentice.store.feedback import FeedbackStore
from apprentice.store.records import (
    ComparisonRecord,
    EventRecord,
    ExampleRecord,
    HourBucket,
    ModelVersionRecord,
    RecordResult,
    RequestCounts,
    RequestRecord,
    RequestWrite,
    ReservationRecord,
    SpendKind,
    SpendRecord,
    Split,
)
from apprentice.vocabulary import VersionStateName

# Which state changes the version lifecycle allows. ``promoted -> rejected``
# is the rollback of a bad promotion; ``retired -> promoted`` the restore.
TRANSITIONS: dict[VersionStateName, frozenset[VersionStateName]] = {
    "candidate": frozenset({"validating", "promoted", "rejected"}),
    "validating": frozenset({"candidate", "promoted", "rejected"}),
    "promoted": frozenset({"retired", "rejected"}),
    "retired": frozenset({"promoted"}),
    "rejected": frozenset(),
}


class StoreError(Exception):
    """Base of the store's errors."""


class UnsupportedStoreUrl(StoreError):
    """The store url's scheme names no backend."""


class StoreUnavailableError(StoreError):
    """The database itself failed: connection lost, disk full, lock timeout.

    The write did not happen (its transaction rolled back); retrying later may work.
    """


class MigrationError(StoreError):
    """Migrations could not run (schema newer than this code, or a failed step)."""


class DuplicateRequestError(StoreError):
    """The request id was already recorded; nothing of the second write was kept."""


class UnknownVersionError(StoreError):
    """No such model version for the task."""


class VersionExistsError(StoreError):
    """A model version with this name already exists for the task."""


class InvalidTransitionError(StoreError):
    """A model version state change the lifecycle forbids."""


class Store(FeedbackStore, abc.ABC):
    """Durable state of every task: requests, examples, comparisons, spend, versions, events
    (feedback's verbs are in :class:`~apprentice.store.feedback.FeedbackStore`)."""

    # -- the request transaction ----------------------------------------------------------

    @abc.abstractmethod
    def record_request(
        self,
        request: RequestRecord,
        *,
        example: ExampleRecord | None = None,
        comparison: ComparisonRecord | None = None,
        spend: Sequence[SpendRecord] = (),
        task_state: dict[str, Any] | None = None,
        shadow: ComparisonRecord | None = None,
    ) -> RecordResult:
        """Store one request's writes in ONE durable transaction, then return.

        Everything is kept (request row, example, comparison, a shadow canary's
        comparison, spend lines, counters, the engine state ``task_state``) or nothing.
        A duplicate example (same task and input hash) is not an error: the existing
        row stays, ``example_added`` is False and counts do not change. A request id
        recorded twice raises :class:`DuplicateRequestError`.
        """

    @abc.abstractmethod
    def record_requests(
        self, writes: Sequence[RequestWrite], reservations: Sequence[Any] = ()
    ) -> list[Any]:
        """Group commit: each write (``record_request``'s keyword arguments, ``request``
        included) atomic on its own, then each reservation (:meth:`budget_reserve_many`),
        all in ONE durable commit (:mod:`apprentice.store.batches`). Returns each write's
        outcome, then each reservation's. A write that fails is rolled back alone and its
        exception returned in its place; if the commit fails, the call raises, nothing kept.
        """

    @abc.abstractmethod
    def record_spend(self, entries: Sequence[SpendRecord]) -> None:
        """Add spend outside a request (a judge call while validating), one transaction.

        Lines naming a ``reservation`` settle it (see :class:`SpendRecord`).
        """

    # -- budget (see apprentice.store.budget) ----------------------------------------------

    @abc.abstractmethod
    def budget_reserve(
        self,
        reservation: ReservationRecord,
        *,
        scopes: Sequence[str],
        windows: Sequence[tuple[float, float]],
        admit: Callable[[Any], None],
    ) -> Any:
        """Insert ``reservation`` if ``admit(totals)`` does not raise; one locked transaction.

        ``totals`` (:class:`apprentice.store.budget.BudgetTotals`) is the spend of each
        scope in each ``[start, end)`` window plus the open reservations, as no other
        process can change them until this transaction ends. Expired reservations
        are first booked at their worst case.
        """

    def budget_reserve_many(
        self, asks: Sequence[tuple[ReservationRecord, Sequence[str], Any, Callable[[Any], None]]]
    ) -> list[Any]:
        """:meth:`budget_reserve` for each ask ``(reservation, scopes, windows, admit)``, in
        order, in ONE durable commit; a refused ask gets its exception in its place."""
        return self.record_requests((), asks)

    @abc.abstractmethod
    def budget_extend(
        self,
        reservation_id: str,
        more: float,
        *,
        scopes: Sequence[str],
        windows: Sequence[tuple[float, float]],
        admit: Callable[[Any], None],
    ) -> bool:
        """Grow an open reservation by ``more`` when ``admit`` allows; False when it is gone."""

    @abc.abstractmethod
    def budget_release(self, reservation_ids: Sequence[str]) -> int:
        """Drop reservations whose calls cannot have been billed."""

    @abc.abstractmethod
    def budget_recover(self, *, owner: str | None, now: datetime) -> list[ReservationRecord]:
        """Book the reservations of ``owner`` (a restart) and all expired ones at worst case."""

    @abc.abstractmethod
    def budget_totals(self, scopes: Sequence[str], windows: Sequence[tuple[float, float]]) -> Any:
        """Window spend and open reservations (read-only)."""

    @abc.abstractmethod
    def reservations(self) -> list[ReservationRecord]:
        """Open budget reservations, oldest first."""

    def unstorable(self, value: Any) -> str | None:
        """Why ``value`` (JSON) could not be stored here, or ``None``; checked before paying."""
        return None

    # -- examples --------------------------------------------------------------------------

    @abc.abstractmethod
    def examples(
        self,
        task: str,
        split: Split | None = None,
        limit: int | None = None,
        after_id: int | None = None,
    ) -> list[ExampleRecord]:
        """Examples in insertion (id) order, optionally one split, after ``after_id``."""

    def iter_examples(
        self, task: str, split: Split | None = None, page: int = 1000
    ) -> Iterator[ExampleRecord]:
        """All examples page by page, so exporting a large dataset stays small in memory."""
        after: int | None = None
        while True:
            batch = self.examples(task, split=split, limit=page, after_id=after)
            yield from batch
            if len(batch) < page:
                return
            after = batch[-1].id

    @abc.abstractmethod
    def add_examples(self, examples: Sequence[ExampleRecord]) -> list[bool]:
        """Insert examples without a request (``apprentice import``), one transaction;
        per example, whether it was new (a duplicate input keeps the existing row)."""

    @abc.abstractmethod
    def example_counts(self, task: str) -> dict[Split, int]:
        """``{'train': n, 'heldout': m}`` (both keys always present)."""

    @abc.abstractmethod
    def mark_trained(self, task: str, ids: Iterable[int], version: str) -> int:
        """Record that ``version`` trained on these examples (first version wins).

        Returns how many examples were newly marked.
        """

    # -- comparisons, requests, spend --------------------------------------------------------

    @abc.abstractmethod
    def comparisons(
        self, task: str, since: datetime | None = None, limit: int | None = None
    ) -> list[ComparisonRecord]:
        """The comparison stream in time order (the last ``limit`` when given)."""

    @abc.abstractmethod
    def requests(
        self, task: str, since: datetime | None = None, limit: int | None = None
    ) -> list[RequestRecord]:
        """Recorded requests in time order (the last ``limit`` when given); without their
        ``input`` and ``output`` (``None``), which :meth:`request_record` reads."""

    @abc.abstractmethod
    def request_counts(self, task: str) -> RequestCounts:
        """Running totals for the task (zeros for a task never seen)."""

    @abc.abstractmethod
    def spend_entries(
        self, task: str | None = None, since: datetime | None = None
    ) -> list[SpendRecord]:
        """Ledger lines in time order, for one task or all."""

    @abc.abstractmethod
    def spend_total(
        self,
        start: datetime,
        end: datetime,
        *,
        task: str | None = None,
        kind: SpendKind | None = None,
    ) -> float:
        """Sum of the ledger over ``[start, end)``, one task or all tasks (global)."""

    @abc.abstractmethod
    def spend_by_task(self, start: datetime, end: datetime) -> dict[str, float]:
        """Ledger sums over ``[start, end)`` per task (tasks with no spend are absent)."""

    @abc.abstractmethod
    def hourly(
        self,
        task: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[HourBucket]:
        """Per-hour buckets (UTC hours) of requests, teacher calls, spend, comparisons.

        Only hours with activity are returned, in time order.
        """

    # -- model versions ----------------------------------------------------------------------

    @abc.abstractmethod
    def next_version_name(self, task: str) -> str:
        """``v<N+1>`` where N is the task's highest version number (``v1`` first)."""

    @abc.abstractmethod
    def add_version(self, version: ModelVersionRecord) -> ModelVersionRecord:
        """Register a version (usually a ``candidate``); :class:`VersionExistsError` if taken."""

    @abc.abstractmethod
    def update_version(
        self,
        task: str,
        version: str,
        *,
        state: VersionStateName | None = None,
        heldout_score: float | None = None,
        reason: str | None = None,
        metrics: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> ModelVersionRecord:
        """Change a version; given fields replace stored ones.

        Promoting retires the previously promoted version in the same
        transaction, so at most one version is promoted per task. Forbidden
        state changes raise :class:`InvalidTransitionError` (see ``TRANSITIONS``).
        """

    @abc.abstractmethod
    def versions(self, task: str) -> list[ModelVersionRecord]:
        """All versions of the task, oldest first (by number)."""

    @abc.abstractmethod
    def version(self, task: str, version: str) -> ModelVersionRecord:
        """One version; :class:`UnknownVersionError` when absent."""

    @abc.abstractmethod
    def active_version(self, task: str) -> ModelVersionRecord | None:
        """The promoted version, or ``None``."""

    @abc.abstractmethod
    def rollback(
        self, task: str, *, reason: str = "rolled back", at: datetime | None = None
    ) -> ModelVersionRecord | None:
        """Reject the promoted version and promote the one promoted before it.

        Returns the newly active version, or ``None`` when there is nothing to
        roll back to (then nothing changes).
        """

    # -- events and engine state -------------------------------------------------------------

    @abc.abstractmethod
    def add_event(self, event: EventRecord) -> int:
        """Append an event; returns its id."""

    @abc.abstractmethod
    def events(
        self,
        task: str | None = None,
        since: datetime | None = None,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        """Events in time order (the last ``limit`` when given)."""

    @abc.abstractmethod
    def load_task_state(self, task: str) -> dict[str, Any] | None:
        """The task's saved engine state (phase, window, budget...), or ``None``."""

    @abc.abstractmethod
    def save_task_state(self, task: str, state: dict[str, Any]) -> None:
        """Replace the task's saved engine state."""

    @abc.abstractmethod
    def tasks(self) -> list[str]:
        """Every task the store has seen (requests, examples, versions or state), sorted."""

    # -- API keys (see apprentice.gateway.auth) --------------------------------------------

    @abc.abstractmethod
    def add_api_key(self, key: ApiKeyRecord) -> None:
        """Keep a new key (its hash, never the token)."""

    @abc.abstractmethod
    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        """The key with this public id, revoked or not."""

    @abc.abstractmethod
    def api_keys(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""

    @abc.abstractmethod
    def revoke_api_key(self, key_id: str, at: datetime) -> ApiKeyRecord | None:
        """Revoke (the first revocation's time stays); ``None`` for an unknown id."""

    # -- closing -----------------------------------------------------------------------------

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; later calls raise :class:`StoreError`."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
