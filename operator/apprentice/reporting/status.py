"""TaskStatus: the one status object every surface shows for a task.

The gateway's ``GET /v1/tasks/{task}/state``, ``apprentice status --json`` (one
object per task under ``{"tasks": {...}}``) and the kopf operator's
``DistilledTask.status`` all read the same model, so the three never disagree.
It is built by exactly one function, :func:`build_task_status`, from three
sources that each own one part of the truth:

- the engine's per-task state (phase, confidence, sampling, detectors, alarms),
  passed as an :class:`EngineView`;
- the store's counters (examples by split, teacher calls, student answers);
- the budget ledger (spend per calendar window and the caps that apply).

Inputs are small typed snapshots rather than the engine/store classes
themselves, so this module stays a pure function of data that callers in any
layer above it (gateway, CLI, operator) can assemble, and so tests build one
without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from apprentice.config import BudgetCaps
from apprentice.vocabulary import PHASE_NUMBERS, PHASES, Phase, PhaseName

__all__ = [
    "Alarm",
    "BudgetCap",
    "Caps",
    "EngineView",
    "Examples",
    "Spend",
    "SpendWindows",
    "StatusReport",
    "StoreCounters",
    "TaskStatus",
    "TrainingOutcome",
    "build_task_status",
    "effective_caps",
    "phase_name",
    "phase_number",
]


def phase_number(phase: str) -> int:
    """1, 2 or 3 for a phase name; raises ValueError naming the valid phases."""
    try:
        return PHASE_NUMBERS[phase]
    except KeyError:
        raise ValueError(f"unknown phase {phase!r}; expected one of {list(PHASES)}") from None


def phase_name(phase: str | int) -> PhaseName:
    """Normalise a phase given as a name (any case), a number 1-3 or a :class:`Phase`."""
    if isinstance(phase, int) and 1 <= phase <= len(PHASES):
        return PHASES[phase - 1]
    if isinstance(phase, str):
        lowered = phase.lower()
        for name in PHASES:
            if lowered == name:
                return name
        if lowered.isdigit() and 1 <= int(lowered) <= len(PHASES):
            return PHASES[int(lowered) - 1]
    raise ValueError(f"unknown phase {phase!r}; expected one of {list(PHASES)} or 1-3")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Alarm(_Frozen):
    """One detector or lifecycle alarm: what fired, and when in the request stream."""

    kind: str = Field(description="drift | shift | coaching | emergency | anti_correlation | ...")
    index: int = Field(description="Position of the request in the task's stream.")
    comparisons: int = Field(description="Comparisons observed when it fired.")
    at: str | None = Field(default=None, description="ISO-8601 wall time, when known.")


class Examples(_Frozen):
    train: int = 0
    heldout: int = 0


class Caps(_Frozen):
    """The caps that apply to a task: the tighter of its own and the global ones."""

    daily: float | None = None
    weekly: float | None = None
    monthly: float | None = None


class Spend(_Frozen):
    """Teacher spend in the budget currency per calendar window."""

    today: float = 0.0
    week: float = 0.0
    month: float = 0.0
    currency: str = "USD"
    caps: Caps = Field(default_factory=Caps)


class BudgetCap(_Frozen):
    """The cap that stops the teacher now, and when it resets."""

    scope: str = Field(description="The task's own cap, or global.")
    window: str = Field(description="daily | weekly | monthly")
    cap: float
    spend: float = Field(description="Spend of that scope in the window so far.")
    resets_at: str = Field(description="ISO-8601 time the window ends (budget time zone).")


class TrainingOutcome(_Frozen):
    """The last training run's end: finished, failed (why, and when it runs again)."""

    ok: bool
    at: str | None = None
    reason: str | None = None
    next_retry: str | None = None


class CanaryTally(_Frozen):
    """One version's live comparisons during a canary."""

    comparisons: int = 0
    agreement: float = 0.0


class CanaryStatus(_Frozen):
    """A candidate version on live traffic before promotion (``canary`` in a task's config)."""

    version: str
    active_version: str | None = None
    mode: str = Field(description="share | shadow")
    share: float
    margin: float
    started_at: str
    candidate: CanaryTally = Field(default_factory=CanaryTally)
    active: CanaryTally = Field(default_factory=CanaryTally)
    verdict: str = Field(default="continue", description="continue | promote | roll_back")
    reason: str = ""


class TaskStatus(_Frozen):
    """What a task is doing now; the JSON shape is the gateway contract's TaskStatus."""

    task: str
    phase: PhaseName
    phase_number: int = Field(ge=1, le=3)
    coaching: bool = False
    emergency: bool = False
    paused: bool = False
    confidence: float | None = None
    confidence_lower_bound: float | None = None
    sampling_rate: float = 1.0
    trend: float = 0.0
    drift: bool = False
    drift_at: int | None = None
    shift: bool = False
    shift_at: int | None = None
    anti_correlation: bool = False
    comparisons: int = 0
    examples: Examples = Field(default_factory=Examples)
    teacher_calls: int = 0
    student_answers: int = 0
    requests: int = 0
    spend: Spend = Field(default_factory=Spend)
    budget_exhausted: bool = False
    budget_cap: BudgetCap | None = None
    estimated_savings: float = 0.0
    active_version: str | None = None
    training_due: bool = False
    training_reason: str | None = None
    training_in_progress: bool = False
    last_training: TrainingOutcome | None = None
    alarms: list[Alarm] = Field(default_factory=list)
    canary: CanaryStatus | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict in the contract's key order (``canary`` only while one runs)."""
        data = self.model_dump(mode="json")
        if data["canary"] is None:
            del data["canary"]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskStatus:
        """Parse the contract JSON (e.g. the operator reading the gateway's /state)."""
        return cls.model_validate(dict(data))


