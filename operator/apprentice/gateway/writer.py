"""One ordered writer in front of the store.

Every store write of the gateway goes through :class:`StoreWriter`: requests
enqueue their transaction in the order the engine state changed (under the task's
lock, without awaiting), and one worker runs them in that order on a thread. So
the engine state saved by the last transaction is always the newest, the event
loop never blocks on the disk, and a request answers only once its writes are
durable (it awaits its own future).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Required, TypedDict, TypeVar, cast

from apprentice.json_types import JsonObject
from apprentice.store import records

if TYPE_CHECKING:
    from apprentice.store import Store

T = TypeVar("T")


class RequestWrite(TypedDict, total=False):
    """One request transaction: ``Store.record_request``'s arguments."""

    request: Required[records.RequestRecord]
    example: records.ExampleRecord | None
    comparison: records.ComparisonRecord | None
    spend: Sequence[records.SpendRecord]
    task_state: JsonObject | None
    shadow: records.ComparisonRecord | None


GroupCommit = Callable[[list[RequestWrite]], Sequence[records.RecordResult | Exception]]


class StoreWriter:
    """Runs blocking store calls one at a time, in submission order, off the event loop.

    Request transactions submitted with :meth:`submit_request` are group-committed
    when the store offers ``record_requests(writes) -> list[RecordResult | Exception]``
    (one durable commit for every request queued meanwhile, each still atomic on its
    own); otherwise each is its own ``record_request`` transaction.
    """

    def __init__(self, store: Store | None = None) -> None:
        self._group: GroupCommit | None = getattr(store, "record_requests", None)
        self._store = store
        self._queue: collections.deque[tuple[Callable[[], object], asyncio.Future[object]]] = (
            collections.deque()
        )
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
        write: RequestWrite = {"request": request, "example": example, "comparison": comparison,
                 "spend": spend, "task_state": task_state, "shadow": shadow}  # fmt: skip
        return self.submit(_RequestWrite(self._store, write))

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                # Take everything queued: one thread hop runs the whole batch in order.
                batch = list(self._queue)
                self._queue.clear()
                outcomes = await asyncio.to_thread(_run_batch, [c for c, _ in batch], self._group)
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    elif isinstance(value, BaseException):  # always, for a failure
                        future.set_exception(value)

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        self._closed = True
        while self._queue:
            await asyncio.sleep(0)
            if self._worker is None:
                break
            pending = [f for _, f in self._queue]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None


class _RequestWrite:
    """A queued ``record_request``; callable alone, or grouped with its neighbours."""

    def __init__(self, store: Store | None, write: RequestWrite) -> None:
        self.store = store
        self.write = write

    def __call__(self) -> records.RecordResult:
        w = self.write
        if self.store is None:
            raise RuntimeError("the store writer was built without a store")
        return self.store.record_request(
            w["request"], example=w.get("example"), comparison=w.get("comparison"),
            spend=w.get("spend", ()), task_state=w.get("task_state"), shadow=w.get("shadow"),
        )  # fmt: skip


def _run_batch(
    calls: list[Callable[[], object]], group: GroupCommit | None
) -> list[tuple[bool, object]]:
    out: list[tuple[bool, object]] = []
    i = 0
    while i < len(calls):
        j = i
        while group is not None and j < len(calls) and isinstance(calls[j], _RequestWrite):
            j += 1
        if j - i > 1 and group is not None:
            writes = [c.write for c in calls[i:j] if isinstance(c, _RequestWrite)]
            try:
                results = group(writes)
                out.extend((not isinstance(r, Exception), r) for r in results)
            except Exception as exc:  # the whole group failed: everyone hears it
                out.extend((False, exc) for _ in writes)
            i = j
            continue
        try:
            out.append((True, calls[i]()))
        except Exception as exc:  # each caller gets its own failure
            out.append((False, exc))
        i += 1
    return out
