"""TaskStatus: the contract's JSON shape, built by the one builder."""

from __future__ import annotations

import json

import pytest

from apprentice.config import BudgetCaps
from apprentice.reporting import status

CONTRACT_KEYS = [
    "task", "phase", "phase_number", "coaching", "emergency", "paused",
    "confidence", "confidence_lower_bound", "sampling_rate", "trend", "drift", "drift_at",
    "shift", "shift_at", "anti_correlation", "comparisons", "examples", "teacher_calls",
    "student_answers", "requests", "spend", "budget_exhausted", "budget_cap",
    "estimated_savings", "active_version", "training_due", "training_reason",
    "training_in_progress", "last_training", "alarms",
]  # fmt: skip


def build(**engine: object) -> status.TaskStatus:
    return status.build_task_status(
        "classify_ticket",
        engine=status.EngineView(**engine),  # type: ignore[arg-type]
        counters=status.StoreCounters(
            train_examples=270, heldout_examples=30, teacher_calls=400, student_answers=900
        ),
        spend=status.SpendWindows(today=1.2345678, week=3.0, month=9.5),
        caps=status.effective_caps(BudgetCaps(daily=2.0), BudgetCaps(daily=10, weekly=50)),
        estimated_savings=4.25,
        active_version="v2",
    )


def test_json_has_exactly_the_contract_keys() -> None:
    data = build(phase="steady_state", confidence=0.95, confidence_lower_bound=0.9).to_json()
    assert list(data) == CONTRACT_KEYS
    assert data["phase"] == "steady_state" and data["phase_number"] == 3
    assert data["examples"] == {"train": 270, "heldout": 30}
    assert data["spend"] == {
        "today": 1.234568,
        "week": 3.0,
        "month": 9.5,
        "currency": "USD",
        "caps": {"daily": 2.0, "weekly": 50.0, "monthly": None},
    }
    json.dumps(data)  # plain JSON


def test_round_trip_through_json() -> None:
    original = build(
        phase=2,
        drift_at=120,
        alarms=[{"kind": "drift", "index": 120, "comparisons": 80, "at": None}],
    )
    parsed = status.TaskStatus.from_json(json.loads(json.dumps(original.to_json())))
    assert parsed == original
    assert parsed.drift and not parsed.shift
    assert parsed.alarms[0].kind == "drift"


@pytest.mark.parametrize(
    ("given", "name"),
    [(1, "cold_start"), ("2", "reinforcement"), ("STEADY_STATE", "steady_state")],
)
def test_phase_accepts_names_numbers_and_enums(given: object, name: str) -> None:
    assert status.phase_name(given) == name


def test_unknown_phase_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cold_start"):
        status.phase_name("phase4")


def test_budget_exhausted_follows_caps_unless_the_ledger_says() -> None:
    base = dict(
        engine=status.EngineView(),
        counters=status.StoreCounters(),
        caps=status.Caps(daily=1.0),
    )
    under = status.build_task_status("t", spend=status.SpendWindows(today=0.5), **base)  # type: ignore[arg-type]
    at = status.build_task_status("t", spend=status.SpendWindows(today=1.0), **base)  # type: ignore[arg-type]
    told = status.build_task_status(
        "t",
        spend=status.SpendWindows(),
        budget_exhausted=True,
        **base,  # type: ignore[arg-type]
    )
    assert (under.budget_exhausted, at.budget_exhausted, told.budget_exhausted) == (
        False,
        True,
        True,
    )


def test_requests_prefer_the_store_count() -> None:
    s = status.build_task_status(
        "t",
        engine=status.EngineView(requests=5),
        counters=status.StoreCounters(requests=50),
        spend=status.SpendWindows(),
    )
    assert s.requests == 50


def test_effective_caps_take_the_tighter() -> None:
    caps = status.effective_caps(BudgetCaps(daily=5, monthly=20), BudgetCaps(daily=3, weekly=9))
    assert caps == status.Caps(daily=3, weekly=9, monthly=20)
    assert status.effective_caps(None, None) == status.Caps()


def test_status_report_is_keyed_by_task() -> None:
    report = status.StatusReport.of([build(), build().model_copy(update={"task": "other"})])
    assert sorted(report.to_json()["tasks"]) == ["classify_ticket", "other"]
