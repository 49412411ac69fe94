"""Pure status logic of the three kinds: what each status should be, and the minimal patch.

The DistilledTask status has one writer, the task's timer: it derives everything from
what it reads (the spec, the gateway's state, the task's TrainingJobs and ModelVersions)
and patches only the fields that changed, so an idle task writes nothing. TrainingJob
and ModelVersion conditions are a function of their state (kstatus: ``Reconciling`` while
work is under way, ``Stalled`` when it failed, ``Ready`` when done), and every status
write sets ``observedGeneration``.

Training retries back off: after ``n`` failed runs in a row the next starts no sooner
than ``base * 2**(n-1)`` after the last failure (capped), and none starts automatically
after ``max_failures`` (deleting the failed TrainingJobs, or a success, resets the count).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apprentice.kube.reconcile import (
    canary_condition,
    parse_time,
    rfc3339,
    set_condition,
    state_conditions,
    status_from_state,
)

__all__ = [
    "Backoff",
    "TrainingView",
    "lifecycle_conditions",
    "model_version_conditions",
    "status_patch",
    "task_status",
    "training_job_conditions",
    "training_view",
]

Obj = dict[str, Any]
_VERSION = re.compile(r"^v(\d+)$")
_TERMINAL = {"Succeeded", "Failed"}
#: Scheduler reasons of a trainer pod that waits for capacity (not a failure).
WAITING_REASONS = {"WaitingForGPU", "WaitingForNode"}


def _number(version: str | None) -> int:
    match = _VERSION.match(version or "")
    return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class Backoff:
    """When automatic training may start again after failures."""

    base_s: float = 600.0
    cap_s: float = 6 * 3600.0
    max_failures: int = 5

    def delay_s(self, failures: int) -> float:
        return 0.0 if failures <= 0 else min(self.cap_s, self.base_s * 2 ** (failures - 1))


@dataclass(frozen=True)
class TrainingView:
    """What a task's TrainingJobs and ModelVersions say about training."""

    running: bool = False
    waiting: str | None = None  # the scheduler's message while a trainer waits for capacity
    failure: str | None = None  # the newest failure not followed by a promotion
    failures_in_a_row: int = 0
    last_failure_at: dt.datetime | None = None
    versions: list[str] = field(default_factory=list)

    def blocked(self, now: dt.datetime, backoff: Backoff) -> str | None:
        """Why no run may start now (None: it may)."""
        if self.running:
            return "a training run is in progress"
        n = self.failures_in_a_row
        if n >= backoff.max_failures:
            return (
                f"{n} training runs failed in a row: automatic training stopped; fix the "
                "cause, then delete the failed TrainingJobs to retry"
            )
        if n and self.last_failure_at is not None:
            resume = self.last_failure_at + dt.timedelta(seconds=backoff.delay_s(n))
            if now < resume:
                return f"{n} training run(s) failed in a row: next attempt after {rfc3339(resume)}"
        return None


def training_view(
    jobs: Iterable[Mapping[str, Any]], versions: Iterable[Mapping[str, Any]]
) -> TrainingView:
    """Summarise a task's TrainingJobs and ModelVersions (pure: lists in, view out)."""
    ordered = sorted(jobs, key=lambda j: _number((j.get("spec") or {}).get("version")))
    promoted = max(
        (
            _number((mv.get("spec") or {}).get("version"))
            for mv in versions
            if (mv.get("status") or {}).get("state") in ("promoted", "retired")
        ),
        default=0,
    )
    running = [j for j in ordered if (j.get("status") or {}).get("state") not in _TERMINAL]
    waiting = None
    for job in running:
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Reconciling" and cond.get("reason") in WAITING_REASONS:
                waiting = str(cond.get("message") or cond["reason"])
    in_a_row, last_at, failure = 0, None, None
    finished = [j for j in ordered if (j.get("status") or {}).get("state") in _TERMINAL]
    for newest_first, job in enumerate(reversed(finished)):
        status, version = job.get("status") or {}, (job.get("spec") or {}).get("version")
        if status.get("state") != "Failed":
            break
        in_a_row += 1
        if newest_first == 0:
            last_at = parse_time(status.get("completionTime"))
            if _number(version) > promoted:
                failure = (
                    f"training {version} failed: {status.get('message') or 'no reason given'}; "
                    "the current version keeps serving"
                )
    return TrainingView(
        running=bool(running),
        waiting=waiting,
        failure=failure,
        failures_in_a_row=in_a_row,
        last_failure_at=last_at,
        versions=[str((j.get("spec") or {}).get("version")) for j in ordered],
    )