class StatusReport(_Frozen):
    """``apprentice status --json``: ``{"tasks": {"<name>": TaskStatus}}``."""

    tasks: dict[str, TaskStatus] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"tasks": {name: s.to_json() for name, s in self.tasks.items()}}

    @classmethod
    def of(cls, statuses: Iterable[TaskStatus]) -> StatusReport:
        return cls(tasks={s.task: s for s in statuses})


@dataclass(frozen=True)
class EngineView:
    """The engine's per-task state, as the status needs it.

    Callers copy these from ``apprentice.engine``'s task state; ``phase`` may be a
    name, a number or an enum. Anything the engine does not track stays default.
    """

    phase: str | int = Phase.cold_start
    coaching: bool = False
    emergency: bool = False
    paused: bool = False
    confidence: float | None = None
    confidence_lower_bound: float | None = None
    sampling_rate: float = 1.0
    trend: float = 0.0
    drift_at: int | None = None
    shift_at: int | None = None
    anti_correlation: bool = False
    comparisons: int = 0
    requests: int = 0
    training_due: bool = False
    training_reason: str | None = None
    alarms: Sequence[Alarm | Mapping[str, Any]] = field(default_factory=tuple)


@dataclass(frozen=True)
class StoreCounters:
    """Counts the store keeps for a task (durable across restarts)."""

    train_examples: int = 0
    heldout_examples: int = 0
    teacher_calls: int = 0
    student_answers: int = 0
    requests: int | None = None
    """Total requests when the store knows them; else the engine's count is used."""


@dataclass(frozen=True)
class SpendWindows:
    """Spend from the budget ledger for the calendar windows containing *now*."""

    today: float = 0.0
    week: float = 0.0
    month: float = 0.0
    currency: str = "USD"


def effective_caps(task_caps: BudgetCaps | None, global_caps: BudgetCaps | None) -> Caps:
    """Per window, the tighter of the task's own cap and the global cap."""

    def tighter(a: float | None, b: float | None) -> float | None:
        given = [c for c in (a, b) if c is not None]
        return min(given) if given else None

    t = task_caps or BudgetCaps()
    g = global_caps or BudgetCaps()
    return Caps(
        daily=tighter(t.daily, g.daily),
        weekly=tighter(t.weekly, g.weekly),
        monthly=tighter(t.monthly, g.monthly),
    )


def _exhausted(spend: SpendWindows, caps: Caps) -> bool:
    pairs = ((spend.today, caps.daily), (spend.week, caps.weekly), (spend.month, caps.monthly))
    return any(cap is not None and used >= cap - 1e-9 for used, cap in pairs)


def _rounded(spend: SpendWindows, caps: Caps) -> Spend:
    """The windows' spend to the micro-dollar, with the caps that apply."""
    return Spend(
        today=round(spend.today, 6),
        week=round(spend.week, 6),
        month=round(spend.month, 6),
        currency=spend.currency,
        caps=caps,
    )


def build_task_status(
    task: str,
    *,
    engine: EngineView,
    counters: StoreCounters,
    spend: SpendWindows,
    caps: Caps | None = None,
    estimated_savings: float = 0.0,
    active_version: str | None = None,
    training_in_progress: bool = False,
    budget_exhausted: bool | None = None,
    budget_cap: BudgetCap | None = None,
    last_training: TrainingOutcome | None = None,
) -> TaskStatus:
    """Assemble the TaskStatus of ``task``; the single builder every surface uses.

    ``budget_exhausted`` defaults to "some window's spend reached its cap", which
    is what the budget ledger decides too; pass the ledger's own verdict when the
    caller has it (it also knows about global caps shared with other tasks).
    ``budget_cap`` names the cap that stops the teacher; it implies exhausted.
    """
    applied = caps or Caps()
    name = phase_name(engine.phase)
    alarms = [a if isinstance(a, Alarm) else Alarm.model_validate(dict(a)) for a in engine.alarms]
    requests = counters.requests if counters.requests is not None else engine.requests
    return TaskStatus(
        task=task,
        phase=name,
        phase_number=phase_number(name),
        coaching=engine.coaching,
        emergency=engine.emergency,
        paused=engine.paused,
        confidence=engine.confidence,
        confidence_lower_bound=engine.confidence_lower_bound,
        sampling_rate=engine.sampling_rate,
        trend=engine.trend,
        drift=engine.drift_at is not None,
        drift_at=engine.drift_at,
        shift=engine.shift_at is not None,
        shift_at=engine.shift_at,
        anti_correlation=engine.anti_correlation,
        comparisons=engine.comparisons,
        examples=Examples(train=counters.train_examples, heldout=counters.heldout_examples),
        teacher_calls=counters.teacher_calls,
        student_answers=counters.student_answers,
        requests=requests,
        spend=_rounded(spend, applied),
        budget_exhausted=budget_cap is not None
        or (_exhausted(spend, applied) if budget_exhausted is None else budget_exhausted),
        budget_cap=budget_cap,
        estimated_savings=round(estimated_savings, 6),
        active_version=active_version,
        training_due=engine.training_due,
        training_reason=engine.training_reason,
        training_in_progress=training_in_progress,
        last_training=last_training,
        alarms=alarms,
    )
