"""Lifecycle: the per-task state machine of docs/architecture.md "The lifecycle".

::

    cold_start --first version promoted--> reinforcement --lower bound >= phase2_to_phase3-->
    steady_state --mean < emergency_threshold--> reinforcement (emergency: alarm, teacher
    serves, training due; recovery: graduate again on the lower bound)

- Phase 1: every request goes to the teacher; its answers become examples.
  Training is due once ``phase1_to_phase2`` examples exist.
- Phase 2: every request goes to both; the teacher's answer is served and each
  pair scored. Graduation needs the Wilson *lower* bound over at least
  :attr:`TaskParams.min_graduation_samples` comparisons (half the window) to
  reach ``phase2_to_phase3``: fifteen perfect comparisons give 0.80 at 95%.
- Phase 3: the student serves; the sampling rate follows the decay curve of
  :mod:`apprentice.engine.sampling`. Under ``coaching_trigger`` the task is
  *coaching* (rate 1.0, training due on new examples); under
  ``emergency_threshold`` it is demoted to phase 2 with ``emergency`` set
  (teacher serves, alarm, training due). Recovery walks back up the same
  path: comparisons continue, ``emergency`` clears once the mean is back over
  ``coaching_trigger`` and the task graduates again on the lower bound, after
  which the rate falls along the same curve.
- Paused: routing continues as the phase says, but no phase changes and no
  training are started until resumed (alarms are still raised).

Counters. The engine keeps only what its decisions read: comparisons (in the
confidence window, all-time count included) and examples (training due). How
many requests, teacher calls and student answers a task served are facts of
the request log; the store counts them and status joins both. Callers pass the
request index into :func:`observe` so alarms say where they fired.

The state, its parameters and the values handed out are in :mod:`apprentice.engine.state`.

Whoever answers: when the teacher is called, its answer is served (docs/architecture.md,
"The request pipeline"); the student's answer is served only when the teacher is not called.
"""

from __future__ import annotations

from dataclasses import replace

from apprentice.engine import confidence, sampling
from apprentice.engine.confidence import ConfidenceState
from apprentice.engine.state import (
    MAX_ALARMS,
    Alarm,
    AlarmKind,
    Decision,
    TaskParams,
    TaskState,
    TrainingDue,
    current_sampling,
    initial,
)
from apprentice.vocabulary import Phase, Route

__all__ = [
    "Alarm",
    "AlarmKind",
    "Decision",
    "Phase",
    "Route",
    "TaskParams",
    "TaskState",
    "TrainingDue",
    "current_sampling",
    "initial",
    "observe",
    "pause",
    "record_example",
    "resume",
    "route",
    "training_due",
    "training_finished",
    "training_interrupted",
    "training_started",
    "version_promoted",
    "version_rejected",
]


def route(
    state: TaskState, request_id: str, *, student_available: bool, teacher_allowed: bool
) -> Decision:
    """Decide who answers request ``request_id`` (pure; the state is unchanged)."""
    s = current_sampling(state)
    has_student = student_available and state.active_version is not None
    if state.phase is Phase.cold_start or not has_student:
        if teacher_allowed:
            why = state.phase.value if state.phase is Phase.cold_start else "student_unavailable"
            return Decision(Route.remote_only, "teacher", s.rate, why)
        return Decision(Route.rejected, None, s.rate, "budget_exhausted", budget_exhausted=True)
    if not teacher_allowed:
        return Decision(Route.local_only, "student", s.rate, "budget_exhausted", True)
    if state.phase is Phase.reinforcement:
        why = "emergency" if state.emergency else Phase.reinforcement.value
        return Decision(Route.both, "teacher", 1.0, why)
    if sampling.sampled(request_id, s.rate):
        return Decision(Route.both, "teacher", s.rate, s.mode.value)
    return Decision(Route.local_only, "student", s.rate, s.mode.value)


def observe(
    state: TaskState, score: float, *, index: int, now: float = 0.0
) -> tuple[TaskState, list[Alarm]]:
    """Add one comparison; move the phase if it must; return the alarms raised."""
    p = state.params
    conf, sig = confidence.observe(p.detectors, state.confidence, score)
    count = conf.comparisons
    alarms: list[Alarm] = []
    if sig.shift:
        alarms.append(Alarm(AlarmKind.shift, index, count, now))
    if sig.drift:
        alarms.append(Alarm(AlarmKind.drift, index, count, now))
    if sig.anti_correlation:
        alarms.append(Alarm(AlarmKind.anti_correlation, index, count, now))
    phase, coaching, emergency = _next_phase(state, conf)
    if state.phase is Phase.steady_state and phase is Phase.reinforcement:  # demoted
        alarms.append(Alarm(AlarmKind.emergency, index, count, now))
    elif coaching and not state.coaching:
        alarms.append(Alarm(AlarmKind.coaching, index, count, now))

    # A demoted task stays in its episode until it graduates again: its emergency may
    # end (agreement back over the coaching trigger) long before it can graduate.
    demoted = phase is Phase.reinforcement and state.episode_start is not None
    in_episode = coaching or emergency or demoted
    episode_start = (
        (state.episode_start if state.episode_start is not None else state.examples)
        if in_episode
        else None
    )
    kept = (state.alarms + tuple(alarms))[-MAX_ALARMS:] if alarms else state.alarms
    new = TaskState(  # spelled out: this is the hot path and replace() is slow
        params=p,
        phase=phase,
        confidence=conf,
        coaching=coaching,
        emergency=emergency,
        paused=state.paused,
        examples=state.examples,
        trained_examples=state.trained_examples,
        training_in_progress=state.training_in_progress,
        active_version=state.active_version,
        last_rejected=state.last_rejected,
        remedial=state.remedial and in_episode,
        interrupted=state.interrupted,
        episode_start=episode_start,
        alarms=kept,
    )
    return new, alarms


