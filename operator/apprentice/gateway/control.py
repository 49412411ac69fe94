"""The engine side of everything that is not a request: pause, training, promotion, events.

:class:`TaskControl` is what the orchestrator calls back (its ``hooks``:
``training_started``, ``training_finished``, ``version_promoted``, ``coaching``,
``training_data``, ``version_registered``)
and what the admin API's pause / resume / training endpoints reach. Each verb
steps the task's engine state, queues the engine's new events and saves the
state behind every request write already queued (the ordered writer), so the
store never holds an older state than one a request saw.

It also starts local training runs when the engine says one is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from apprentice.engine.canary import Judgement, Tally, Verdict
from apprentice.gateway import training_data
from apprentice.gateway.canary import LiveCanary
from apprentice.gateway.parts import Parts
from apprentice.gateway.tasks import ServedTask
from apprentice.orchestration.seam import CanaryVerdict, TrainingData
from apprentice.reporting import alerts as alerts_mod
from apprentice.reporting import events as events_mod
from apprentice.reporting import snapshot as snapshot_mod
from apprentice.store import records
from apprentice.students.base import Student

log = logging.getLogger(__name__)

Trainer = Callable[[str, str | None], Awaitable[object]]
"""Runs one training of a task for a reason (the LocalOrchestrator's ``train``)."""


def short_reason(reason: str | None) -> str | None:
    """A failure's first line and the log's last one ("trainer exited with 3 ... out of memory")."""
    if not reason:
        return reason
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    first, last = lines[0], lines[-1]
    text = first if first == last else f"{first.rstrip(':;')} ... {last}"
    text = text.replace("; log tail", "")
    return text if len(text) <= 300 else text[:297] + "..."


def _event_write_done(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not write events: %s", future.exception())


class TaskControl:
    """Engine hooks, events and local training for every task (see the module docstring)."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.trainer: Trainer | None = None  # set once the orchestrator exists
        self._rejections: dict[str, str] = {}  # task -> why its last candidate was rejected
        self.training_runs = training_data.TrainingRuns()  # the data handed to each run
        self.canary_jobs: set[asyncio.Task[None]] = set()  # canary verdicts being carried out
        parts.alerts.listen(self._alert_event)

    # -- events ----------------------------------------------------------------------------

    def write_events(self, task: ServedTask, extra: Sequence[records.EventRecord] = ()) -> None:
        """Queue the engine's new events (and ``extra``) for the events table, in order."""
        pending = [*task.engine.drain_events(), *extra]
        if pending:
            self._write(pending)

    def _write(self, pending: list[records.EventRecord]) -> None:
        store = self.parts.store
        if store is None:
            return

        def write() -> None:
            for event in pending:
                store.add_event(event)

        if not self.parts.writer.running:
            write()  # not serving: admin calls only, rare
        else:
            self.parts.writer.submit(write).add_done_callback(_event_write_done)

    def _alert_event(self, alert: alerts_mod.Alert) -> None:
        """Alerts the engine does not see itself (budget, rejections) become events too."""
        if alert.kind not in ("budget_80", "budget_100", "version_rejected"):
            return
        if alert.kind == "version_rejected" and alert.task is not None:
            self._rejections[alert.task] = str(alert.details.get("reason") or alert.message)
        task = self.parts.tasks.get(alert.task or "")
        extra = [events_mod.alert_event(alert.kind, alert.task, alert.message, alert.at)]
        if task is not None:
            self.write_events(task, extra)
        elif self.parts.writer.running:
            self._write(extra)

    async def _save_state(self, task: ServedTask) -> None:
        self.write_events(task)
        state, store = task.engine.to_json(), self.parts.opened()
        if not self.parts.writer.running:
            await asyncio.to_thread(store.save_task_state, task.name, state)
        else:  # ordered after every queued request write
            await self.parts.writer.submit(lambda: store.save_task_state(task.name, state))

    # -- hooks (the orchestrator's and the admin API's) -------------------------------------

    def coaching(self, task: str) -> bool:
        state = self.parts.tasks[task].engine.state
        return bool(state.coaching or state.emergency)

    async def set_paused(self, task: str, paused: bool) -> None:
        served = self.parts.tasks[task]
        served.engine.set_paused(paused)
        await self._save_state(served)

    async def training_started(self, task: str) -> int | None:
        served = self.parts.tasks[task]
        self.training_runs.forget(task)
        served.engine.training_started()
        await self._save_state(served)
        return served.engine.state.trained_examples

    async def training_finished(self, task: str, ok: bool, reason: str | None) -> None:
        served = self.parts.tasks[task]
        failed = not ok or reason == "rejected"
        reason = short_reason(reason)
        if reason == "rejected":
            reason = f"rejected: {self._rejections.pop(task, 'the held-out check failed')}"
        served.engine.training_finished(not failed, reason)
        if not ok:
            self.training_runs.forget(task)
        if failed:
            retry = snapshot_mod.next_retry(served.engine.state)
            self.parts.alerts.emit(alerts_mod.training_failed(task, reason, retry))
        await self._save_state(served)

    async def version_promoted(self, task: str, version: str) -> None:
        served = self.parts.tasks[task]
        served.engine.version_promoted(version)
        await self._save_state(served)

    async def canary_started(
        self, task: str, version: str, student: Student, verdict: CanaryVerdict
    ) -> bool:
        """Route live traffic to ``version`` (:mod:`apprentice.gateway.canary`) until the
        engine's verdict, then hand it to ``verdict`` off the request path. A canary of
        another version still running is superseded (rolled back)."""
        served = self.parts.tasks[task]
        old = served.canary
        if old is not None and old.version == version:
            return False
        now = datetime.now(UTC)
        if old is not None:
            old.done = True
            self._canary_ended(old, Judgement(Verdict.roll_back, f"superseded by {version}"),
                               verdict)  # fmt: skip

        def finish(live: LiveCanary, judgement: Judgement) -> None:
            self._canary_ended(live, judgement, verdict)

        active = served.engine.active_version
        started, evidence = await asyncio.to_thread(self._evidence, task, version, active, now)
        live = LiveCanary(task, version, student, served.cfg.canary, active=active,
                          started_at=started, finish=finish)  # fmt: skip
        served.canary = live
        live.candidate, live.active = evidence[version], evidence[active]
        cfg = served.cfg.canary
        text = f"canary {version} started: {cfg.mode.value} of {cfg.share:.0%} of live traffic"
        self.write_events(served, [events_mod.event(task, "canary_started", text, now,
                                                    version=version)])  # fmt: skip
        return True

    def _evidence(
        self, task: str, version: str, active: str | None, now: datetime
    ) -> tuple[datetime, dict[str | None, Tally]]:
        """When ``version``'s canary started (its store mark; ``now`` for a new one) and each
        version's stored comparisons since: a restarted gateway resumes with its evidence."""
        store = self.parts.store
        if store is None:
            return now, {version: Tally(), active: Tally()}
        mark = store.version(task, version).metrics.get("canary") or {}
        started = datetime.fromisoformat(mark["started_at"]) if "started_at" in mark else now
        return started, snapshot_mod.canary_tallies(store, task, started, [version, active])

    def _canary_ended(self, live: LiveCanary, judgement: Judgement, verdict: CanaryVerdict) -> None:
        """Stop routing to the candidate now; promote or roll back in the background."""
        served = self.parts.tasks[live.task]
        if served.canary is live:
            served.canary = None
        job = asyncio.get_running_loop().create_task(self._settle_canary(live, judgement, verdict))
        self.canary_jobs.add(job)
        job.add_done_callback(self.canary_jobs.discard)

    async def _settle_canary(
        self, live: LiveCanary, judgement: Judgement, verdict: CanaryVerdict
    ) -> None:
        served = self.parts.tasks[live.task]
        promoted = judgement.verdict is Verdict.promote
        kind = "canary_promoted" if promoted else "canary_rolled_back"
        text = f"canary {live.version} {'promoted' if promoted else 'rolled back'}: "
        event = events_mod.event(live.task, kind, text + judgement.reason, datetime.now(UTC),
                                 **live.view())  # fmt: skip
        try:
            await verdict(live.task, live.version, judgement)
        except Exception:
            log.exception("task %s: canary %s: the verdict failed", live.task, live.version)
        finally:
            self.write_events(served, [event])
            with contextlib.suppress(Exception):
                await live.student.aclose()

    async def wait_for_canaries(self) -> None:
        """Wait until every canary verdict reached so far is carried out (tests, shutdown)."""
        while self.canary_jobs:
            await asyncio.gather(*list(self.canary_jobs), return_exceptions=True)

    async def training_data(self, task: str) -> TrainingData:
        """What the task's run trains on, for the LocalOrchestrator and the trainer Job
        alike (:mod:`apprentice.gateway.training_data`)."""
        served = self.parts.tasks[task]
        return await asyncio.to_thread(
            self.training_runs.training_data,
            self.parts.opened(),
            self.parts.config,
            task,
            covered=served.engine.state.trained_examples,
            coaching=self.coaching(task),
        )

    async def version_registered(self, task: str, version: str) -> None:
        store = self.parts.opened()
        await asyncio.to_thread(self.training_runs.registered, store, task, version)

    # -- local training ----------------------------------------------------------------------

    def _trains_here(self, task: ServedTask) -> bool:
        local = self.parts.config.gateway.orchestrator == "local"
        return local and self.parts.serving and not task.engine.paused

    def training_due_or_running(self, task: str) -> bool:
        served = self.parts.tasks[task]
        due = self.parts.config.gateway.orchestrator == "local" and not served.engine.paused
        return served.training_in_progress() or (due and served.engine.training_due()[0])

    def maybe_train(self, task: ServedTask) -> None:
        """Start a run in the background when the engine says one is due (local mode)."""
        if self.trainer is None or not self._trains_here(task) or task.training_in_progress():
            return
        if task.canary is not None:  # the candidate is judged first; the next run after
            return
        due, reason = task.engine.training_due()
        if due:
            trainer = self.trainer

            async def run() -> None:
                await trainer(task.name, reason)

            task.training = asyncio.get_running_loop().create_task(run(), name=f"train-{task.name}")

    async def wait_for_training_idle(self, task: str | None = None) -> None:
        names = [task] if task is not None else list(self.parts.tasks)
        for name in names:
            served = self.parts.tasks[name]
            for _ in range(3):  # a run that ends with training still due is retried once
                self.maybe_train(served)
                if served.training is None or served.training.done():
                    break
                with contextlib.suppress(Exception):
                    await asyncio.shield(served.training)
