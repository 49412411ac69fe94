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


async def test_a_long_young_collection_between_sweeps_brings_them_back(
    restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CPython's own young collection, between two sweeps, counts as the sweep's find.

    A sweep right after one finds nothing, however busy the gateway; timing the sweep
    alone backed it off to once a second under steady traffic, and CPython's own
    collections then swept a whole second's survivors (49-98 ms pauses). Here every
    sweep is little, as in the test above, and one long collection is noted between
    the third and fourth sweeps (a pause cannot be made to order).
    """
    monkeypatch.setattr(server, "SMALL_SWEEP_S", 1.0)
    monkeypatch.setattr(server, "IDLE_SWEEP_S", server.YOUNG_SWEEP_S * 4)
    server.tune_process()

    def long_collection_after_third(i: int) -> None:
        if i == 2:
            server._YOUNG.note(2.0)  # as gc.callbacks would for a 2 s young collection

    young = await young_sweeps(6, after=long_collection_after_third)
    gaps = [b - a for a, b in itertools.pairwise(young)]
    step = server.YOUNG_SWEEP_S
    assert gaps[2] >= 4 * step * 0.9  # backed off to the cap: the fourth sweep comes late
    assert gaps[3] < 2 * step * 0.9  # it saw the long collection: the next comes at 50 ms
    assert gaps[4] >= 2 * step * 0.9  # and backs off again from there


def test_young_collections_are_timed_and_old_ones_ignored(restored: None) -> None:
    server.tune_process()
    server._YOUNG.take()
    gc.collect(2)
    assert server._YOUNG.take() == 0.0  # a full collection says nothing of the young rate
    gc.collect(0)
    assert 0.0 < server._YOUNG.take() < 1.0
    assert server._YOUNG.take() == 0.0  # taken: starts over
