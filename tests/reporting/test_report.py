"""Report, status-from-store and the CLI over a store the real engine filled."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from lifecycle_sim import COST, START, TASK, Filled

from apprentice import cli
from apprentice.reporting import html, plots, snapshot, timeline
from apprentice.reporting import report as report_mod
from apprentice.reporting.cli import format_status


def test_timeline_follows_the_lifecycle(filled: Filled) -> None:
    t = timeline.collect(filled.store, TASK, window_size=60)
    assert t.requests == 1200
    assert [p.phase for p in t.phases][:3] == ["cold_start", "reinforcement", "steady_state"]
    assert t.phases[0] == timeline.PhaseSpan("cold_start", 0, 200)
    assert t.phases[-1].end_index == 1200
    assert t.cumulative_spend[-1] == pytest.approx(t.teacher_calls * COST)
    assert t.all_teacher_estimate == pytest.approx(1200 * COST)
    assert t.spend_reduction is not None and 0.5 < t.spend_reduction < 0.8
    v1, v2 = t.versions
    assert (v1.version, v1.state, v1.promoted_index) == ("v1", "promoted", 200)
    assert (v2.state, v2.reason) == ("rejected", "0.810 < active v1 0.950")
    kinds = [a["kind"] for a in t.alarms]
    assert "emergency" in kinds
    assert all(a["index"] >= 1000 for a in t.alarms)  # nothing fired before the drop
    # The rolling confidence is the window mean and its Wilson bound sits under it.
    assert all(lb <= c for lb, c in zip(t.confidence_lower_bound, t.confidence, strict=True))
    assert t.bucket == "hour" and sum(b.requests for b in t.spend_buckets) == 1200


def test_wilson_lower_bound() -> None:
    assert timeline.wilson_lower(1.0, 15) < 0.85  # fifteen perfect never graduate at 0.85
    assert timeline.wilson_lower(1.0, 60) > 0.93
    assert timeline.wilson_lower(0.5, 0) == 0.0


def test_spend_buckets_fill_gaps_and_estimate_all_teacher() -> None:
    from apprentice.store import RequestRecord

    reqs = [
        RequestRecord("a", TASK, START, "remote_only", "teacher", cost=0.01),
        RequestRecord("b", TASK, START + timedelta(minutes=2), "local_only", "student"),
    ]
    t = timeline.build_timeline(TASK, requests=reqs, comparisons=[])
    assert t.bucket == "minute"
    assert [(b.requests, b.teacher_spend, b.all_teacher_estimate) for b in t.spend_buckets] == [
        (1, 0.01, 0.01),
        (0, 0.0, 0.0),
        (1, 0.0, 0.01),
    ]
    assert t.spend_reduction == pytest.approx(0.5)


def test_status_from_store_matches_the_engine(filled: Filled) -> None:
    now = filled.end + timedelta(minutes=1)
    s = snapshot.status_from_store(filled.cfg, filled.store, TASK, now=now)
    assert s.requests == 1200
    assert s.teacher_calls + s.student_answers == 1200
    assert s.examples.train + s.examples.heldout == s.teacher_calls
    assert s.active_version == "v1"
    assert s.emergency and s.phase == "reinforcement"
    assert s.spend.today == pytest.approx(s.teacher_calls * COST)
    assert s.spend.caps.daily == 5.0 and s.spend.caps.weekly == 50.0
    assert s.estimated_savings == pytest.approx(s.student_answers * COST)
    assert any(a.kind == "emergency" for a in s.alarms)


def test_html_is_one_self_contained_file(filled: Filled, tmp_path: Path) -> None:
    statuses = snapshot.statuses_from_store(filled.cfg, filled.store).tasks
    report = report_mod.build_report(filled.store, filled.cfg, statuses=statuses)
    path = html.write_html(report, tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text and "https://" not in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 4
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "v2" in text and "0.810 &lt; active v1 0.950" in text  # escaped reason
    assert "emergency" in text
    # The timeline lists every event of the events table, not only alarms.
    timeline_html = text.split("<h3>Timeline</h3>", 1)[1]
    assert "version_rejected" in timeline_html and "v2 rejected" in timeline_html
    assert "emergency fired" in timeline_html
    data = report.to_json()
    assert json.loads(json.dumps(data))["tasks"][TASK]["timeline"]["requests"] == 1200


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real = builtins.__import__

    def deny(name: str, *args: object, **kw: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", deny)
    with pytest.raises(plots.PlotsUnavailable, match=r"apprentice\[plots\]"):
        plots.require_matplotlib()


def test_status_command_table_and_json(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "-c", str(filled.config_path)]) == 0
    table = capsys.readouterr().out
    assert "classify_ticket" in table and "EMERGENCY" in table
    assert "lower bound" in table and "held-out" in table and "est. savings" in table
    assert cli.main(["status", "-c", str(filled.config_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    task = data["tasks"][TASK]
    for key in ("phase", "confidence", "confidence_lower_bound", "sampling_rate", "examples",
                "teacher_calls", "student_answers", "spend", "estimated_savings",
                "active_version"):  # fmt: skip
        assert key in task
    assert set(task["spend"]) >= {"today", "week", "month"}


def test_status_command_rejects_unknown_task(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["status", "-c", str(filled.config_path), "--task", "nope"]) == 1
    assert "nope" in capsys.readouterr().err


def test_report_command_html_and_json(
    filled: Filled, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.html"
    assert cli.main(["report", "-c", str(filled.config_path), "--html", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["tasks"][TASK]["status"]["active_version"] == "v1"
    assert out.stat().st_size > 50_000
    assert cli.main(["report", "-c", str(filled.config_path)]) == 1


def test_format_status_flags_budget(filled: Filled) -> None:
    report = snapshot.statuses_from_store(filled.cfg, filled.store, now=filled.end)
    s = report.tasks[TASK].model_copy(update={"budget_exhausted": True})
    text = format_status(type(report)(tasks={TASK: s}))
    assert "BUDGET EXHAUSTED" in text
