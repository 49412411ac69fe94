"""Lifecycle: the per-task state machine of ARCHITECTURE.md "The lifecycle".

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

Whoever answers: when the teacher is called, its answer is served (ARCHITECTURE
"One request"); the student's answer is served only when the teacher is not called.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any

from apprentice.config import ApprenticeConfig, TaskConfig
from apprentice.engine import confidence, sampling
from apprentice.engine.confidence import ConfidenceState, DetectorParams
from apprentice.vocabulary import Phase, Route, ServedBy

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

MAX_ALARMS = 50  # kept in the state for status; the store keeps every alarm as an event


class AlarmKind(enum.StrEnum):
    drift = "drift"
    shift = "shift"
    coaching = "coaching"
    emergency = "emergency"
    anti_correlation = "anti_correlation"


@dataclass(frozen=True, slots=True)
class Alarm:
    """Something an operator should hear about; ``index`` is the request's position."""

    kind: AlarmKind
    index: int
    comparisons: int
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "index": self.index,
            "comparisons": self.comparisons,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alarm:
        return cls(
            AlarmKind(data["kind"]),
            int(data["index"]),
            int(data["comparisons"]),
            float(data.get("at", 0.0)),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Who is called for one request and whose answer is served."""

    route: Route
    serve: ServedBy | None
    sampling_rate: float
    reason: str
    budget_exhausted: bool = False

    @property
    def calls_teacher(self) -> bool:
        return self.route is Route.remote_only or self.route is Route.both

    @property
    def calls_student(self) -> bool:
        return self.route is Route.local_only or self.route is Route.both

    @property
    def compares(self) -> bool:
        return self.route is Route.both


@dataclass(frozen=True, slots=True)
class TrainingDue:
    due: bool
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class TaskParams:
    """Everything from config the state machine reads, resolved for one task."""

    task: str = "task"
    phase1_to_phase2: int = 50
    phase2_to_phase3: float = 0.85
    coaching_trigger: float = 0.70
    emergency_threshold: float = 0.50
    fine_tune_batch_size: int = 100
    policy: sampling.SamplingPolicy = field(default_factory=sampling.SamplingPolicy)
    detectors: DetectorParams = field(default_factory=DetectorParams)

    @classmethod
    def from_config(cls, cfg: ApprenticeConfig, task: str | TaskConfig) -> TaskParams:
        """Resolve thresholds, the task's effective sampling block and batch size."""
        t = cfg.task(task) if isinstance(task, str) else task
        th = t.confidence_thresholds
        eff = t.effective_sampling(cfg.sampling)
        return cls(
            task=t.name,
            phase1_to_phase2=th.phase1_to_phase2,
            phase2_to_phase3=th.phase2_to_phase3,
            coaching_trigger=th.coaching_trigger,
            emergency_threshold=th.emergency_threshold,
            fine_tune_batch_size=t.fine_tune_batch_size or cfg.local.fine_tune_batch_size,
            policy=sampling.SamplingPolicy.from_config(eff, th),
            detectors=DetectorParams.from_config(eff),
        )

    @property
    def min_graduation_samples(self) -> int:
        """A "full-enough" window: half of it (never graduate on a handful of samples)."""
        return max(1, self.detectors.window_size // 2)

    @property
    def min_decision_samples(self) -> int:
        """Samples before coaching/emergency act on the mean (the shift test's window)."""
        return self.detectors.recent

    @property
    def coaching_exit(self) -> float:
        """Coaching ends a quarter of the way up to ``phase2_to_phase3`` (no flapping)."""
        return self.coaching_trigger + (self.phase2_to_phase3 - self.coaching_trigger) / 4.0

    @property
    def min_retrain_examples(self) -> int:
        """New examples before coaching/emergency retrain: the same data gives the same student."""
        return max(1, self.fine_tune_batch_size // 5)


@dataclass(frozen=True, slots=True)
class TaskState:
    """One task's engine state. ``params`` come from config and are not serialised."""

    params: TaskParams = field(default_factory=TaskParams, compare=False)
    phase: Phase = Phase.cold_start
    confidence: ConfidenceState = field(default_factory=ConfidenceState)
    coaching: bool = False
    emergency: bool = False
    paused: bool = False
    examples: int = 0
    trained_examples: int | None = None  # examples when the last run started; None: never
    training_in_progress: bool = False
    active_version: str | None = None
    last_rejected: str | None = None
    remedial: bool = False  # a coaching/emergency run started in this episode
    interrupted: bool = False  # a run died with its process: run it again at once
    episode_start: int | None = None  # examples when this coaching/emergency episode began
    alarms: tuple[Alarm, ...] = ()
    # Memo of current_sampling(): a pure function of the fields above. init=False
    # keeps dataclasses.replace() from copying it into a changed state.
    _sampling: sampling.Sampling | None = field(default=None, init=False, compare=False, repr=False)

    @property
    def phase_number(self) -> int:
        return self.phase.number

    @property
    def comparisons(self) -> int:
        return self.confidence.comparisons

    @property
    def sampling_rate(self) -> float:
        return current_sampling(self).rate

    @property
    def drift(self) -> bool:
        """Drift fired within the current window of comparisons."""
        at = self.confidence.drift_at
        return at is not None and self.comparisons - at < self.params.detectors.window_size

    @property
    def shift(self) -> bool:
        at = self.confidence.shift_at
        return at is not None and self.comparisons - at < self.params.detectors.window_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; the store persists it so a restart resumes where it stopped."""
        return {
            "task": self.params.task,
            "phase": self.phase.value,
            "confidence": self.confidence.to_dict(),
            "coaching": self.coaching,
            "emergency": self.emergency,
            "paused": self.paused,
            "examples": self.examples,
            "trained_examples": self.trained_examples,
            "training_in_progress": self.training_in_progress,
            "active_version": self.active_version,
            "last_rejected": self.last_rejected,
            "remedial": self.remedial,
            "interrupted": self.interrupted,
            "episode_start": self.episode_start,
            "alarms": [a.to_dict() for a in self.alarms],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], params: TaskParams) -> TaskState:
        trained = data.get("trained_examples")
        return cls(
            params=params,
            phase=Phase(data.get("phase", Phase.cold_start.value)),
            confidence=ConfidenceState.from_dict(data.get("confidence", {}), params.detectors),
            coaching=bool(data.get("coaching", False)),
            emergency=bool(data.get("emergency", False)),
            paused=bool(data.get("paused", False)),
            examples=int(data.get("examples", 0)),
            trained_examples=None if trained is None else int(trained),
            training_in_progress=bool(data.get("training_in_progress", False)),
            active_version=data.get("active_version"),
            last_rejected=data.get("last_rejected"),
            remedial=bool(data.get("remedial", False)),
            interrupted=bool(data.get("interrupted", False)),
            episode_start=data.get("episode_start"),
            alarms=tuple(Alarm.from_dict(a) for a in data.get("alarms", [])),
        )


def initial(params: TaskParams) -> TaskState:
    """A new task: cold start, no examples, no student."""
    return TaskState(params=params, confidence=confidence.empty(params.detectors))


def _alert(state: TaskState) -> bool:
    """Within ``recent`` comparisons after a drift/shift alarm: re-measure at rate 1.0."""
    c = state.confidence
    k = state.params.detectors.recent
    last = max(c.drift_at or -k, c.shift_at or -k)
    return c.comparisons - last < k


def current_sampling(state: TaskState) -> sampling.Sampling:
    """The task's sampling rate now and why."""
    memo = state._sampling
    if memo is None:
        c = state.confidence
        memo = sampling.decide(
            state.params.policy,
            state.phase.number,
            c.mean,
            c.trend,
            alert=_alert(state),
            lower_bound=c.lower_bound,
        )
        object.__setattr__(state, "_sampling", memo)  # memoisation, invisible to callers
    return memo


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

    phase, coaching, emergency = state.phase, state.coaching, state.emergency
    mean, n = conf.mean, conf.n
    if not state.paused and mean is not None:
        if phase is Phase.reinforcement and state.active_version is not None:
            if emergency and n >= p.min_decision_samples and mean >= p.coaching_trigger:
                emergency = False
            lower = conf.lower_bound
            if n >= p.min_graduation_samples and lower is not None and lower >= p.phase2_to_phase3:
                phase, emergency, coaching = Phase.steady_state, False, False
        elif phase is Phase.steady_state and n >= p.min_decision_samples:
            if mean < p.emergency_threshold:
                phase, emergency, coaching = Phase.reinforcement, True, False
                alarms.append(Alarm(AlarmKind.emergency, index, count, now))
            elif mean < p.coaching_trigger:
                if not coaching:
                    alarms.append(Alarm(AlarmKind.coaching, index, count, now))
                coaching = True
            elif mean >= p.coaching_exit:
                coaching = False

    remedial = state.remedial and (coaching or emergency)
    in_episode = coaching or emergency
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
        remedial=remedial,
        interrupted=state.interrupted,
        episode_start=episode_start,
        alarms=kept,
    )
    return new, alarms


def record_example(state: TaskState, count: int = 1) -> TaskState:
    """The store accepted ``count`` new (input, teacher output) examples."""
    return replace(state, examples=state.examples + count)


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
    if new >= p.fine_tune_batch_size:
        return TrainingDue(True, f"batch: {new} new examples")
    return TrainingDue(False)


def training_started(state: TaskState) -> TaskState:
    """A run started on every example so far."""
    return replace(
        state,
        training_in_progress=True,
        trained_examples=state.examples,
        remedial=state.remedial or state.coaching or state.emergency,
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
