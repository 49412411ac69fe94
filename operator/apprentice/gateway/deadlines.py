"""Timeouts for thousands of calls in flight with one timer, not one timer each.

``asyncio.timeout`` schedules a timer handle per call and cancels it when the call
returns; at thousands of requests per second that heap traffic cost more than the
rest of the local-only path together (about 30 us of CPU a request, measured in
the gateway benchmark's setup). The gateway's timeouts are seconds long and the
same for every call of a kind, so deadlines are registered in arrival order,
which is deadline order, and one sweep every :data:`RESOLUTION` seconds cancels
the calls that are past theirs. A call ends at most ``RESOLUTION`` after its
deadline, with ``TimeoutError`` exactly as under ``asyncio.timeout``; another
cancellation (the client went away) stays a cancellation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["RESOLUTION", "Deadlines"]

T = TypeVar("T")

RESOLUTION = 0.05
"""Seconds between sweeps while any call is in flight (timeouts are seconds long)."""


class _Entry:
    __slots__ = ("deadline", "expired", "task")

    def __init__(self, task: asyncio.Task[object], deadline: float) -> None:
        self.task = task
        self.deadline = deadline
        self.expired = False


class Deadlines:
    """``await deadlines.run(call, timeout_s)``: ``call`` or ``TimeoutError`` (see module doc)."""

    def __init__(self) -> None:
        # timeout -> calls in arrival order (= deadline order for one timeout)
        self._by_timeout: dict[float, dict[int, _Entry]] = {}
        self._next = 0
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, call: Awaitable[T], timeout_s: float) -> T:
        task = asyncio.current_task()
        assert task is not None, "a deadline needs a task to cancel"
        entry = _Entry(task, time.monotonic() + timeout_s)
        key = self._next = self._next + 1
        calls = self._by_timeout.get(timeout_s)
        if calls is None:
            calls = self._by_timeout[timeout_s] = {}
        calls[key] = entry
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(RESOLUTION, self._sweep)
        try:
            result = await call
        except asyncio.CancelledError:
            if entry.expired and task.uncancel() == 0:  # ours, and nobody else's
                raise TimeoutError(f"no answer within {timeout_s:g} s") from None
            raise
        finally:
            del calls[key]
        if entry.expired:  # swept just as the call returned: take our cancellation back,
            task.uncancel()  # as asyncio.timeout does
        return result

    def _sweep(self) -> None:
        now = time.monotonic()
        pending = False
        for calls in self._by_timeout.values():
            for entry in calls.values():
                if entry.deadline > now:
                    break  # the rest arrived later: their deadlines are later too
                if not entry.expired:
                    entry.expired = True
                    entry.task.cancel()
            pending = pending or bool(calls)
        self._timer = (
            asyncio.get_running_loop().call_later(RESOLUTION, self._sweep) if pending else None
        )
