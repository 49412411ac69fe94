"""Lifecycle: the per-task state machine, one transition at a time."""

from __future__ import annotations

import dataclasses
import json

from apprentice import config
from apprentice.engine import lifecycle
from apprentice.engine.lifecycle import AlarmKind, Phase, Route

PARAMS = lifecycle.TaskParams(phase1_to_phase2=5, fine_tune_batch_size=20)


def promoted(params: lifecycle.TaskParams = PARAMS) -> lifecycle.TaskState:
    state = lifecycle.initial(params)
    state = lifecycle.record_example(state, params.phase1_to_phase2)
    state = lifecycle.training_started(state)
    state = lifecycle.training_finished(state, ok=True)
    return lifecycle.version_promoted(state, "v1")


def feed(state, scores, start=0):
    alarms = []
    for i, score in enumerate(scores):
        state, raised = lifecycle.observe(state, score, index=start + i)
        alarms += raised
    return state, alarms


def graduated() -> lifecycle.TaskState:
    state, _ = feed(promoted(), [0.97] * 60)
    assert state.phase is Phase.steady_state
    return state


def route(state, rid="r", student=True, teacher=True):
    return lifecycle.route(state, rid, student_available=student, teacher_allowed=teacher)


def test_phase_numbers_and_values():
    assert [(p.value, p.number) for p in Phase] == [
        ("cold_start", 1),
        ("reinforcement", 2),
        ("steady_state", 3),
    ]


def test_cold_start_sends_everything_to_the_teacher_until_trained():
    state = lifecycle.initial(PARAMS)
    d = route(state, student=False)
    assert (d.route, d.serve, d.reason) == (Route.remote_only, "teacher", "cold_start")
    state = lifecycle.record_example(state, 4)
    assert not lifecycle.training_due(state).due
    state = lifecycle.record_example(state)
    due = lifecycle.training_due(state)
    assert due.due and due.reason is not None and due.reason.startswith("cold_start")
    state = lifecycle.training_started(state)
    assert not lifecycle.training_due(state).due  # one run at a time
    state = lifecycle.version_promoted(lifecycle.training_finished(state), "v1")
    assert state.phase is Phase.reinforcement


def test_budget_exhausted_without_student_is_rejected_and_with_student_local():
    cold = lifecycle.initial(PARAMS)
    d = route(cold, student=False, teacher=False)
    assert d.route is Route.rejected and d.budget_exhausted and d.serve is None
    d = route(promoted(), teacher=False)
    assert (d.route, d.serve, d.budget_exhausted) == (Route.local_only, "student", True)
    d = route(promoted(), student=False)
    assert (d.route, d.reason) == (Route.remote_only, "student_unavailable")


def test_reinforcement_compares_every_request_and_serves_the_teacher():
    d = route(promoted())
    assert (d.route, d.serve, d.sampling_rate) == (Route.both, "teacher", 1.0)
    assert d.compares and d.calls_student and d.calls_teacher


def test_fifteen_perfect_comparisons_never_graduate():
    state, _ = feed(promoted(), [1.0] * 15)
    assert state.phase is Phase.reinforcement
    assert state.confidence.lower_bound is not None and state.confidence.lower_bound < 0.85


def test_graduation_on_the_lower_bound_then_the_student_serves():
    state = graduated()
    d = route(state)
    assert d.sampling_rate < 0.1
    sampled = [route(state, f"r{i}") for i in range(2000)]
    assert {x.route for x in sampled} == {Route.both, Route.local_only}
    assert all(x.serve == ("teacher" if x.route is Route.both else "student") for x in sampled)


