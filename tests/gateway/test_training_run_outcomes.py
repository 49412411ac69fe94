"""``apprentice_training_runs_total``: what a local training run's ``result`` label says.

A run whose version passed validation while the task's canary is on is not promoted yet
(it is tried on live traffic; the verdict comes later as an event), so it counts as
``canary``, not ``promoted``; with the canary off the same run counts as ``promoted``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gw_config import make_config
from test_canary import CANARY, seed

RESULTS = ("promoted", "canary", "rejected", "failed")


@pytest.mark.parametrize(
    ("mode", "state", "result"), [("share", "candidate", "canary"), ("off", "promoted", "promoted")]
)
async def test_a_passed_run_counts_as_canary_only_while_a_canary_tries_it(
    harness_factory: Any, tmp_path: Path, mode: str, state: str, result: str
) -> None:
    cfg = make_config(tmp_path, task={"canary": {"mode": mode, **CANARY}})
    seed(cfg, tmp_path)
    h = await harness_factory(cfg, rule="last_word")
    info = await h.gw.orchestrator.train("classify", "test")
    assert info is not None and info.version == "v2" and info.state == state
    counted = {
        r: h.gw.metrics.value("apprentice_training_runs_total", {"task": "classify", "result": r})
        for r in RESULTS
    }
    assert counted == {r: (1.0 if r == result else None) for r in RESULTS}
