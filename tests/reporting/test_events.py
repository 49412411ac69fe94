"""Events from engine steps, alert amounts, savings net of local compute (issue 10)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from apprentice import config
from apprentice.engine import lifecycle
from apprentice.reporting import alerts, events, snapshot
from apprentice.store import open_store, records

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def params() -> lifecycle.TaskParams:
    return lifecycle.TaskParams(task="t", phase1_to_phase2=5, fine_tune_batch_size=10)


def test_a_step_that_changes_phase_and_raises_alarms_gives_one_event_each() -> None:
    before = lifecycle.initial(params())
    after = dataclasses.replace(before, phase=lifecycle.Phase.reinforcement, coaching=False)
    alarm = lifecycle.Alarm(lifecycle.AlarmKind.shift, 41, 12)
    found = events.transitions(before, after, [alarm], NOW, index=41)
    assert [e.kind for e in found] == ["shift", "phase"]
    assert found[0].data["index"] == 41 and "request 41" in found[0].message
    assert found[1].data == {
        "index": 41,
        "comparisons": 0,
        "before": "cold_start",
        "after": "reinforcement",
        "confidence": None,
        "sampling_rate": 1.0,
    }
    assert events.transitions(after, after, [], NOW, index=42) == []


def test_training_promotion_rejection_and_pause_are_events() -> None:
    s0 = lifecycle.record_example(lifecycle.initial(params()), 5)
    s1 = lifecycle.training_started(s0)
    s2 = lifecycle.version_promoted(lifecycle.training_finished(s1), "v1")
    s3 = lifecycle.version_rejected(s2, "v2")
    s4 = lifecycle.pause(s3)
    kinds = [
        [e.kind for e in events.transitions(a, b, [], NOW, index=0)]
        for a, b in ((s0, s1), (s1, s2), (s2, s3), (s3, s4))
    ]
    assert kinds == [["training_started"], ["phase", "promoted"], ["rejected"], ["paused"]]
    failed = events.training_event("t", ok=False, reason="oom", at=NOW, next_retry="now")
    assert (
        failed.kind == "training_failed"
        and failed.message == "training failed: oom; next retry now"
    )


def test_an_interrupted_run_is_due_again_at_once_and_survives_a_save() -> None:
    state = lifecycle.training_started(lifecycle.record_example(lifecycle.initial(params()), 7))
    killed = lifecycle.training_interrupted(state)
    assert not killed.training_in_progress
    assert lifecycle.training_due(killed).reason == "resume: the last run was interrupted"
    loaded = lifecycle.TaskState.from_dict(killed.to_dict(), params())
    assert loaded.interrupted and lifecycle.training_due(loaded).due
    assert not lifecycle.training_started(loaded).interrupted
    # A plain failure waits for a whole new batch instead, and says so.
    failed = lifecycle.training_finished(state, ok=False)
    assert snapshot.next_retry(failed) == "after 10 more teacher examples"
    assert snapshot.next_retry(lifecycle.pause(failed)) == "when the task is resumed"


def test_alert_amounts_keep_their_digits() -> None:
    [alert] = alerts.budget_alerts(
        "classify", spend={"daily": 0.0044}, caps={"daily": 0.005}, currency="USD"
    )
    assert alert.message == "daily spend 0.0044 of 0.0050 USD (88%) for classify"
    assert alerts.amount(12.5) == "12.50" and alerts.amount(0.0) == "0.00"
    assert alerts.amount(0.25) == "0.25" and alerts.amount(0.012) == "0.012"


def test_savings_subtract_local_compute_at_cost_per_hour(tmp_path) -> None:
    text = (
        "tasks: [{name: t, output_schema: {a: str}}]\n"
        "remote: {provider: anthropic, model: m, api_key_env: K}\n"
        f"local: {{cost_per_hour: 0.5}}\nstore: {{url: 'sqlite:///{tmp_path}/a.db'}}\n"
    )
    cfg = config.loads(text)
    with open_store(cfg.store.url) as store:
        assert snapshot.local_compute_cost(cfg, store, "t", NOW) == 0.0  # nothing serves yet
        store.add_version(
            records.ModelVersionRecord(
                task="t",
                version="v1",
                state="candidate",
                path=str(tmp_path),
                base_model=None,
                created_at=NOW - timedelta(hours=4),
                updated_at=NOW - timedelta(hours=4),
            )
        )
        store.update_version("t", "v1", state="promoted")
        # promoted_at is the store's clock (now), not NOW: count from it, whatever the hour.
        promoted = store.version("t", "v1").promoted_at
        assert promoted is not None
        cost = snapshot.local_compute_cost(cfg, store, "t", promoted + timedelta(hours=2))
        assert abs(cost - 0.5 * 2) < 1e-9
        assert snapshot.local_compute_cost(cfg, store, "t", promoted - timedelta(hours=1)) == 0.0


def test_alarm_alerts_carry_the_numbers() -> None:
    from apprentice.reporting.status import EngineView

    view = EngineView(phase="steady_state", confidence=0.612, comparisons=1234, sampling_rate=1.0)
    alert = alerts.alarm("shift", "t", view)
    assert alert.message == (
        "shift on task t: agreement 0.612 over the last comparisons (1,234 in all), "
        "sampling 100.0% of requests, phase steady_state"
    )
    assert alert.details["confidence"] == 0.612
