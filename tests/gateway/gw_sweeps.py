"""Watching the young-generation sweeps ``server.tune_process`` schedules on the running loop.

Shared by the tuning tests and the uvloop test, which watch the same sweeps on
asyncio's loop and on uvloop's; the ``restored`` fixture (conftest) undoes the tuning.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any


async def young_sweeps(count: int, after: Callable[[int], None] | None = None) -> list[float]:
    """The loop times of the next ``count`` young-generation collections, with collection
    by allocation count off (call after ``tune_process``: only its sweeps remain).

    ``after(i)`` runs on the loop once the ``i``-th sweep (from 0) has returned."""
    loop = asyncio.get_running_loop()
    young: list[float] = []
    enough = asyncio.Event()

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 0:
            young.append(loop.time())
            if after is not None:
                loop.call_soon(after, len(young) - 1)
            if len(young) == count:
                loop.call_soon(enough.set)

    gc.set_threshold(10**9)  # no collection by allocation count: only the sweep's
    gc.callbacks.append(seen)
    try:
        await asyncio.wait_for(enough.wait(), timeout=10)
    finally:
        gc.callbacks.remove(seen)
    return young
