"""A small demo end to end: real replay teacher, real tiny student, real training.

The full-size run and its timing live in bench/demo_bench.py (results committed);
this one proves the path works, phase 3 is reached and the JSON contract holds.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from apprentice import cli
from apprentice.commands.demo import SUMMARY_KEYS
from apprentice.demo import runner
from apprentice.demo.scenario import DemoSettings

pytestmark = pytest.mark.slow


def test_small_demo_reaches_steady_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phases: list[tuple[int, str]] = []
    result = asyncio.run(
        runner.run_demo(
            tmp_path,
            requests=1100,
            settings=DemoSettings(phase1_to_phase2=800),
            progress=False,
            on_phase=lambda index, phase: phases.append((index, phase)),
        )
    )
    data = result.to_json()
    json.dumps(data)
    for key in SUMMARY_KEYS:
        assert key in data
    assert [p for _, p in phases] == ["reinforcement", "steady_state"]
    assert phases[0][0] == 800  # the first request after the first promotion
    assert result.final_phase == "steady_state"
    assert result.heldout_agreement is not None and result.heldout_agreement >= 0.85
    assert 800 < result.teacher_calls < 1100
    assert result.report and Path(result.report).read_text(encoding="utf-8").startswith(
        "<!DOCTYPE html>"
    )
    # The directory is a working deployment: status reads it back.
    assert cli.main(["status", "-c", str(tmp_path / "apprentice.yaml"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)["tasks"]["classify_ticket"]
    assert status["phase"] == "steady_state"
    assert status["requests"] == 1100
    assert status["active_version"] == result.active_version
