"""``apprentice simulate`` on the committed example traces (issue 2's acceptance)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from apprentice import cli
from apprentice.commands import simulate as simulate_command
from apprentice.engine import lifecycle, simulation

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "examples" / "traces"
CONFIG = TRACES / "simulate.yaml"
ALARMS_OF_TROUBLE = {"drift", "shift", "emergency"}


def run_json(capsys, name: str, *extra: str) -> dict:
    code = cli.main(
        [
            "simulate",
            "-c",
            str(CONFIG),
            "--task",
            "classify_ticket",
            "--trace",
            str(TRACES / f"{name}.jsonl"),
            "--json",
            *extra,
        ]
    )
    assert code == 0
    return json.loads(capsys.readouterr().out)


def comparisons_before(result: dict, index: int, name: str) -> int:
    """Comparisons made before request ``index``, replayed through the engine."""
    scores = simulate_command.parse_trace((TRACES / f"{name}.jsonl").read_text().splitlines())
    params = lifecycle.TaskParams.from_config(
        __import__("apprentice.config", fromlist=["load"]).load(CONFIG), "classify_ticket"
    )
    return simulation.simulate(params, scores[:index]).comparisons


@pytest.mark.parametrize("name", ["stationary", "drop", "slow_decline", "few_perfect"])
def test_committed_outputs_match_the_engine(capsys, name):
    result = run_json(capsys, name)
    assert result == json.loads((TRACES / f"{name}.json").read_text())
    assert set(result) >= {
        "requests",
        "teacher_calls",
        "comparisons",
        "graduated_at",
        "final_phase",
        "final_sampling_rate",
        "alarms",
        "phases",
    }


def test_stationary_graduates_to_the_floor_without_alarms(capsys):
    result = run_json(capsys, "stationary")
    assert result["graduated_at"] is not None
    assert result["final_phase"] == "steady_state"
    assert result["final_sampling_rate"] <= 0.02 * 1.5
    assert not {a["kind"] for a in result["alarms"]} & ALARMS_OF_TROUBLE
    assert result["teacher_calls"] < 0.1 * result["requests"]


def test_a_drop_alarms_within_ten_comparisons_and_leaves_steady_state(capsys):
    result = run_json(capsys, "drop")
    at_drop = comparisons_before(result, 4000, "drop")
    first = min(a["comparisons"] for a in result["alarms"] if a["index"] >= 4000)
    assert first - at_drop <= 10
    assert not [a for a in result["alarms"] if a["index"] < 4000]
    assert result["final_phase"] != "steady_state"
    assert {"index": 4000, "phase": "steady_state"} not in result["phases"]
    assert any(p["phase"] == "reinforcement" and p["index"] >= 4000 for p in result["phases"])


def test_a_slow_decline_alarms_before_coaching_trigger(capsys):
    result = run_json(capsys, "slow_decline")
    # Agreement is 0.95 - 0.0001 * (i - 3000): it reaches 0.70 at request 5500.
    first = min(a["index"] for a in result["alarms"])
    assert 3000 < first < 5500
    assert result["alarms"][0]["kind"] in {"drift", "shift"}


def test_fifteen_perfect_comparisons_never_graduate(capsys):
    result = run_json(capsys, "few_perfect")
    assert result["comparisons"] == 15
    assert result["graduated_at"] is None
    assert result["final_phase"] == "reinforcement"


def test_training_delay_and_seed_are_honoured(capsys):
    delayed = run_json(capsys, "stationary", "--training-delay", "200")
    assert delayed["phases"][1] == {"index": 249, "phase": "reinforcement"}
    other = run_json(capsys, "stationary", "--seed", "4")
    assert other["comparisons"] != run_json(capsys, "stationary")["comparisons"]


def test_the_timeline_names_phases_alarms_and_rates(capsys):
    code = cli.main(
        [
            "simulate",
            "-c",
            str(CONFIG),
            "--task",
            "classify_ticket",
            "--trace",
            str(TRACES / "drop.jsonl"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "phase -> steady_state (3)" in out
    assert "shift alarm" in out and "emergency alarm" in out
    assert "sampling rate 0.0" in out


def test_simulate_states_the_detection_guarantee(capsys):
    result = run_json(capsys, "stationary")
    guarantee = result["guarantee"]
    assert guarantee["drop_to"] == 0.70
    assert guarantee["max_detection_delay"] == 5000
    assert 0 < guarantee["detected_within"] <= 5000
    code = cli.main(
        [
            "simulate",
            "-c",
            str(CONFIG),
            "--task",
            "classify_ticket",
            "--trace",
            str(TRACES / "stationary.jsonl"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert (
        f"a drop to 0.70 is detected within {guarantee['detected_within']:,} requests (95%)" in out
    )


def test_generated_traces_are_deterministic():
    module = __import__("runpy").run_path(str(TRACES / "generate.py"))
    for name, make in module["TRACES"].items():
        assert make(random.Random(1)) == make(random.Random(1)), name


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"score": 1.5}', "outside [0, 1]"),
        ('{"score": "high"}', "must be a number"),
        ('{"agree": 1}', "expected"),
        ("not json", "not JSON"),
    ],
)
def test_bad_trace_lines_name_the_line(tmp_path, capsys, line, message):
    trace = tmp_path / "t.jsonl"
    trace.write_text('{"agree": true}\n' + line + "\n")
    code = cli.main(
        ["simulate", "-c", str(CONFIG), "--task", "classify_ticket", "--trace", str(trace)]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert f"{trace}:2" in err and message in err


def test_unknown_task_is_an_error(capsys):
    code = cli.main(
        [
            "simulate",
            "-c",
            str(CONFIG),
            "--task",
            "nope",
            "--trace",
            str(TRACES / "few_perfect.jsonl"),
        ]
    )
    assert code == 1
    assert "no task named 'nope'" in capsys.readouterr().err
