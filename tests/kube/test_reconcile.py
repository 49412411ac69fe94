"""Pure reconciliation decisions."""

from __future__ import annotations

import datetime as dt

import pytest
from kube_gateway import task_state

from apprentice.kube import reconcile, status_models
from apprentice.reporting import status as status_mod

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


@pytest.mark.parametrize(
    ("desired", "actual", "differs"),
    [
        ({"a": 1}, {"a": 1, "server": "added"}, False),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2]}}, False),
        ({"a": {"b": [1, 2]}}, {"a": {"b": [2, 1]}}, True),
        ({"limits": {"nvidia.com/gpu": 1}}, {"limits": {"nvidia.com/gpu": "1"}}, False),
        ({"a": True}, {"a": 1}, True),
        ({"a": 1}, {}, True),
        ({"a": [{"x": 1}]}, {"a": [{"x": 1, "y": 2}]}, False),
    ],
)
def test_differs_compares_only_what_the_operator_sets(
    desired: object, actual: object, differs: bool
) -> None:
    assert reconcile.differs(desired, actual) is differs


def test_set_condition_moves_transition_time_only_on_status_change() -> None:
    conds = reconcile.set_condition([], "Ready", False, "Starting", "", generation=1, now=T0)
    conds = reconcile.set_condition(conds, "Ready", False, "Starting", "x", generation=2, now=T1)
    assert conds == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Starting",
            "message": "x",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": 2,
        }
    ]
    conds = reconcile.set_condition(conds, "Ready", True, "Up", "", generation=2, now=T1)
    assert conds[0]["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert conds[0]["status"] == "True"


def test_status_from_state_maps_the_contract_to_camel_case() -> None:
    state = task_state(
        "t",
        phase="steady_state",
        phase_number=3,
        confidence=0.9,
        confidence_lower_bound=0.85,
        sampling_rate=0.1,
        estimated_savings=12.5,
        active_version="v2",
    )
    status = reconcile.status_from_state(state)
    assert status == {
        "phase": "steady_state",
        "phaseNumber": 3,
        "confidence": 0.9,
        "confidenceLowerBound": 0.85,
        "samplingRate": 0.1,
        "trend": 0.0,
        "drift": False,
        "shift": False,
        "coaching": False,
        "emergency": False,
        "examples": {"train": 12, "heldout": 2},
        "spend": {"today": 0.42, "week": 1.5, "month": 3.25, "currency": "USD"},
        "estimatedSavings": 12.5,
        "activeModelVersion": "v2",
        "canary": None,  # null when none runs: the merge patch removes an ended one
    }


CANARY = {
    "version": "v3",
    "active_version": "v2",
    "mode": "share",
    "share": 0.1,
    "margin": 0.0,
    "started_at": "2026-01-01T00:00:00.250000+00:00",
    "candidate": {"comparisons": 40, "agreement": 0.925},
    "active": {"comparisons": 120, "agreement": 0.9},
    "verdict": "continue",
    "reason": "undecided: d = +0.025",
}


def test_a_running_canary_maps_to_status_canary_in_camel_case() -> None:
    status = reconcile.status_from_state(task_state("t", active_version="v2", canary=CANARY))
    assert status["canary"] == {
        "version": "v3",
        "activeVersion": "v2",
        "mode": "share",
        "share": 0.1,
        "margin": 0.0,
        "since": "2026-01-01T00:00:00Z",
        "candidate": {"comparisons": 40, "agreement": 0.925},
        "active": {"comparisons": 120, "agreement": 0.9},
    }
    assert reconcile.status_from_state(task_state("t", canary=None))["canary"] is None


def test_every_status_canary_field_comes_from_the_gateways_canary_contract() -> None:
    """The gateway's own model (what /state serialises), so a renamed key there fails here."""
    tally = status_mod.CanaryTally(comparisons=3, agreement=0.5)
    live = status_mod.CanaryStatus(
        version="v3", active_version="v2", mode="shadow", share=0.2, margin=-0.02,
        started_at="2026-01-01T00:00:00+00:00", candidate=tally, active=tally,
    )  # fmt: skip
    canary = reconcile.status_from_state(task_state("t", canary=live.model_dump(mode="json")))
    shown = canary["canary"]
    assert set(shown) == {f.alias for f in status_models.TaskCanary.model_fields.values()}
    assert all(v is not None for v in shown.values()), shown


def test_the_canary_condition_is_true_while_one_runs_then_false_and_absent_before() -> None:
    running = reconcile.canary_condition(task_state("t", canary=CANARY), {})
    assert running is not None and running[:2] == (True, "CanaryRunning")
    assert "v3 in share mode on 10% of live traffic" in running[2]
    assert "0.925 over 40 comparisons" in running[2] and "v2 0.9 over 120" in running[2]
    old = {"canary": {"version": "v3"}}
    ended = reconcile.canary_condition(task_state("t"), old)
    assert ended == (False, "CanaryEnded", "canary v3 ended: its ModelVersion has the verdict")
    assert reconcile.canary_condition(task_state("t"), {}) is None


@pytest.mark.parametrize(
    ("state", "expect"),
    [
        (
            task_state("t"),
            {
                "Ready": "True",
                "BudgetExhausted": "False",
                "Training": "False",
                "Degraded": "False",
                "Reconciling": "False",
                "Stalled": "False",
            },
        ),
        (
            task_state("t", budget_exhausted=True, training_in_progress=True, emergency=True),
            {"BudgetExhausted": "True", "Training": "True", "Degraded": "True"},
        ),
    ],
)
def test_state_conditions(state: dict[str, object], expect: dict[str, str]) -> None:
    conds = reconcile.state_conditions([], state, generation=1, training_running=False, now=T0)
    got = {c["type"]: c["status"] for c in conds}
    assert expect.items() <= got.items()


def test_a_training_failure_survives_polls_until_promotion() -> None:
    kwargs = {"generation": 1, "training_running": False, "now": T1}
    failed = reconcile.state_conditions([], task_state("t"), training_failure="v2: OOM", **kwargs)  # type: ignore[arg-type]
    degraded = reconcile.condition(failed, "Degraded")
    assert degraded is not None
    assert (degraded["status"], degraded["reason"], degraded["message"]) == (
        "True",
        "TrainingFailed",
        "v2: OOM",
    )
    emergency = reconcile.state_conditions(
        failed, task_state("t", emergency=True), training_failure="v2: OOM", **kwargs
    )  # type: ignore[arg-type]
    assert reconcile.condition(emergency, "Degraded")["reason"] == "Emergency"  # type: ignore[index]
    healed = reconcile.state_conditions(failed, task_state("t"), **kwargs)  # type: ignore[arg-type]
    assert reconcile.condition(healed, "Degraded")["status"] == "False"  # type: ignore[index]


def test_events_for_phase_changes_and_new_alarms_only() -> None:
    alarms = [
        {"kind": "drift", "index": 10, "comparisons": 5},
        {"kind": "shift", "index": 20, "comparisons": 9},
    ]
    state = task_state("t", phase="reinforcement", alarms=alarms)
    events = reconcile.events_for({"phase": "cold_start", "lastAlarmIndex": 10}, state)
    assert events == [
        ("Normal", "PhaseChanged", "cold_start -> reinforcement"),
        ("Warning", "Alarm", "shift at request 20 (9 comparisons)"),
    ]
    assert reconcile.last_alarm_index(state, 10) == 20
    assert reconcile.events_for({}, task_state("t")) == []


@pytest.mark.parametrize(
    ("existing", "expect"),
    [
        ([], "v1"),
        (["v1", "v2"], "v3"),
        (["v9", "v10", "weird"], "v11"),
        (["v2", "v2"], "v3"),
    ],
)
def test_next_version(existing: list[str], expect: str) -> None:
    assert reconcile.next_version(existing) == expect


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ({}, "pending"),
        ({"active": 1}, "running"),
        ({"active": 1, "ready": 1}, "running"),
        ({"active": 1, "ready": 0}, "pending"),  # a pod waiting for a node or a GPU
        ({"succeeded": 1}, "succeeded"),
        ({"conditions": [{"type": "Complete", "status": "True"}]}, "succeeded"),
        (
            {
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "DeadlineExceeded",
                        "message": "too slow",
                    }
                ]
            },
            "failed",
        ),
        ({"active": 1, "conditions": [{"type": "Failed", "status": "False"}]}, "running"),
    ],
)
def test_job_outcome(status: dict[str, object], outcome: str) -> None:
    assert reconcile.job_outcome({"status": status})[0] == outcome