def _next_phase(state: TaskState, conf: ConfidenceState) -> tuple[Phase, bool, bool]:
    """Phase, coaching, emergency after a comparison (unchanged while paused)."""
    p = state.params
    phase, coaching, emergency = state.phase, state.coaching, state.emergency
    mean, n = conf.mean, conf.n
    if state.paused or mean is None:
        return phase, coaching, emergency
    if phase is Phase.reinforcement and state.active_version is not None:
        if emergency and n >= p.min_decision_samples and mean >= p.coaching_trigger:
            emergency = False
        lower = conf.lower_bound
        if n >= p.min_graduation_samples and lower is not None and lower >= p.phase2_to_phase3:
            return Phase.steady_state, False, False
    elif phase is Phase.steady_state and n >= p.min_decision_samples:
        if mean < p.emergency_threshold:
            return Phase.reinforcement, False, True
        if mean < p.coaching_trigger:
            coaching = True
        elif mean >= p.coaching_exit:
            coaching = False
    return phase, coaching, emergency


def record_example(state: TaskState, count: int = 1) -> TaskState:
    """The store accepted ``count`` new (input, teacher output) examples."""
    new = TaskState(  # spelled out: once per paid request, and replace() is slow
        params=state.params,
        phase=state.phase,
        confidence=state.confidence,
        coaching=state.coaching,
        emergency=state.emergency,
        paused=state.paused,
        examples=state.examples + count,
        trained_examples=state.trained_examples,
        training_in_progress=state.training_in_progress,
        active_version=state.active_version,
        last_rejected=state.last_rejected,
        remedial=state.remedial,
        interrupted=state.interrupted,
        episode_start=state.episode_start,
        alarms=state.alarms,
    )
    # The sampling memo depends on none of the examples: the new state keeps it.
    object.__setattr__(new, "_sampling", state._sampling)
    return new


def training_due(state: TaskState) -> TrainingDue:
    """Whether a training run should start now, and why."""
    p = state.params
    if state.paused or state.training_in_progress:
        return TrainingDue(False)
    if state.interrupted:
        return TrainingDue(True, "resume: the last run was interrupted")
    new = state.examples - (state.trained_examples or 0)
    if state.active_version is None:
        if state.trained_examples is None:
            if state.examples >= p.phase1_to_phase2:
                return TrainingDue(True, f"{Phase.cold_start.value}: {state.examples} examples")
            return TrainingDue(False)
        if new >= p.fine_tune_batch_size:  # the first run failed or was rejected
            return TrainingDue(True, f"batch: {new} new examples")
        return TrainingDue(False)
    # One early run per coaching/emergency episode, on examples the episode brought
    # (the teacher's answers since agreement fell, not those from before); after it,
    # the batch cadence, or a student that cannot learn the task would be retrained
    # without end.
    fresh = state.examples - max(state.trained_examples or 0, state.episode_start or 0)
    if not state.remedial and fresh >= p.min_retrain_examples:
        if state.emergency:
            return TrainingDue(True, f"emergency: {new} new examples")
        if state.coaching:
            return TrainingDue(True, f"coaching: {new} new examples")
        if state.episode_start is not None:  # demoted, emergency over, not graduated
            return TrainingDue(True, f"demoted: {new} new examples")
    if new >= p.fine_tune_batch_size:
        return TrainingDue(True, f"batch: {new} new examples")
    return TrainingDue(False)


def training_started(state: TaskState) -> TaskState:
    """A run started on every example so far."""
    return replace(
        state,
        training_in_progress=True,
        trained_examples=state.examples,
        remedial=state.remedial or state.episode_start is not None,
        interrupted=False,
    )


def training_finished(state: TaskState, *, ok: bool = True) -> TaskState:
    """A run ended; a failed run waits for a new batch rather than retrying in a loop."""
    return replace(state, training_in_progress=False)


def training_interrupted(state: TaskState) -> TaskState:
    """The process died mid-run: the run produced nothing and is due again at once.

    Waiting for a new batch instead would pay for ``fine_tune_batch_size`` more
    teacher calls (all of them, in cold start) before the student it was making.
    """
    if not state.training_in_progress:
        return state
    return replace(state, training_in_progress=False, interrupted=True)


def version_promoted(state: TaskState, version: str) -> TaskState:
    """A model version now serves; the first promotion starts phase 2."""
    phase = Phase.reinforcement if state.phase is Phase.cold_start else state.phase
    return replace(state, active_version=version, phase=phase)


def version_rejected(state: TaskState, version: str) -> TaskState:
    """A candidate lost on the held-out split; the active version stays."""
    return replace(state, last_rejected=version)


def pause(state: TaskState) -> TaskState:
    return replace(state, paused=True)


def resume(state: TaskState) -> TaskState:
    return replace(state, paused=False)
