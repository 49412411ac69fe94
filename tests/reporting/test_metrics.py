"""Metrics: per-app registries and the documented names."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from apprentice.reporting import status
from apprentice.reporting.metrics import METRIC_NAMES, Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reference" / "metrics.md"


def exercised() -> Metrics:
    m = Metrics()
    m.record_request("t", "both", "teacher", 0.012)
    m.record_request("t", "local_only", "student", 0.003)
    m.record_teacher_call("t", "anthropic", 0.0042, 1.5)
    m.record_student_call("t", 0.002)
    m.record_agreement("t", 1.0)
    m.record_agreement("t", 0.5)
    m.record_savings("t", 0.004)
    m.record_error("t", "RateLimited")
    m.set_task_state("t", phase="steady_state", sampling_rate=0.05, confidence=0.97,
                     confidence_lower_bound=0.93)  # fmt: skip
    m.set_examples("t", 270, 30)
    m.set_budget_spend("global", "daily", 1.25)
    m.record_alert("coaching")
    m.record_alert_dropped("queue_full")
    m.record_training_run("t", "promoted")
    return m


def test_values_land_under_the_documented_names() -> None:
    m = exercised()
    assert m.value("apprentice_requests_total", {"task": "t", "route": "both"}) == 1
    assert m.value("apprentice_teacher_calls_total", {"task": "t", "provider": "anthropic"}) == 1
    assert m.value("apprentice_teacher_cost_usd_total", {"task": "t"}) == 0.0042
    assert m.value("apprentice_savings_usd_total", {"task": "t"}) == 0.004
    assert m.value("apprentice_agreement_count", {"task": "t"}) == 2
    assert m.value("apprentice_agreement_sum", {"task": "t"}) == 1.5
    assert m.value("apprentice_phase", {"task": "t"}) == 3
    assert m.value("apprentice_sampling_rate", {"task": "t"}) == 0.05
    assert m.value("apprentice_confidence_lower_bound", {"task": "t"}) == 0.93
    assert m.value("apprentice_examples", {"task": "t", "split": "heldout"}) == 30
    assert m.value("apprentice_budget_spend_usd", {"scope": "global", "window": "daily"}) == 1.25
    labels = {"task": "t", "served_by": "student", "le": "0.005"}
    assert m.value("apprentice_request_duration_seconds_bucket", labels) == 1
    assert m.value("apprentice_training_runs_total", {"task": "t", "result": "promoted"}) == 1


def test_every_name_is_exposed_and_documented() -> None:
    text = exercised().render().decode()
    families = {f.name for f in text_string_to_metric_families(text)}
    docs = DOCS.read_text(encoding="utf-8")
    for name in METRIC_NAMES:
        base = name.removesuffix("_total")
        assert base in families, name
        assert f"`{name}`" in docs, f"{name} is not documented in docs/reference/metrics.md"


def test_registries_are_per_app() -> None:
    a, b = Metrics(), Metrics()
    a.record_request("t", "both", "teacher", 0.01)
    assert a.value("apprentice_requests_total", {"task": "t", "route": "both"}) == 1
    assert b.value("apprentice_requests_total", {"task": "t", "route": "both"}) is None


def test_update_from_status_sets_the_gauges() -> None:
    m = Metrics()
    s = status.build_task_status(
        "t",
        engine=status.EngineView(phase="reinforcement", sampling_rate=1.0, confidence=0.8),
        counters=status.StoreCounters(train_examples=9, heldout_examples=1),
        spend=status.SpendWindows(today=0.5, week=1.0, month=2.0),
    )
    m.update_from_status(s)
    assert m.value("apprentice_phase", {"task": "t"}) == 2
    assert m.value("apprentice_confidence", {"task": "t"}) == 0.8
    assert m.value("apprentice_confidence_lower_bound", {"task": "t"}) is None
    assert m.value("apprentice_examples", {"task": "t", "split": "train"}) == 9
    assert m.value("apprentice_budget_spend_usd", {"scope": "t", "window": "monthly"}) == 2.0
