"""What ``apprentice serve`` does to the interpreter once it is up (``tune_process``)."""

from __future__ import annotations

import gc
import itertools

import pytest
from gw_sweeps import young_sweeps

from apprentice.gateway import server


async def test_the_serving_loop_sweeps_the_young_generation_once(restored: None) -> None:
    server.tune_process()
    server.tune_process()  # called again (the benches do, per rate): still one sweep
    assert gc.get_threshold() == server.GC_THRESHOLDS
    young = await young_sweeps(2)
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
    server.tune_process()
    young = await young_sweeps(5)
    gaps = [b - a for a, b in itertools.pairwise(young)]
    step = server.YOUNG_SWEEP_S
    assert gaps[0] >= 2 * step * 0.9 and gaps[1] >= 4 * step * 0.9  # doubled each time
    assert gaps[2] < 8 * step * 0.9 and gaps[3] < 8 * step * 0.9  # capped at IDLE_SWEEP_S
