"""The gateway's read side and the seam's version verbs, for the HTTP API and the CLI.

Status, readiness, metrics, dataset export and the model-version operations
(list, register, validate, promote, roll back) read the store and the engines;
none of them is on the request path. Version operations go to the orchestrator,
whose :class:`~apprentice.orchestration.seam.OrchestrationError` becomes the
admin API's 404 / 400 / 409.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from apprentice.gateway import errors
from apprentice.gateway.control import TaskControl
from apprentice.gateway.parts import Parts
from apprentice.orchestration import datasets
from apprentice.orchestration import local as local_orch
from apprentice.orchestration.seam import OrchestrationError, ValidationResult, VersionInfo
from apprentice.reporting import events as events_mod
from apprentice.reporting import metrics as metrics_mod
from apprentice.reporting import snapshot as snapshot_mod
from apprentice.reporting import status as status_mod
from apprentice.store import records

T = TypeVar("T")


class Admin:
    """Reads and version operations (see the module docstring)."""

    def __init__(self, parts: Parts, control: TaskControl) -> None:
        self.parts = parts
        self.control = control
        self.orchestrator: local_orch.LocalOrchestrator | None = None

    async def flush(self) -> None:
        """Wait until every store write queued so far is committed."""
        if self.parts.writer.running:
            await self.parts.writer.submit(lambda: None)

    def task_summaries(self) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "description": t.cfg.description, "phase": t.engine.phase_name()}
            for t in self.parts.tasks.values()
        ]

    async def status(self, task: str) -> dict[str, Any]:
        parts, served = self.parts, self.parts.tasks[task]
        store, budget = parts.opened(), parts.budget
        await self.flush()  # local-only answers do not wait for their commit; status does
        now = datetime.now(UTC)
        await budget.refresh(now)  # every gateway's spend, not only this one's
        counts = await asyncio.to_thread(store.request_counts, task)
        active = await asyncio.to_thread(store.active_version, task)
        windows = budget.windows(task, now)
        local = await asyncio.to_thread(
            snapshot_mod.local_compute_cost, parts.config, store, task, now
        )
        if served.paid is not None:  # a paid student's answers were billed: not savings
            local += await asyncio.to_thread(
                store.spend_total, datetime.fromtimestamp(0, UTC), now, task=task, kind="student"
            )
        typical = served.avg_teacher_cost()
        st = status_mod.build_task_status(
            task,
            engine=served.engine.view(paused=served.engine.paused),
            counters=status_mod.StoreCounters(
                train_examples=served.examples.get("train", 0),
                heldout_examples=served.examples.get("heldout", 0),
                teacher_calls=counts.teacher_calls,
                student_answers=counts.student_answers,
                requests=counts.requests,
            ),
            spend=status_mod.SpendWindows(
                windows["daily"],
                windows["weekly"],
                windows["monthly"],
                parts.config.budget.currency,
            ),
            caps=status_mod.effective_caps(served.cfg.budget, parts.config.budget),
            estimated_savings=(counts.student_answers + counts.cache_hits) * typical - local,
            active_version=None if active is None else active.version,
            training_in_progress=served.training_in_progress(),
            budget_exhausted=budget.exhausted(task, now, typical),
            budget_cap=snapshot_mod.blocking_cap(budget.mirror.ledger, now, task, typical),
            last_training=await asyncio.to_thread(snapshot_mod.last_training, store, task),
        )
        parts.metrics.update_from_status(st)
        if served.canary is not None:  # a candidate on live traffic
            st = st.model_copy(
                update={"canary": status_mod.CanaryStatus.model_validate(served.canary.view())}
            )
        return st.to_json()

    async def readiness(self, started: bool) -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {"store": self.parts.store is not None and started}
        ready = bool(details["store"])
        for served in self.parts.tasks.values():
            student = served.student
            if student is None and served.engine.active_version is not None:
                details[served.name] = f"student backend failed: {served.student_error}"
                ready = False
                continue
            if student is None or student.active_version() is None:
                details[served.name] = "phase 1: teacher serves"
                continue
            health = await student.health()
            details[served.name] = health.detail
            ready = ready and health.ready
        return ready, details

    def metrics_exposition(self) -> tuple[bytes, str]:
        """The Prometheus text, with the state gauges refreshed from memory (no store reads)."""
        now, metrics = datetime.now(UTC), self.parts.metrics
        for served in self.parts.tasks.values():
            s = served.engine.state
            metrics.set_task_state(
                served.name, phase=s.phase.value, sampling_rate=s.sampling_rate,
                confidence=s.confidence.mean, confidence_lower_bound=s.confidence.lower_bound,
            )  # fmt: skip
            metrics.set_examples(
                served.name, served.examples.get("train", 0), served.examples.get("heldout", 0)
            )
            for window, usd in self.parts.budget.windows(served.name, now).items():
                metrics.set_budget_spend(served.name, window, usd)
        return metrics.render(), metrics_mod.CONTENT_TYPE

    async def export_dataset(self, task: str, split: str, fmt: str) -> list[str]:
        served, store = self.parts.tasks[task], self.parts.opened()
        if split not in records.SPLITS:
            raise errors.BadRequest(f"split must be train or heldout, got {split!r}")
        if fmt not in datasets.FORMATS:
            raise errors.BadRequest(f"format must be one of {list(datasets.FORMATS)}, got {fmt!r}")
        rows = await asyncio.to_thread(lambda: list(store.iter_examples(task, split)))
        return [datasets.render_line(served.cfg, row, fmt) for row in rows]

    # -- versions (the seam) -----------------------------------------------------------------

    def _orch(self) -> local_orch.LocalOrchestrator:
        assert self.orchestrator is not None, "start() first"
        return self.orchestrator

    async def versions(self, task: str) -> tuple[list[VersionInfo], str | None]:
        return await _guard(self._orch().versions(task))

    async def register_version(
        self, task: str, path: str, metrics: dict[str, Any], version: str | None
    ) -> VersionInfo:
        return await _guard(self._orch().register_version(task, path, metrics, version))

    async def validate_version(self, task: str, version: str) -> ValidationResult:
        return await _guard(self._orch().validate(task, version))

    async def promote(self, task: str, version: str) -> str:
        """The version that serves afterwards: the active one while ``version`` is a canary."""
        promoted = await _guard(self._orch().promote(task, version))
        live = self.parts.tasks[task].canary
        if live is not None and live.version == version and live.active_version is not None:
            return live.active_version
        return promoted

    async def rollback(self, task: str) -> str:
        served = self.parts.tasks[task]
        before = served.engine.active_version
        version = await _guard(self._orch().rollback(task))
        text = f"rolled back from {before or 'no version'} to {version}"
        event = events_mod.event(task, "rollback", text, datetime.now(UTC), version=version)
        self.control.write_events(served, [event])
        return version


async def _guard(coro: Awaitable[T]) -> T:
    try:
        return await coro
    except OrchestrationError as exc:
        cls = {"not_found": errors.NotFound, "bad_request": errors.BadRequest}.get(
            exc.kind, errors.Conflict
        )
        raise cls(str(exc)) from None
