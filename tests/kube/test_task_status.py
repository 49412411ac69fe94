"""Pure status logic: training view and back-off, the timer's status, minimal patches."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from apprentice.kube import task_status
from apprentice.kube.task_status import Backoff, TrainingView, training_view

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def _tj(version: str, state: str, done: str | None = None, message: str = "x") -> dict[str, Any]:
    status: dict[str, Any] = {"state": state, "message": message}
    if done:
        status["completionTime"] = done
    return {"spec": {"version": version}, "status": status}


def _mv(version: str, state: str) -> dict[str, Any]:
    return {"spec": {"version": version}, "status": {"state": state}}


def test_failures_in_a_row_back_off_exponentially_then_stop() -> None:
    backoff = Backoff(base_s=600, cap_s=3600, max_failures=3)
    assert [backoff.delay_s(n) for n in range(5)] == [0, 600, 1200, 2400, 3600]
    one = training_view([_tj("v1", "Failed", "2026-01-01T11:55:00Z")], [])
    assert one.failures_in_a_row == 1
    assert one.blocked(NOW, backoff) == (
        "1 training run(s) failed in a row: next attempt after 2026-01-01T12:05:00Z"
    )
    assert one.blocked(NOW + dt.timedelta(minutes=6), backoff) is None
    three = training_view([_tj(f"v{i}", "Failed", "2026-01-01T08:00:00Z") for i in (1, 2, 3)], [])
    blocked = three.blocked(NOW + dt.timedelta(days=1), backoff)
    assert blocked is not None and "automatic training stopped" in blocked


def test_a_success_resets_the_count_and_a_promotion_clears_the_failure() -> None:
    jobs = [_tj("v1", "Failed", "2026-01-01T08:00:00Z"), _tj("v2", "Succeeded")]
    view = training_view(jobs, [_mv("v2", "promoted")])
    assert (view.failures_in_a_row, view.failure) == (0, None)
    jobs.append(_tj("v3", "Failed", "2026-01-01T11:00:00Z", message="OOM"))
    view = training_view(jobs, [_mv("v2", "promoted")])
    assert view.failure == "training v3 failed: OOM; the current version keeps serving"
    assert view.versions == ["v1", "v2", "v3"]


def test_a_running_or_waiting_run_blocks_a_new_one() -> None:
    waiting = {
        "spec": {"version": "v2"},
        "status": {
            "state": "Pending",
            "conditions": [
                {
                    "type": "Reconciling",
                    "status": "True",
                    "reason": "WaitingForGPU",
                    "message": "Insufficient nvidia.com/gpu",
                }
            ],
        },
    }
    view = training_view([_tj("v1", "Succeeded"), waiting], [])
    assert view.running and view.waiting == "Insufficient nvidia.com/gpu"
    assert view.blocked(NOW, Backoff()) == "a training run is in progress"


@pytest.mark.parametrize(
    ("parts", "conditions"),
    [
        ({"problem": "spec.x: bad"}, {"Stalled": "True", "Reconciling": "False", "Ready": "False"}),
        (
            {"gateway_error": "refused"},
            {"Stalled": "False", "Reconciling": "True", "Ready": "False"},
        ),
        (
            {"state": {"phase": "cold_start"}, "training": TrainingView()},
            {"Stalled": "False", "Reconciling": "False", "Ready": "True", "Degraded": "False"},
        ),
    ],
    ids=["invalid", "gateway-down", "serving"],
)
def test_every_path_sets_observed_generation(
    parts: dict[str, Any], conditions: dict[str, str]
) -> None:
    status = task_status.task_status({}, generation=7, now=NOW, endpoint="http://e", **parts)
    assert status["observedGeneration"] == 7
    got = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions.items() <= got.items()
    assert all(c["observedGeneration"] == 7 and c["reason"] for c in status["conditions"])


def test_status_patch_holds_only_changes() -> None:
    first = task_status.task_status(
        {}, generation=1, now=NOW, endpoint="e", state={"phase": "cold_start"}
    )
    old = {k: v for k, v in first.items() if v is not None}
    again = task_status.task_status(
        old,
        generation=1,
        now=NOW + dt.timedelta(minutes=5),
        endpoint="e",
        state={"phase": "cold_start"},
    )
    assert task_status.status_patch(old, again) == {}
    moved = task_status.task_status(
        old, generation=1, now=NOW, endpoint="e", state={"phase": "cold_start", "confidence": 0.9}
    )
    assert task_status.status_patch(old, moved) == {"confidence": 0.9}


def test_training_job_and_model_version_conditions() -> None:
    failed = task_status.training_job_conditions(
        [], "Failed", "TrainingFailed", "OOM", generation=2, now=NOW
    )
    by = {c["type"]: c["status"] for c in failed}
    assert by == {
        "Ready": "False",
        "Reconciling": "False",
        "Stalled": "True",
        "Succeeded": "False",
        "Failed": "True",
    }
    retired = task_status.model_version_conditions(
        [], "retired", "v5 replaced it", generation=1, now=NOW
    )
    assert {c["type"]: (c["status"], c["reason"]) for c in retired}["Ready"] == (
        "False",
        "Retired",
    )


def test_a_held_back_run_says_why_in_the_training_condition() -> None:
    view = training_view([_tj("v1", "Failed", "2026-01-01T11:55:00Z", message="OOM")], [])
    blocked = view.blocked(NOW, Backoff())
    status = task_status.task_status(
        {},
        generation=1,
        now=NOW,
        endpoint="e",
        state={"phase": "cold_start"},
        training=view,
        blocked=blocked,
    )
    by = {c["type"]: c for c in status["conditions"]}
    assert (by["Training"]["status"], by["Training"]["reason"]) == ("False", "BackingOff")
    assert by["Training"]["message"].endswith("next attempt after 2026-01-01T12:05:00Z")
    assert by["Degraded"]["reason"] == "TrainingFailed"
