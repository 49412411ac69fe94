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
from collections.abc import Callable
from typing import Any


class StoreWriter:
    """Runs blocking store calls one at a time, in submission order, off the event loop."""

    def __init__(self) -> None:
        self._queue: collections.deque[tuple[Callable[[], Any], asyncio.Future[Any]]] = (
            collections.deque()
        )
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="store-writer")

    def submit(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """Queue ``call`` (synchronous; never awaits) and return the future of its result."""
        if self._closed:
            raise RuntimeError("the store writer is closed")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((call, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                # Take everything queued: one thread hop runs the whole batch in order.
                batch = list(self._queue)
                self._queue.clear()
                outcomes = await asyncio.to_thread(_run_batch, [c for c, _ in batch])
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
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


def _run_batch(calls: list[Callable[[], Any]]) -> list[tuple[bool, Any]]:
    out: list[tuple[bool, Any]] = []
    for call in calls:
        try:
            out.append((True, call()))
        except Exception as exc:  # each caller gets its own failure
            out.append((False, exc))
    return out
