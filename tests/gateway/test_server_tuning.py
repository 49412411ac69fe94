"""What ``apprentice serve`` does to the interpreter once it is up (``tune_process``)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from apprentice.gateway import server


@pytest.fixture
def restored() -> Iterator[None]:
    """The interpreter's collector and switch interval as they were before the test."""
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)


async def test_the_serving_loop_sweeps_the_young_generation_once(restored: None) -> None:
    loop = asyncio.get_running_loop()
    young: list[float] = []
    two = asyncio.Event()

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 0:
            young.append(loop.time())
            if len(young) == 2:
                loop.call_soon(two.set)

    server.tune_process()
    server.tune_process()  # called again (the benches do, per rate): still one sweep
    assert gc.get_threshold() == server.GC_THRESHOLDS
    gc.set_threshold(10**9)  # no collection by allocation count: only the sweep's
    gc.callbacks.append(seen)
    try:
        await asyncio.wait_for(two.wait(), timeout=10)
    finally:
        gc.callbacks.remove(seen)
    assert young[1] - young[0] >= server.YOUNG_SWEEP_S * 0.9  # one sweep, not two interleaved


async def test_the_sweep_backs_off_while_it_finds_little(
    restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle gateway: each sweep that finds little waits twice as long, up to the cap.

    "Little" is timed; here every sweep counts as little (SMALL_SWEEP_S of a second),
    so the test does not depend on how busy the machine is.
    """
    monkeypatch.setattr(server, "SMALL_SWEEP_S", 1.0)
    monkeypatch.setattr(server, "IDLE_SWEEP_S", server.YOUNG_SWEEP_S * 4)
    loop = asyncio.get_running_loop()
    young: list[float] = []
    five = asyncio.Event()

    def seen(phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 0:
            young.append(loop.time())
            if len(young) == 5:
                loop.call_soon(five.set)

    server.tune_process()
    gc.set_threshold(10**9)  # no collection by allocation count: only the sweep's
    gc.callbacks.append(seen)
    try:
        await asyncio.wait_for(five.wait(), timeout=10)
    finally:
        gc.callbacks.remove(seen)
    gaps = [b - a for a, b in itertools.pairwise(young)]
    step = server.YOUNG_SWEEP_S
    assert gaps[0] >= 2 * step * 0.9 and gaps[1] >= 4 * step * 0.9  # doubled each time
    assert gaps[2] < 8 * step * 0.9 and gaps[3] < 8 * step * 0.9  # capped at IDLE_SWEEP_S