def test_coaching_then_emergency_demotes_and_recovery_graduates_again():
    state, alarms = feed(graduated(), [0.62] * 40, start=100)
    assert state.coaching and state.phase is Phase.steady_state
    assert state.sampling_rate == 1.0
    assert [a.kind for a in alarms].count(AlarmKind.coaching) == 1
    state = lifecycle.record_example(state, 10)
    assert lifecycle.training_due(state).reason.startswith("coaching")
    state = lifecycle.training_finished(lifecycle.training_started(state))
    state = lifecycle.record_example(state, 10)
    assert not lifecycle.training_due(state).due  # one remedial run per episode

    state, alarms = feed(state, [0.2] * 60, start=200)
    assert AlarmKind.emergency in [a.kind for a in alarms]
    assert state.phase is Phase.reinforcement and state.emergency
    assert route(state).serve == "teacher"

    state, _ = feed(state, [1.0] * 100, start=300)
    assert state.phase is Phase.steady_state and not state.emergency


def test_pause_freezes_transitions_and_training():
    state = lifecycle.pause(promoted())
    state, _ = feed(state, [1.0] * 80)
    assert state.phase is Phase.reinforcement
    assert not lifecycle.training_due(lifecycle.record_example(state, 100)).due
    state, _ = feed(lifecycle.resume(state), [1.0])
    assert state.phase is Phase.steady_state


def test_batch_training_every_fine_tune_batch_size_examples():
    state = promoted()
    state = lifecycle.record_example(state, 19)
    assert not lifecycle.training_due(state).due
    state = lifecycle.record_example(state)
    assert lifecycle.training_due(state).reason == "batch: 20 new examples"
    rejected = lifecycle.version_rejected(lifecycle.training_started(state), "v2")
    assert rejected.active_version == "v1" and rejected.last_rejected == "v2"


def test_state_round_trips_through_json():
    state, _ = feed(graduated(), [0.62] * 20, start=100)
    data = json.loads(json.dumps(state.to_dict()))
    back = lifecycle.TaskState.from_dict(data, PARAMS)
    assert back.to_dict() == state.to_dict()
    assert (back.phase, back.coaching, back.examples) == (
        state.phase,
        state.coaching,
        state.examples,
    )
    assert back.sampling_rate == state.sampling_rate
    assert route(back, "x") == route(state, "x")


def test_params_from_the_reference_config():
    cfg = config.load("apprentice.yaml")
    params = lifecycle.TaskParams.from_config(cfg, "classify_ticket")
    assert params.policy.min_floor == 0.05  # the task's override
    assert params.detectors.window_size == cfg.sampling.window_size
    assert params.fine_tune_batch_size == cfg.local.fine_tune_batch_size


def test_a_coaching_run_waits_for_answers_from_the_episode_itself():
    """Examples from before agreement fell teach nothing new: the early run waits
    for min_retrain_examples answers given since coaching began (issue 10)."""
    from apprentice.engine import lifecycle as lc

    p = lc.TaskParams(task="t", phase1_to_phase2=5, fine_tune_batch_size=100)
    s = lc.record_example(lc.initial(p), 5)
    s = lc.version_promoted(lc.training_finished(lc.training_started(s)), "v1")
    for i in range(60):
        s, _ = lc.observe(s, 1.0, index=i)
    s = lc.record_example(s, 50)  # 50 new examples since v1, all before the drop
    while not s.coaching:
        s, _ = lc.observe(s, 0.5, index=100)
    assert s.episode_start == 55
    assert not lc.training_due(s).due  # 50 >= 20 new, but none from the episode
    s = lc.record_example(s, p.min_retrain_examples)
    assert lc.training_due(s).reason == "coaching: 70 new examples"
    restored = lc.TaskState.from_dict(s.to_dict(), p)
    assert restored.episode_start == 55


def test_record_example_copies_every_field_but_the_count():
    """record_example spells out its copy (the hot path): a field added to TaskState and
    not copied there fails here, as does a sampling memo that changes."""
    state = lifecycle.training_started(graduated())
    before = lifecycle.current_sampling(state)
    after = lifecycle.record_example(state, 3)
    for f in dataclasses.fields(state):
        want = getattr(state, f.name) + 3 if f.name == "examples" else getattr(state, f.name)
        assert getattr(after, f.name) == want, f.name
    assert lifecycle.current_sampling(after) == before
    assert after == dataclasses.replace(state, examples=state.examples + 3)
