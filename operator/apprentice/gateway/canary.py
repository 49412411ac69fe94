"""A canary in flight: a validated candidate version tried on live traffic.

With a task's ``canary.mode`` on, a version that passed held-out validation is not
promoted at once (:mod:`apprentice.orchestration.canary` starts it here instead).
While it runs, :class:`LiveCanary` is the task's ``canary``:

- admit (:mod:`apprentice.gateway.admit`) marks the requests whose id routes to the
  candidate (:func:`apprentice.engine.canary.routed`) with a :class:`CanaryCall`;
- call (:mod:`apprentice.gateway.calls`): in ``share`` mode the candidate answers
  them instead of the active version; in ``shadow`` mode the active version answers
  and the candidate answers too, its answer scored when the teacher was asked but
  never served;
- commit (:mod:`apprentice.gateway.commit`) adds each comparison to the tally of
  the version that produced it; the candidate's scores never reach the task's
  confidence engine, which keeps describing the active version.

Once :func:`apprentice.engine.canary.judge` gives a verdict, the canary stops
routing at once (``finish`` clears the task's ``canary``) and the control
(:mod:`apprentice.gateway.control`) promotes or rolls back off the request path.
With the canary off the request path pays one attribute check (``task.canary``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from apprentice.config import CanaryConfig, CanaryMode
from apprentice.engine import canary as rule
from apprentice.json_types import JsonObject
from apprentice.students.base import Student, StudentAnswer

__all__ = ["CanaryCall", "LiveCanary"]


class LiveCanary:
    """One task's running canary: the candidate, its student, both versions' tallies."""

    def __init__(
        self,
        task: str,
        version: str,
        student: Student,
        cfg: CanaryConfig,
        *,
        active: str | None,
        started_at: datetime,
        finish: Callable[[LiveCanary, rule.Judgement], None],
    ) -> None:
        self.task = task
        self.version = version
        self.student = student  # a second instance, with the candidate loaded
        self.cfg = cfg
        self.shadow = cfg.mode is CanaryMode.shadow
        self.active_version = active
        self.started_at = started_at
        self.candidate = rule.Tally()
        self.active = rule.Tally()
        self.judgement = rule.Judgement(rule.Verdict.keep_going, "collecting evidence")
        self.done = False
        self._finish = finish

    def routes(self, request_id: str) -> bool:
        return rule.routed(request_id, self.cfg.share)

    def compares(self, request_id: str) -> bool:
        """Whether a candidate request also asks the teacher (the canary's own rate)."""
        rate = self.cfg.sampling_rate
        return rate is not None and rule.sampled(request_id, rate)

    def observe(self, *, candidate: bool, score: float) -> None:
        """One live comparison of either version; a verdict ends the canary."""
        if self.done:
            return
        if candidate:
            self.candidate = self.candidate.add(score)
        else:
            self.active = self.active.add(score)
        c = self.cfg
        self.judgement = rule.judge(
            self.candidate, self.active, margin=c.margin,
            min_comparisons=c.min_comparisons, max_comparisons=c.max_comparisons,
        )  # fmt: skip
        if self.judgement.verdict is not rule.Verdict.keep_going:
            self.done = True
            self._finish(self, self.judgement)

    def view(self) -> JsonObject:
        """What status shows: the candidate, the mode and both versions' live agreement."""
        return {
            "version": self.version,
            "active_version": self.active_version,
            "mode": self.cfg.mode.value,
            "share": self.cfg.share,
            "margin": self.cfg.margin,
            "started_at": self.started_at.isoformat(),
            "candidate": self.candidate.to_json(),
            "active": self.active.to_json(),
            "verdict": self.judgement.verdict.value,
            "reason": self.judgement.reason,
        }


@dataclass(slots=True, eq=False)
class CanaryCall:
    """A request routed to the candidate; in shadow mode, what the candidate answered."""

    live: LiveCanary
    answer: StudentAnswer | None = None  # shadow: the candidate's answer (None: it failed)
    score: float | None = None  # shadow: its agreement with the teacher, when asked
