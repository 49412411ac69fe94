"""What the gateway holds while it runs: the store, clients, per-task state, the orchestrator.

:class:`Runtime` owns start-up and shut-down and every non-request operation
(status, versions, dataset export, pause, training hooks); the request path itself
is in :mod:`apprentice.gateway.service`, which subclasses it.

Start-up is the restart story: the store is opened (migrated), each task's
engine state is loaded from its last request transaction, the budget ledger is
rebuilt from the store's spend ledger, and the active adapter of every task is
loaded into its student, so a ``serve`` killed with SIGKILL resumes with the same
phase, window, spend and versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from apprentice import evaluators as evaluator_registry
from apprentice import students as student_registry
from apprentice import teachers as teacher_registry
from apprentice.config import ApprenticeConfig, TaskConfig
from apprentice.evaluators.base import EvaluatorError
from apprentice.gateway import errors, glue, judging, settling, spending, training_data
from apprentice.gateway.journal import SpendJournal
from apprentice.gateway.journal import default_path as journal_path
from apprentice.gateway.tasks import TaskRuntime
from apprentice.gateway.writer import StoreWriter
from apprentice.orchestration import datasets as export_mod
from apprentice.orchestration import local as local_orch
from apprentice.orchestration.seam import (
    OrchestrationError,
    TrainingData,
    ValidationResult,
    VersionInfo,
)
from apprentice.reporting import alerts as alerts_mod
from apprentice.reporting import events as events_mod
from apprentice.reporting import metrics as metrics_mod
from apprentice.reporting import snapshot as snapshot_mod
from apprentice.reporting import status as status_mod
from apprentice.store import StoreError, open_store, records
from apprentice.students import base as students
from apprentice.teachers import base as teachers_base
from apprentice.teachers.errors import TeacherError

log = logging.getLogger(__name__)


def _short_reason(reason: str | None) -> str | None:
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


T = TypeVar("T")


class Runtime:
    """Start/stop and every operation besides answering a request."""

    def __init__(
        self,
        cfg: ApprenticeConfig,
        *,
        base_dir: Path | None = None,
        teachers: teachers_base.TeacherPool | None = None,
        student_factory: Callable[[TaskConfig], students.Student] | None = None,
        trainer_command: Sequence[str] | None = None,
        validation_threshold: float | None = None,
    ) -> None:
        self.config = cfg
        self.base_dir = base_dir
        self._injected_teachers = teachers
        self.student_factory = student_factory or (
            lambda t: student_registry.build_student(cfg.local, task=t.name)
        )
        self.trainer_command = trainer_command
        self.validation_threshold = validation_threshold
        self.store: Any = None
        self.metrics = metrics_mod.Metrics()
        self.alerts = alerts_mod.Alerter(cfg.alerts, metrics=self.metrics)
        self.alerts.listen(self._alert_event)
        self._rejections: dict[str, str] = {}  # task -> why its last candidate was rejected
        self.writer = StoreWriter()
        self.teachers: Any = None
        self.budget = spending.SharedBudget(cfg)
        self.settler = settling.Settler(self.budget, self.writer, None, SpendJournal(Path()))
        self.tasks: dict[str, TaskRuntime] = {}
        # Request ids feed the sampling draw; a reproducible run (the demo) sets a
        # deterministic source, production keeps random ones.
        self.new_request_id: Callable[[], str] = lambda: uuid.uuid4().hex
        self.orchestrator: local_orch.LocalOrchestrator | None = None
        self.training_runs = training_data.TrainingRuns()  # the data handed to each run
        self.serving = False
        self._started = False
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, serving: bool = True) -> None:
        """Open everything; ``serving=False`` (CLI admin commands) skips clients and models.

        Raises :class:`~apprentice.gateway.errors.StartupError` with the fix when the
        store cannot be opened or a teacher or evaluator cannot be built.
        """
        if self._started:
            return
        try:
            await self._start(serving)
        except (StoreError, TeacherError, EvaluatorError, OSError) as exc:
            await self._abort()
            raise errors.StartupError(f"cannot start: {exc}") from exc

    async def _abort(self) -> None:
        if self.teachers is not None:
            await self.teachers.aclose()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    async def _start(self, serving: bool) -> None:
        cfg = self.config
        self.store = await asyncio.to_thread(open_store, cfg.store.url)
        self.writer = StoreWriter(self.store)
        await self._start_budget()
        heldout = cfg.local.training.heldout_fraction
        for task in cfg.tasks:
            saved = await asyncio.to_thread(self.store.load_task_state, task.name)
            rt = TaskRuntime(task, glue.TaskEngine(cfg, task, saved), heldout)
            counts = await asyncio.to_thread(self.store.example_counts, task.name)
            rt.examples = dict(counts)
            rt.engine.sync_examples(sum(counts.values()))
            active = await asyncio.to_thread(self.store.active_version, task.name)
            rt.engine.sync_version(None if active is None else active.version)
            rt.engine.requests = (
                await asyncio.to_thread(self.store.request_counts, task.name)
            ).requests
            rt.paused = rt.engine.paused
            self.tasks[task.name] = rt
        self.serving = serving
        if serving:
            self.teachers = self._injected_teachers or teacher_registry.build_pool(cfg.remote)
            for rt in self.tasks.values():
                rt.evaluator = evaluator_registry.build_evaluator(
                    rt.cfg,
                    judge_factory=judging.billed_judges(self.budget, rt.name),
                    default_judge=cfg.remote.providers()[0],
                )
                try:
                    rt.student = self.student_factory(rt.cfg)
                except Exception as exc:  # the teacher can still serve; /readyz tells
                    rt.student_error = f"{type(exc).__name__}: {exc}"
                    log.error("task %s: no student backend: %s", rt.name, rt.student_error)
        self.orchestrator = local_orch.LocalOrchestrator(
            cfg,
            self.store,
            hooks=self,
            students={n: t.student for n, t in self.tasks.items()},
            evaluators={  # held-out validation's judge calls are reserved and booked
                n: judging.BudgetedEvaluator(t.evaluator, self.budget, n) if t.evaluator else None
                for n, t in self.tasks.items()
            },
            alerts=self.alerts,
            metrics=self.metrics,
            student_factory=self.student_factory,
            validation_threshold=self.validation_threshold,
            trainer_command=self.trainer_command,
        )
        if serving:
            for rt in self.tasks.values():
                await self.orchestrator.load_active(rt.name)
                warm_up = getattr(rt.evaluator, "warm_up", None)
                if warm_up is not None:  # e.g. the MiniLM model: load it off the request path
                    self._background.add(asyncio.get_running_loop().create_task(warm_up()))
            self.writer.start()
            await self.alerts.start()
            for rt in self.tasks.values():
                self.write_events(rt)  # e.g. a run interrupted by the restart
                if rt.engine.state.interrupted:
                    self.maybe_train(rt)  # it runs again now, not after a new batch
        self._started = True

    async def _start_budget(self) -> None:
        """The shared budget on the store; what a crash left unbooked is booked first.

        The spend journal (lines the store refused after payment) is replayed at
        exact cost, then the reservations this gateway held before it restarted,
        and any whose lease expired, are booked at their worst case.
        """
        self.budget = spending.SharedBudget(self.config, self.store)
        journal = SpendJournal(journal_path(self.config))
        self.settler = settling.Settler(self.budget, self.writer, self.store, journal)
        replayed = await asyncio.to_thread(journal.replay, self.store)
        now = datetime.now(UTC)
        recovered = await self.budget.recover(now)
        if replayed or recovered:
            log.warning(
                "budget: %d journaled spend lines replayed, %d unsettled reservations booked "
                "at their worst case (%.6f)",
                replayed,
                len(recovered),
                sum(r.amount for r in recovered),
            )
        await self.budget.refresh(now)

    async def close(self) -> None:
        if not self._started:
            return
        await self.settler.drain()
        self._started = False
        for job in self._background:
            job.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
            self._background.clear()
        for rt in self.tasks.values():
            if rt.training is not None and not rt.training.done():
                rt.training.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await rt.training
        if self.orchestrator is not None:
            await self.orchestrator.aclose()
        await self.writer.close()
        await self.budget.close()
        await self.alerts.stop(drain_timeout_s=2.0)
        for rt in self.tasks.values():
            if rt.student is not None:
                await rt.student.aclose()
            if rt.evaluator is not None:
                await rt.evaluator.aclose()
        if self.teachers is not None:
            await self.teachers.aclose()
        if self.store is not None:
            await asyncio.to_thread(self.store.close)

    # -- read side -----------------------------------------------------------------------

    def engine_state(self, task: str) -> Any:
        return self.tasks[task].engine

    def training_in_progress(self, task: str) -> bool:
        return self.tasks[task].training_in_progress()

    def training_due_or_running(self, task: str) -> bool:
        rt = self.tasks[task]
        return rt.training_in_progress() or (
            self.config.gateway.orchestrator == "local"
            and rt.engine.training_due()[0]
            and not rt.paused
        )

    def task_summaries(self) -> list[dict[str, Any]]:
        return [
            {"name": rt.name, "description": rt.cfg.description, "phase": rt.engine.phase_name()}
            for rt in self.tasks.values()
        ]

    async def flush(self) -> None:
        """Wait until every store write queued so far is committed."""
        if self.writer._worker is not None:
            await self.writer.submit(lambda: None)

    async def status(self, task: str) -> dict[str, Any]:
        rt = self.tasks[task]
        await self.flush()  # local-only answers do not wait for their commit; status does
        now = datetime.now(UTC)
        await self.budget.refresh(now)  # every gateway's spend, not only this one's
        counts = await asyncio.to_thread(self.store.request_counts, task)
        active = await asyncio.to_thread(self.store.active_version, task)
        windows = self.budget.windows(task, now)
        local = await asyncio.to_thread(
            snapshot_mod.local_compute_cost, self.config, self.store, task, now
        )
        savings = counts.student_answers * rt.avg_teacher_cost() - local
        last = await asyncio.to_thread(snapshot_mod.last_training, self.store, task)
        st = status_mod.build_task_status(
            task,
            engine=rt.engine.view(paused=rt.paused),
            counters=status_mod.StoreCounters(
                train_examples=rt.examples.get("train", 0),
                heldout_examples=rt.examples.get("heldout", 0),
                teacher_calls=counts.teacher_calls,
                student_answers=counts.student_answers,
                requests=counts.requests,
            ),
            spend=status_mod.SpendWindows(
                windows["daily"], windows["weekly"], windows["monthly"], self.config.budget.currency
            ),
            caps=status_mod.effective_caps(rt.cfg.budget, self.config.budget),
            estimated_savings=savings,
            active_version=None if active is None else active.version,
            training_in_progress=rt.training_in_progress(),
            budget_exhausted=self.budget.exhausted(task, now, rt.avg_teacher_cost()),
            budget_cap=snapshot_mod.blocking_cap(
                self.budget.mirror.ledger, now, task, rt.avg_teacher_cost()
            ),
            last_training=last,
        )
        self.metrics.update_from_status(st)
        return st.to_json()

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        details: dict[str, Any] = {"store": self.store is not None and self._started}
        ready = bool(details["store"])
        for rt in self.tasks.values():
            if rt.student is None and rt.engine.active_version is not None:
                details[rt.name] = f"student backend failed: {rt.student_error}"
                ready = False
                continue
            if rt.student is None or rt.student.active_version() is None:
                details[rt.name] = "phase 1: teacher serves"
                continue
            health = await rt.student.health()
            details[rt.name] = health.detail
            ready = ready and health.ready
        return ready, details

    def metrics_exposition(self) -> tuple[bytes, str]:
        """The Prometheus text, with the state gauges refreshed from memory (no store reads)."""
        now = datetime.now(UTC)
        for rt in self.tasks.values():
            s = rt.engine.state
            self.metrics.set_task_state(
                rt.name,
                phase=s.phase.value,
                sampling_rate=s.sampling_rate,
                confidence=s.confidence.mean,
                confidence_lower_bound=s.confidence.lower_bound,
            )
            self.metrics.set_examples(
                rt.name, rt.examples.get("train", 0), rt.examples.get("heldout", 0)
            )
            for window, usd in self.budget.windows(rt.name, now).items():
                self.metrics.set_budget_spend(rt.name, window, usd)
        return self.metrics.render(), metrics_mod.CONTENT_TYPE

    async def export_dataset(self, task: str, split: str, fmt: str) -> list[str]:
        rt = self.tasks[task]
        if split not in records.SPLITS:
            raise errors.BadRequest(f"split must be train or heldout, got {split!r}")
        if fmt not in export_mod.FORMATS:
            raise errors.BadRequest(
                f"format must be one of {list(export_mod.FORMATS)}, got {fmt!r}"
            )
        rows = await asyncio.to_thread(lambda: list(self.store.iter_examples(task, split)))
        return [export_mod.render_line(rt.cfg, row, fmt) for row in rows]

    # -- versions (the seam) -------------------------------------------------------------

    def _orch(self) -> local_orch.LocalOrchestrator:
        assert self.orchestrator is not None, "start() first"
        return self.orchestrator

    async def versions(self, task: str) -> tuple[list[VersionInfo], str | None]:
        return await self._guard(self._orch().versions(task))

    async def register_version(
        self, task: str, path: str, metrics: dict[str, Any], version: str | None
    ) -> VersionInfo:
        return await self._guard(self._orch().register_version(task, path, metrics, version))

    async def validate_version(self, task: str, version: str) -> ValidationResult:
        return await self._guard(self._orch().validate(task, version))

    async def promote(self, task: str, version: str) -> str:
        return await self._guard(self._orch().promote(task, version))

    async def rollback(self, task: str) -> str:
        before = self.tasks[task].engine.active_version
        version = await self._guard(self._orch().rollback(task))
        text = f"rolled back from {before or 'no version'} to {version}"
        event = events_mod.event(task, "rollback", text, datetime.now(UTC), version=version)
        self.write_events(self.tasks[task], [event])
        return version

    async def _guard(self, coro: Awaitable[T]) -> T:
        try:
            return await coro
        except OrchestrationError as exc:
            cls = {"not_found": errors.NotFound, "bad_request": errors.BadRequest}.get(
                exc.kind, errors.Conflict
            )
            raise cls(str(exc)) from None

    # -- engine hooks (called by the orchestrator and the admin API) ---------------------

    def write_events(self, rt: TaskRuntime, extra: Sequence[records.EventRecord] = ()) -> None:
        """Queue the engine's new events (and ``extra``) for the events table, in order."""
        pending = [*rt.engine.drain_events(), *extra]
        store = self.store
        if not pending or store is None:
            return

        def write() -> None:
            for event in pending:
                store.add_event(event)

        if self.writer._worker is None:
            write()  # not serving: admin calls only, rare
        else:
            self.writer.submit(write).add_done_callback(_event_write_done)

    def _alert_event(self, alert: alerts_mod.Alert) -> None:
        """Alerts the engine does not see itself (budget, rejections) become events too."""
        if alert.kind not in ("budget_80", "budget_100", "version_rejected"):
            return
        if alert.kind == "version_rejected" and alert.task is not None:
            self._rejections[alert.task] = str(alert.details.get("reason") or alert.message)
        rt = self.tasks.get(alert.task or "")
        extra = [events_mod.alert_event(alert.kind, alert.task, alert.message, alert.at)]
        if rt is not None:
            self.write_events(rt, extra)
        elif self.store is not None and self.writer._worker is not None:
            store = self.store
            self.writer.submit(lambda: store.add_event(extra[0])).add_done_callback(
                _event_write_done
            )

    async def _save_state(self, rt: TaskRuntime) -> None:
        self.write_events(rt)
        state = rt.engine.to_json()
        if self.writer._worker is None:
            await asyncio.to_thread(self.store.save_task_state, rt.name, state)
        else:
            await self.writer.submit(lambda: self.store.save_task_state(rt.name, state))

    def coaching(self, task: str) -> bool:
        state = self.tasks[task].engine.state
        return bool(state.coaching or state.emergency)

    async def set_paused(self, task: str, paused: bool) -> None:
        rt = self.tasks[task]
        rt.paused = paused
        rt.engine.set_paused(paused)
        await self._save_state(rt)

    async def training_started(self, task: str) -> int | None:
        rt = self.tasks[task]
        self.training_runs.forget(task)
        rt.engine.training_started()
        await self._save_state(rt)  # ordered after every queued request write
        return rt.engine.state.trained_examples

    async def training_finished(self, task: str, ok: bool, reason: str | None) -> None:
        rt = self.tasks[task]
        failed = not ok or reason == "rejected"
        reason = _short_reason(reason)
        if reason == "rejected":
            reason = f"rejected: {self._rejections.pop(task, 'the held-out check failed')}"
        rt.engine.training_finished(not failed, reason)
        if not ok:
            self.training_runs.forget(task)
        if failed:
            retry = snapshot_mod.next_retry(rt.engine.state)
            self.alerts.emit(alerts_mod.training_failed(task, reason, retry))
        await self._save_state(rt)

    async def version_promoted(self, task: str, version: str) -> None:
        rt = self.tasks[task]
        rt.engine.version_promoted(version)
        await self._save_state(rt)

    async def training_data(self, task: str) -> TrainingData:
        """What the task's run trains on, for the LocalOrchestrator and the trainer Job
        alike (:mod:`apprentice.gateway.training_data`)."""
        rt = self.tasks[task]
        return await asyncio.to_thread(
            self.training_runs.training_data,
            self.store,
            self.config,
            task,
            covered=rt.engine.state.trained_examples,
            coaching=self.coaching(task),
        )

    async def version_registered(self, task: str, version: str) -> None:
        await asyncio.to_thread(self.training_runs.registered, self.store, task, version)

    # -- training --------------------------------------------------------------------------

    def maybe_train(self, rt: TaskRuntime) -> None:
        """Start a run in the background when the engine says one is due (local mode)."""
        if self.config.gateway.orchestrator != "local" or rt.paused or not self.serving:
            return
        if rt.training_in_progress():
            return
        due, reason = rt.engine.training_due()
        if not due:
            return
        rt.training = asyncio.get_running_loop().create_task(
            self._orch().train(rt.name, reason), name=f"train-{rt.name}"
        )

    async def wait_for_training_idle(self, task: str | None = None) -> None:
        names = [task] if task is not None else list(self.tasks)
        for name in names:
            rt = self.tasks[name]
            for _ in range(3):  # a run that ends with training still due is retried once
                self.maybe_train(rt)
                if not rt.training_in_progress():
                    break
                assert rt.training is not None
                with contextlib.suppress(Exception):
                    await asyncio.shield(rt.training)