def test_failed_job_reason_is_kept() -> None:
    job = {
        "status": {
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "too slow",
                }
            ]
        }
    }
    assert reconcile.job_outcome(job) == ("failed", "DeadlineExceeded: too slow")


@pytest.mark.parametrize(
    ("end", "text"),
    [
        ("2026-01-01T00:00:42Z", "42s"),
        ("2026-01-01T00:05:03Z", "5m3s"),
        ("2026-01-01T02:00:01Z", "2h0m1s"),
        (None, "5m0s"),
    ],
)
def test_format_duration(end: str | None, text: str) -> None:
    assert reconcile.format_duration("2026-01-01T00:00:00Z", end, T1) == text
    assert reconcile.format_duration(None, end, T1) is None


def test_budget_exhausted_names_the_cap_and_its_reset() -> None:
    state = task_state("t", budget_exhausted=True)
    state["budget_cap"] = {
        "scope": "t",
        "window": "daily",
        "cap": 2.0,
        "spend": 1.9996,
        "resets_at": "2026-12-01T00:00:00+00:00",
    }
    conds = reconcile.state_conditions([], state, generation=1, training_running=False, now=T0)
    budget = next(c for c in conds if c["type"] == "BudgetExhausted")
    assert budget["status"] == "True"
    assert budget["message"] == (
        "daily cap of t: spent 1.9996 of 2.0 USD; resets at 2026-12-01T00:00:00+00:00"
    )


def test_a_run_the_gateway_rejected_degrades_the_task_with_its_reason() -> None:
    state = task_state("t")
    state["last_training"] = {
        "ok": False,
        "at": "2026-11-30T08:00:00+00:00",
        "reason": "rejected: held-out 0.61 < 0.85",
        "next_retry": "after 40 more teacher examples",
    }
    conds = reconcile.state_conditions([], state, generation=1, training_running=False, now=T0)
    degraded = next(c for c in conds if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "TrainingFailed")
    assert degraded["message"] == (
        "rejected: held-out 0.61 < 0.85; next retry after 40 more teacher examples"
    )
    state["last_training"] = {**state["last_training"], "ok": True, "reason": None}
    conds = reconcile.state_conditions(conds, state, generation=1, training_running=False, now=T0)
    assert next(c for c in conds if c["type"] == "Degraded")["status"] == "False"


def test_every_status_field_from_the_gateway_is_a_task_status_field() -> None:
    # DistilledTaskStatus mirrors the gateway's TaskStatus contract: a field renamed or
    # dropped there must not leave a status field that is silently always null.
    from apprentice.reporting.status import TaskStatus

    for name in reconcile.FROM_GATEWAY:
        assert reconcile.GATEWAY_NAMES.get(name, name) in TaskStatus.model_fields, name
