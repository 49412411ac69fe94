"""Simulation: run the engine over a trace of agreement scores, as production would.

A trace has one agreement score per incoming request: the score the student
would get *if* the request were compared. The simulator routes every request
with :func:`lifecycle.route`, and only feeds the score to the engine when the
decision compares (teacher and student both called), exactly like the gateway.
Every teacher call yields an example. Training is started as soon as it is due
and finishes ``training_delay`` requests later with the candidate promoted
(the simulator assumes it passes validation). The per-request sampling draw
hashes ``f"{seed}:{index}"``, so a seed picks one reproducible draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from apprentice.engine import lifecycle, sampling
from apprentice.engine.state import Alarm, TaskParams, TaskState
from apprentice.vocabulary import Phase

__all__ = ["Event", "SimulationResult", "simulate"]

# The timeline reports when the rate first falls to or under these levels.
RATE_MILESTONES = (0.5, 0.25, 0.1, 0.05)


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the readable timeline."""

    index: int
    comparisons: int
    kind: str  # phase | alarm | training | rate
    text: str


@dataclass(frozen=True, slots=True)
class SimulationResult:
    requests: int
    teacher_calls: int
    student_answers: int
    comparisons: int
    graduated_at: int | None
    final_phase: Phase
    final_sampling_rate: float
    final_confidence: float | None
    final_lower_bound: float | None
    alarms: tuple[Alarm, ...]
    phases: tuple[tuple[int, Phase], ...]
    trainings: int
    events: tuple[Event, ...] = field(default=())
    # The guarantee at the final agreement and rate: a drop to ``drop_to`` is
    # detected within ``detected_within`` requests (95%); None outside steady state.
    drop_to: float = 0.70
    detected_within: int | None = None
    max_detection_delay: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The ``apprentice simulate --json`` object."""
        return {
            "requests": self.requests,
            "teacher_calls": self.teacher_calls,
            "student_answers": self.student_answers,
            "comparisons": self.comparisons,
            "graduated_at": self.graduated_at,
            "final_phase": self.final_phase.value,
            "final_sampling_rate": round(self.final_sampling_rate, 6),
            "final_confidence": _round(self.final_confidence),
            "final_lower_bound": _round(self.final_lower_bound),
            "trainings": self.trainings,
            "alarms": [
                {"index": a.index, "comparisons": a.comparisons, "kind": a.kind.value}
                for a in self.alarms
            ],
            "phases": [{"index": i, "phase": p.value} for i, p in self.phases],
            "guarantee": {
                "drop_to": self.drop_to,
                "detected_within": self.detected_within,
                "max_detection_delay": self.max_detection_delay,
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def simulate(
    params: TaskParams,
    scores: Sequence[float],
    *,
    training_delay: int = 0,
    seed: int = 0,
    stop_at_alarm_from: int | None = None,
) -> SimulationResult:
    """Run the lifecycle over ``scores`` (one per request); pure and deterministic.

    ``stop_at_alarm_from``: end the run at the first alarm raised at or after
    that request (detection-delay experiments need nothing after it);
    ``requests`` then counts the requests actually run.
    """
    if training_delay < 0:
        raise ValueError(f"training_delay must be >= 0 requests, got {training_delay}")
    run = _Run(lifecycle.initial(params), training_delay)
    run.phases.append((0, run.state.phase))
    ran = 0
    for index, score in enumerate(scores):
        ran = index + 1
        before = run.state.phase
        raised = run.request(index, score, f"{seed}:{index}")
        if raised and stop_at_alarm_from is not None and index >= stop_at_alarm_from:
            break
        run.train(index)
        run.track(index, before)
    return run.result(params, ran)


@dataclass
class _Run:
    """One simulation's state and running totals (mutable, local to one :func:`simulate`)."""

    state: TaskState
    training_delay: int
    teacher_calls: int = 0
    student_answers: int = 0
    trainings: int = 0
    graduated_at: int | None = None
    done_at: int | None = None
    milestone: int = 0
    alarms: list[Alarm] = field(default_factory=list)
    phases: list[tuple[int, Phase]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def note(self, index: int, kind: str, text: str) -> None:
        self.events.append(Event(index, self.state.comparisons, kind, text))

    def request(self, index: int, score: float, request_id: str) -> list[Alarm]:
        """Route one request as the gateway would; observe the score when it compares."""
        decision = lifecycle.route(
            self.state,
            request_id,
            student_available=self.state.active_version is not None,
            teacher_allowed=True,
        )
        if decision.calls_teacher:
            self.teacher_calls += 1
            self.state = lifecycle.record_example(self.state)
        if decision.serve == "student":
            self.student_answers += 1
        if not decision.compares:
            return []
        self.state, raised = lifecycle.observe(self.state, score, index=index, now=float(index))
        for alarm in raised:
            self.alarms.append(alarm)
            self.note(index, "alarm", f"{alarm.kind.value} alarm")
        return raised

    def train(self, index: int) -> None:
        """Finish a run that is done (promoted), start one that is due."""
        if self.state.training_in_progress and self.done_at is not None and index >= self.done_at:
            self._promote(index)
        if self.state.training_in_progress:
            return
        due = lifecycle.training_due(self.state)
        if due.due:
            self.state = lifecycle.training_started(self.state)
            self.trainings += 1
            self.done_at = index + self.training_delay
            self.note(index, "training", f"training v{self.trainings} started ({due.reason})")
            if self.training_delay == 0:
                self._promote(index)

    def _promote(self, index: int) -> None:
        version = f"v{self.trainings}"
        self.state = lifecycle.version_promoted(lifecycle.training_finished(self.state), version)
        self.note(index, "training", f"{version} promoted")
        self.done_at = None

    def track(self, index: int, before: Phase) -> None:
        """Phase changes, graduation, and the rate milestones in steady state."""
        state = self.state
        if state.phase is not before:
            self.phases.append((index, state.phase))
            self.note(index, "phase", f"phase -> {state.phase.value} ({state.phase.number})")
            if state.phase is Phase.steady_state and self.graduated_at is None:
                self.graduated_at = index
            self.milestone = 0
        if state.phase is Phase.steady_state:
            rate = state.sampling_rate
            reached = self.milestone
            while reached < len(RATE_MILESTONES) and rate <= RATE_MILESTONES[reached]:
                reached += 1
            if reached > self.milestone:
                self.milestone = reached
                self.note(index, "rate", f"sampling rate {rate:.3f}")

    def result(self, params: TaskParams, ran: int) -> SimulationResult:
        state, conf = self.state, self.state.confidence
        within = None
        if state.phase is Phase.steady_state and conf.mean is not None:
            within = sampling.guarantee(params.policy, conf.mean, state.sampling_rate)
        return SimulationResult(
            requests=ran,
            teacher_calls=self.teacher_calls,
            student_answers=self.student_answers,
            comparisons=state.comparisons,
            graduated_at=self.graduated_at,
            final_phase=state.phase,
            final_sampling_rate=state.sampling_rate,
            final_confidence=conf.mean,
            final_lower_bound=conf.lower_bound,
            alarms=tuple(self.alarms),
            phases=tuple(self.phases),
            trainings=self.trainings,
            events=tuple(self.events),
            drop_to=params.policy.coaching_trigger,
            detected_within=within,
            max_detection_delay=params.policy.max_detection_delay,
        )
