"""One sweep timer times out every call in flight, as ``asyncio.timeout`` would."""

from __future__ import annotations

import asyncio
import time

import pytest

from apprentice.gateway.deadlines import RESOLUTION, Deadlines


async def _never() -> None:
    await asyncio.Event().wait()


async def _answer(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def test_a_call_past_its_deadline_raises_timeout_within_the_resolution() -> None:
    deadlines = Deadlines()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"0\.1 s"):
        await deadlines.run(_never(), 0.1)
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 0.1 + RESOLUTION + 0.5  # slack for a loaded machine
    assert await deadlines.run(_answer(7), 0.1) == 7  # the task is usable afterwards


async def test_many_calls_only_the_late_ones_time_out() -> None:
    deadlines = Deadlines()
    fast = [deadlines.run(_answer(i), 5.0) for i in range(200)]
    slow = [deadlines.run(_never(), 0.1) for _ in range(3)]
    results = await asyncio.gather(*fast, *slow, return_exceptions=True)
    assert results[:200] == list(range(200))
    assert all(isinstance(r, TimeoutError) for r in results[200:])


async def test_someone_elses_cancellation_stays_a_cancellation() -> None:
    deadlines = Deadlines()
    entered = asyncio.Event()

    async def waiting() -> None:
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(deadlines.run(waiting(), 30.0))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
