"""Promotion through a canary: the orchestrator's side of trying a version on live traffic.

With a task's ``canary.mode`` on and a version already serving, ``promote`` of a
validated candidate (the LocalOrchestrator after a run, ``POST .../promote`` from
the Kubernetes operator) starts a canary instead: a second student instance loads
the candidate and the gateway routes a share of live traffic to it
(:mod:`apprentice.gateway.canary`). The store keeps the version a ``candidate``,
validated, with ``metrics.canary`` saying since when it runs, so ``apprentice
versions``, the admin API and a restart see it. The gateway's verdict comes back
through :func:`settle`: promote (the normal path: load into the serving student,
store, engine, events) or roll back (rejected with the reason, an alert; the active
version keeps serving). The first version of a task has nothing to compare with and
is promoted at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from apprentice.config import ApprenticeConfig, CanaryMode, TaskConfig
from apprentice.engine.canary import Judgement, Verdict
from apprentice.evaluators.base import Evaluator
from apprentice.orchestration.seam import GatewayHooks
from apprentice.reporting import alerts as alerts_mod
from apprentice.store import base as store_base
from apprentice.store.records import ModelVersionRecord
from apprentice.students import base as student_base
from apprentice.vocabulary import VersionState

log = logging.getLogger(__name__)

__all__ = ["Orchestrator", "resume", "settle", "start"]


class Orchestrator(Protocol):
    """What a canary needs of the LocalOrchestrator (which calls these functions)."""

    cfg: ApprenticeConfig
    store: store_base.Store
    hooks: GatewayHooks
    alerts: alerts_mod.Alerter | None
    evaluators: dict[str, Evaluator | None]
    student_factory: Callable[[TaskConfig], student_base.Student]

    async def promote(self, task: str, version: str, *, canary: bool = True) -> str: ...

    async def unload_candidate(self, task: str, version: str) -> None: ...


async def _update(orch: Orchestrator, task: str, version: str, **fields: Any) -> None:
    await asyncio.to_thread(orch.store.update_version, task, version, **fields)


async def start(orch: Orchestrator, task: str, rec: ModelVersionRecord) -> bool:
    """Start ``rec``'s canary when the task wants one; False: promote it at once."""
    cfg = orch.cfg.task(task).canary
    if cfg.mode is CanaryMode.off or orch.evaluators.get(task) is None:
        return False  # off, or not serving (the CLI): nothing could carry a canary
    active = await asyncio.to_thread(orch.store.active_version, task)
    if active is None or active.version == rec.version:
        return False
    student = orch.student_factory(orch.cfg.task(task))
    try:
        await student.load_version(student_base.VersionRef(rec.version, rec.path))
    except student_base.StudentError:
        await student.aclose()
        raise
    if "canary" not in rec.metrics:
        mark = {"mode": cfg.mode.value, "share": cfg.share, "started_at": _now()}
        metrics = {**rec.metrics, "canary": mark}
        await _update(orch, task, rec.version, metrics=metrics)

    async def verdict(task: str, version: str, judgement: Judgement) -> None:
        await settle(orch, task, version, judgement)

    started = await orch.hooks.canary_started(task, rec.version, student, verdict)
    if not started:  # this version's canary already runs (a retried promote)
        await student.aclose()
    return True


async def settle(orch: Orchestrator, task: str, version: str, judgement: Judgement) -> None:
    """Carry out the gateway's verdict on a canary."""
    rec = await asyncio.to_thread(orch.store.version, task, version)
    mark = {**rec.metrics.get("canary", {}), "ended_at": _now(), "verdict": judgement.reason}
    await _update(orch, task, version, metrics={**rec.metrics, "canary": mark})
    if judgement.verdict is Verdict.promote:
        await orch.promote(task, version, canary=False)
        return
    reason = f"canary: {judgement.reason}"
    await _update(orch, task, version, state="rejected", reason=reason)
    if orch.alerts is not None:
        orch.alerts.emit(alerts_mod.canary_rolled_back(task, version, judgement.reason))
    log.warning("task %s: canary %s rolled back: %s", task, version, judgement.reason)
    await orch.unload_candidate(task, version)  # frees a shared server's slot


async def resume(orch: Orchestrator, task: str) -> None:
    """Start-up: a canary the last process was running goes on (from its stored evidence)."""
    versions = await asyncio.to_thread(orch.store.versions, task)
    active = next((v for v in versions if v.state == VersionState.promoted), None)
    newest = versions[-1] if versions else None
    if (
        active is not None
        and newest is not None
        and newest.state == VersionState.candidate
        and newest.heldout_score is not None
        and "ended_at" not in newest.metrics.get("canary", {"ended_at": None})
    ):
        try:
            await start(orch, task, newest)
        except student_base.StudentError as exc:
            log.error("task %s: cannot resume canary %s: %s", task, newest.version, exc)


def _now() -> str:
    return datetime.now(UTC).isoformat()
