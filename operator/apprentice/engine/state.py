"""The engine's per-task state and what it decides from it, without changing it.

:class:`TaskParams` (the knobs, resolved from config), :class:`TaskState` (what the
engine remembers, persisted by the store), the values it hands out
(:class:`Decision`, :class:`Alarm`, :class:`TrainingDue`) and the sampling rate of a
state (:func:`current_sampling`). The transitions that change a state live in
:mod:`apprentice.engine.lifecycle`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from apprentice.config import ApprenticeConfig, TaskConfig
from apprentice.engine import confidence, sampling
from apprentice.engine.confidence import ConfidenceState, DetectorParams
from apprentice.vocabulary import Phase, Route, ServedBy

__all__ = [
    "MAX_ALARMS",
    "Alarm",
    "AlarmKind",
    "Decision",
    "TaskParams",
    "TaskState",
    "TrainingDue",
    "current_sampling",
    "initial",
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
        return self.route.calls_teacher

    @property
    def calls_student(self) -> bool:
        return self.route.calls_student

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
