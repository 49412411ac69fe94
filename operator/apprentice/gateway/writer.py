"""One ordered writer in front of the store.

Every store write of the gateway goes through :class:`StoreWriter`: requests
enqueue their transaction in the order the engine state changed (under the task's
lock, without awaiting), and one worker runs them in that order on a thread. So
the engine state saved by the last transaction is always the newest, the event
loop never blocks on the disk, and a request answers only once its writes are
durable (it awaits its own future).

A row nobody waits for (a local answer's, written behind) lingers up to
:data:`LINGER_S` for others to join its group: one commit, one fsync and one
thread hop for many rows instead of a few (the commit's fixed cost, about 125 us
of CPU on SQLite, was most of the writer's cost per local answer). Anything
awaited (a paid request's transaction, a reservation, a flush, close) ends the wait
at once.

Budget reservations (:meth:`StoreWriter.submit_reservation`, from
:class:`~apprentice.gateway.spending.SharedBudget`) queue here too: the request
transactions and reservations queued meanwhile go in one thread hop and ONE durable
transaction (``Store.record_requests``; the order inside it and why:
:mod:`apprentice.store.batches`). Under paced traffic a paid request so shares one
commit and fsync with its neighbours instead of paying two of its own. A reservation's
caller awaits its future, so it is durable before its teacher call starts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from apprentice.json_types import JsonObject
from apprentice.store import records
from apprentice.store.budget import Ask, BudgetTotals

if TYPE_CHECKING:
    from apprentice.store import Store

T = TypeVar("T")

log = logging.getLogger(__name__)


LINGER_S = 0.005
"""How long rows written behind wait for company before their group commits."""


class GroupCommit(Protocol):
    """``Store.record_requests``: the writes' outcomes, then the reservations'."""

    def __call__(
        self, writes: list[records.RequestWrite], reservations: list[Ask] = ..., /
    ) -> Sequence[object]: ...


class StoreWriter:
    """Runs blocking store calls one at a time, in submission order, off the event loop.

    Request transactions (:meth:`submit_request`, :meth:`write_behind`) and
    reservations (:meth:`submit_reservation`) queued next to each other are
    group-committed when the store offers ``record_requests(writes, reservations)``
    (one durable commit for all of them, each write still atomic on its own);
    otherwise each is its own ``record_request`` or ``budget_reserve`` transaction.
    """

    def __init__(self, store: Store | None = None, *, linger_s: float = LINGER_S) -> None:
        self._group: GroupCommit | None = getattr(store, "record_requests", None)
        self._linger_s = linger_s
        self._awaited = asyncio.Event()  # something queued is awaited: no lingering
        self._store = store
        # A write behind has no future: nobody waits for it; its failure is logged.
        self._queue: collections.deque[
            tuple[Callable[[], object], asyncio.Future[object] | None]
        ] = collections.deque()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def running(self) -> bool:
        """Whether writes are queued to the worker (serving) or must run in place."""
        return self._worker is not None

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="store-writer")

    def submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        """Queue ``call`` (synchronous; never awaits) and return the future of its result."""
        if self._closed:
            raise RuntimeError("the store writer is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((call, cast("asyncio.Future[object]", future)))
        self._wakeup.set()
        self._awaited.set()
        return future

    def submit_request(
        self,
        *,
        request: records.RequestRecord,
        example: records.ExampleRecord | None = None,
        comparison: records.ComparisonRecord | None = None,
        spend: Sequence[records.SpendRecord] = (),
        task_state: JsonObject | None = None,
        shadow: records.ComparisonRecord | None = None,
    ) -> asyncio.Future[records.RecordResult]:
        """Queue one request transaction (``Store.record_request``'s arguments)."""
        write: records.RequestWrite = {
            "request": request, "example": example, "comparison": comparison, "spend": spend,
            "task_state": task_state, "shadow": shadow,
        }  # fmt: skip
        return self.submit(_RequestWrite(self._store, write))

    def submit_reservation(self, ask: Ask) -> asyncio.Future[BudgetTotals]:
        """Queue one reservation; its future fails with ``BudgetExhausted`` when refused."""
        return self.submit(_Reserve(self._store, ask))

    def write_behind(self, what: str, request: records.RequestRecord) -> None:
        """Queue a request row that nobody waits for (no future, no callback on the loop);
        a failure is logged as ``store write of {what} failed``."""
        if self._closed:
            raise RuntimeError("the store writer is closed")
        write: records.RequestWrite = {"request": request}
        self._queue.append((_RequestWrite(self._store, write, what), None))
        self._wakeup.set()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if not self._awaited.is_set():  # rows written behind only: let others join
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._linger_s):
                            await self._awaited.wait()
                self._awaited.clear()
                # Take everything queued: one thread hop runs the whole batch in order.
                batch = list(self._queue)
                self._queue.clear()
                outcomes = await asyncio.to_thread(_run_batch, [c for c, _ in batch], self._group)
                for (call, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future is None:  # written behind
                        if not ok:
                            what = cast(_RequestWrite, call).behind  # write_behind queued it
                            log.error("store write of %s failed: %s", what, value)
                        continue
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    elif isinstance(value, BaseException):  # always, for a failure
                        future.set_exception(value)

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        self._closed = True
        if self._worker is not None:
            # Everything queued before it (awaited or written behind) runs first, in order.
            barrier: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            self._queue.append((_nothing, barrier))
            self._wakeup.set()
            self._awaited.set()
            await asyncio.gather(barrier, return_exceptions=True)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None


class _RequestWrite:
    """A queued ``record_request``; callable alone, or grouped with its neighbours."""

    def __init__(self, store: Store | None, write: records.RequestWrite, behind: str = "") -> None:
        self.store = store
        self.write = write
        self.behind = behind  # written behind: what the log calls it

    def __call__(self) -> records.RecordResult:
        w = self.write
        if self.store is None:
            raise RuntimeError("the store writer was built without a store")
        return self.store.record_request(
            w["request"], example=w.get("example"), comparison=w.get("comparison"),
            spend=w.get("spend", ()), task_state=w.get("task_state"), shadow=w.get("shadow"),
        )  # fmt: skip


class _Reserve:
    """A queued reservation; callable alone (``Store.budget_reserve``), or grouped."""

    def __init__(self, store: Store | None, ask: Ask) -> None:
        self.store = store
        self.ask = ask

    def __call__(self) -> BudgetTotals:
        if self.store is None:
            raise RuntimeError("the store writer was built without a store")
        row, scopes, windows, admit = self.ask
        totals: BudgetTotals = self.store.budget_reserve(
            row, scopes=scopes, windows=windows, admit=admit
        )
        return totals


def _nothing() -> None:
    return None


def _run_batch(
    calls: list[Callable[[], object]], group: GroupCommit | None
) -> list[tuple[bool, object]]:
    """Each call's ``(ok, result or exception)``: each run of neighbouring request
    writes and reservations is one group commit; anything else runs alone, in order."""
    out: list[tuple[bool, object]] = []
    i = 0
    while i < len(calls):
        j = i
        while (
            group is not None and j < len(calls) and isinstance(calls[j], _Reserve | _RequestWrite)
        ):
            j += 1
        if j - i > 1 and group is not None:
            out.extend(_run_group(calls[i:j], group))
            i = j
            continue
        try:
            out.append((True, calls[i]()))
        except Exception as exc:  # each caller gets its own failure
            out.append((False, exc))
        i += 1
    return out


def _run_group(run: list[Callable[[], object]], group: GroupCommit) -> list[tuple[bool, object]]:
    writes = [c.write for c in run if isinstance(c, _RequestWrite)]
    asks = [c.ask for c in run if isinstance(c, _Reserve)]
    try:
        results = group(writes, asks) if asks else group(writes)
    except Exception as exc:  # the whole group failed: everyone hears it
        return [(False, exc)] * len(run)
    done, held = iter(results[: len(writes)]), iter(results[len(writes) :])
    outcomes = (next(done if isinstance(c, _RequestWrite) else held) for c in run)
    return [(not isinstance(r, Exception), r) for r in outcomes]