def task_status(
    old: Mapping[str, Any],
    *,
    generation: int | None,
    now: dt.datetime,
    endpoint: str | None,
    problem: str | None = None,
    problem_reason: str = "InvalidSpec",
    state: Mapping[str, Any] | None = None,
    gateway_error: str | None = None,
    training: TrainingView | None = None,
    blocked: str | None = None,
) -> Obj:
    """The DistilledTask status the timer wants, from everything it read this round."""
    conds: list[Obj] = [dict(c) for c in old.get("conditions") or []]
    out: Obj = {"observedGeneration": generation}

    def put(kind: str, status: bool, reason: str, message: str = "") -> None:
        nonlocal conds
        conds = set_condition(conds, kind, status, reason, message, generation=generation, now=now)

    if problem is not None:  # the spec cannot be reconciled: what serves keeps serving
        put("Stalled", True, problem_reason, problem)
        put("Reconciling", False, problem_reason, problem)
        if not any(c.get("type") == "Ready" for c in conds):
            put("Ready", False, problem_reason, problem)
        out["conditions"] = conds
        return out
    out["endpoint"] = endpoint
    if state is None:
        put("Stalled", False, "Reconciled")
        put("Reconciling", True, "WaitingForGateway", "waiting for the gateway to answer")
        put("Ready", False, "GatewayUnavailable", gateway_error or "no answer yet")
        out["conditions"] = conds
        return out
    view = training or TrainingView()
    out.update(status_from_state(state))
    out["lastTrainingFailure"] = view.failure
    conds = state_conditions(
        conds,
        state,
        generation=generation,
        training_running=view.running,
        now=now,
        training_failure=_failure_text(view.failure, blocked),
    )
    canary = canary_condition(state, old)
    if canary is not None:
        put("Canary", *canary)
    if view.waiting:
        put("Training", True, "WaitingForGPU", f"waiting for a GPU: {view.waiting}")
    elif blocked and not view.running:  # due, but earlier failures hold the next run back
        stopped = "automatic training stopped" in blocked
        put("Training", False, "TrainingStopped" if stopped else "BackingOff", blocked)
    out["conditions"] = conds
    return out


def _failure_text(failure: str | None, blocked: str | None) -> str | None:
    if failure and blocked and "failed in a row" in blocked:
        return f"{failure}; {blocked}"
    return failure


def status_patch(old: Mapping[str, Any], desired: Mapping[str, Any]) -> Obj:
    """The fields of ``desired`` that differ from ``old`` (empty: write nothing)."""
    return {k: v for k, v in desired.items() if old.get(k) != v}


def lifecycle_conditions(
    old: Iterable[Mapping[str, Any]],
    *,
    ready: bool,
    reconciling: bool,
    stalled: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: dt.datetime,
    extra: Mapping[str, bool] | None = None,
) -> list[Obj]:
    """kstatus conditions of a resource whose state is one word (and optional extras)."""
    conds = [dict(c) for c in old]
    for kind, value in (
        ("Ready", ready),
        ("Reconciling", reconciling),
        ("Stalled", stalled),
        *(extra or {}).items(),
    ):
        conds = set_condition(
            conds,
            kind,
            value,
            reason,
            message if value or kind == "Ready" else "",
            generation=generation,
            now=now,
        )
    return conds


def training_job_conditions(
    old: Iterable[Mapping[str, Any]],
    state: str,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[Obj]:
    """Pending/Running: Reconciling; Succeeded: Ready and Succeeded; Failed: Stalled, Failed."""
    done, failed = state == "Succeeded", state == "Failed"
    return lifecycle_conditions(
        old,
        ready=done,
        reconciling=not (done or failed),
        stalled=failed,
        reason=reason,
        message=message,
        generation=generation,
        now=now,
        extra={"Succeeded": done, "Failed": failed},
    )


def model_version_conditions(
    old: Iterable[Mapping[str, Any]],
    state: str,
    message: str,
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[Obj]:
    """candidate/validating: Reconciling; promoted: Ready; rejected/retired: done, not Ready."""
    reasons = {
        "candidate": "Validating",
        "validating": "Validating",
        "promoted": "Promoted",
        "rejected": "Rejected",
        "retired": "Retired",
    }
    return lifecycle_conditions(
        old,
        ready=state == "promoted",
        reconciling=state in ("candidate", "validating"),
        stalled=False,
        reason=reasons.get(state, "Unknown"),
        message=message,
        generation=generation,
        now=now,
    )
