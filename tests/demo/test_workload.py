"""The demo's workload and config: deterministic, learnable, valid, and what the teacher replays."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from apprentice import schemas
from apprentice.demo import runner, scenario, workload
from apprentice.teachers import replay


def test_same_seed_same_tickets_and_all_distinct() -> None:
    a, b = workload.generate(2000, seed=7), workload.generate(2000, seed=7)
    assert [t.input for t in a] == [t.input for t in b]
    assert len({json.dumps(t.input, sort_keys=True) for t in a}) == 2000
    assert [t.input for t in workload.generate(50, seed=8)] != [t.input for t in a[:50]]


def test_a_new_category_appears_at_the_shift_and_nothing_before_it_changes() -> None:
    plain = workload.generate(1000, seed=7)
    shifted = workload.generate(1000, seed=7, shift_at=600)
    assert [t.input for t in shifted[:600]] == [t.input for t in plain[:600]]
    before = collections.Counter(t.output["category"] for t in shifted[:600])
    after = collections.Counter(t.output["category"] for t in shifted[600:])
    assert workload.SHIFT_CATEGORY not in before
    assert 0.35 < after[workload.SHIFT_CATEGORY] / 400 < 0.65


def test_tickets_are_short_varied_and_balanced() -> None:
    tickets = workload.generate(3000)
    lengths = [len(t.input["text"]) for t in tickets]
    assert min(lengths) >= 30 and max(lengths) <= 170
    assert 70 <= sum(lengths) / len(lengths) <= 130
    cats = collections.Counter(t.output["category"] for t in tickets)
    assert set(cats) == set(workload.CATEGORIES)
    assert min(cats.values()) > 3000 / len(workload.CATEGORIES) * 0.7
    assert set(collections.Counter(t.output["priority"] for t in tickets)) == {1, 2, 3, 4}
    meta = tickets[0].input["metadata"]
    assert set(meta) == {"channel", "customer_tier", "region"}


@pytest.mark.parametrize(
    ("urgency", "tier", "priority"),
    [("critical", "free", 1), ("high", "pro", 2), ("high", "enterprise", 1),
     ("normal", "enterprise", 2), ("low", "free", 4), ("low", "enterprise", 3)],
)  # fmt: skip
def test_priority_rule(urgency: str, tier: str, priority: int) -> None:
    task_input = {"text": "x", "metadata": {"customer_tier": tier}}
    assert workload.label(task_input, category="billing", urgency=urgency)["priority"] == priority


def test_answers_validate_against_the_demo_output_schema(tmp_path: Path) -> None:
    cfg = scenario.write_config(tmp_path)
    task = cfg.task(scenario.TASK)
    _, answers = workload.write_workload(tmp_path, 300)
    for line in answers.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        assert schemas.validation_errors(task.input_schema, row["input"]) == []
        assert schemas.validation_errors(task.output_schema, row["output"]) == []


def test_replay_teacher_reads_the_answers(tmp_path: Path) -> None:
    inputs, answers = workload.write_workload(tmp_path, 200)
    index = replay.load_answers(answers)
    assert len(index) == 200
    first = json.loads(inputs.read_text(encoding="utf-8").splitlines()[0])
    key = (None, json.dumps(first, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    assert index[key]["category"] in workload.CATEGORIES


def test_config_is_valid_and_self_contained(tmp_path: Path) -> None:
    cfg = scenario.write_config(tmp_path, scenario.DemoSettings(phase1_to_phase2=120))
    assert cfg.remote.provider.value == "replay"
    assert cfg.remote.price_as == "claude-sonnet-4-6"
    assert cfg.local.base_model == "apprentice/tiny"
    assert cfg.local.backend.value == "transformers"
    assert cfg.task(scenario.TASK).confidence_thresholds.phase1_to_phase2 == 120
    assert cfg.store.url == f"sqlite:///{tmp_path.resolve() / 'apprentice.db'}"
    assert Path(cfg.local.model_dir).is_absolute()
    assert "apprentice demo" in (tmp_path / "apprentice.yaml").read_text(encoding="utf-8")


def test_prepare_refuses_a_foreign_config(tmp_path: Path) -> None:
    (tmp_path / "apprentice.yaml").write_text("tasks: []\n", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not written by apprentice demo"):
        runner.prepare(tmp_path, 100, 7, scenario.DemoSettings())


def test_prepare_clears_an_earlier_demo(tmp_path: Path) -> None:
    runner.prepare(tmp_path, 100, 7, scenario.DemoSettings())
    (tmp_path / "apprentice.db").write_text("old", encoding="utf-8")
    (tmp_path / "models" / "classify_ticket").mkdir(parents=True)
    runner.prepare(tmp_path, 150, 7, scenario.DemoSettings())
    assert not (tmp_path / "apprentice.db").exists()
    assert not (tmp_path / "models").exists()
    assert len((tmp_path / "inputs.jsonl").read_text(encoding="utf-8").splitlines()) == 150


def test_last_window_reduction() -> None:
    costs = [0.01, 0.0, 0.0, 0.0]
    called = [True, False, False, False]
    assert runner.last_window_reduction(costs, called, 0.01) == 0.75
    assert runner.last_window_reduction([], [], 0.01) is None
    assert runner.last_window_reduction(costs, called, 0.0) is None


def test_summary_table_names_every_number() -> None:
    from apprentice.commands.demo import _table

    result = {
        "requests": 2500,
        "teacher_calls": 1088,
        "final_phase": "steady_state",
        "spend_reduction_last_1000": 0.973,
        "heldout_agreement": 0.9908,
        "seconds": 147.9,
        "steady_state_at": 1049,
        "shift_at": 2000,
        "shift_detected_at": 2013,
        "recovered_at": 2290,
        "versions": [
            {"version": "v1", "state": "retired", "heldout_score": 0.99},
            {"version": "v2", "state": "promoted", "heldout_score": 0.97},
        ],
        "active_version": "v2",
        "teacher_spend": 0.6287,
        "all_teacher_estimate": 1.4446,
        "peak_rss_mb": 783.0,
        "directory": "/tmp/d",
        "report": "/tmp/d/report.html",
    }
    text = _table(result)
    for needle in ("2,500", "1,088", "steady_state", "97.3%", "99.1%", "147.9", "1,049",
                   "/tmp/d/report.html", "apprentice status -c /tmp/d/apprentice.yaml",
                   "2,013", "2,290", "v1 retired 0.990, v2 promoted 0.970"):  # fmt: skip
        assert needle in text
