"""The gateway: one object that assembles the parts and hands each call to the one that owns it.

``Gateway`` owns start-up and shut-down and nothing else; everything it is asked
goes to an object with one job, composed, not inherited:

- :class:`~apprentice.gateway.pipeline.Pipeline`: the request path
  (admit -> call -> judge -> commit, :mod:`apprentice.gateway.request`'s record);
- :class:`~apprentice.gateway.control.TaskControl`: the engine's hooks (pause,
  training, promotion), events and local training; it is the orchestrator's ``hooks``;
- :class:`~apprentice.gateway.admin.Admin`: status, readiness, metrics, export and
  the version operations of the seam (the admin API).

Start-up is the restart story: the store is opened (migrated), each task's engine
state is loaded from its last request transaction, the budget is rebuilt from the
store (the spend journal replayed, reservations a crash left booked at their worst
case), and the active adapter of every task is loaded into its student, so a
``serve`` killed with SIGKILL resumes with the same phase, window, spend and versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apprentice import evaluators as evaluator_registry
from apprentice import students as student_registry
from apprentice import teachers as teacher_registry
from apprentice.config import ApprenticeConfig, TaskConfig
from apprentice.evaluators.base import EvaluatorError
from apprentice.gateway import errors, judging, retention, settling, spending, tracing
from apprentice.gateway.admin import Admin
from apprentice.gateway.admit import Admission
from apprentice.gateway.commit import Committer
from apprentice.gateway.control import TaskControl
from apprentice.gateway.journal import SpendJournal
from apprentice.gateway.journal import default_path as journal_path
from apprentice.gateway.parts import Parts
from apprentice.gateway.pipeline import Pipeline
from apprentice.gateway.request import NO_META, Meta, Result
from apprentice.gateway.task_engine import TaskEngine
from apprentice.gateway.tasks import ServedTask
from apprentice.gateway.writer import StoreWriter
from apprentice.orchestration import local as local_orch
from apprentice.orchestration.seam import TrainingData, ValidationResult, VersionInfo
from apprentice.reporting import alerts as alerts_mod
from apprentice.reporting import metrics as metrics_mod
from apprentice.store import Store, StoreError, open_store
from apprentice.students import base as students
from apprentice.teachers.base import TeacherPool
from apprentice.teachers.errors import TeacherError

__all__ = ["Gateway", "Meta", "Result"]

log = logging.getLogger(__name__)


class Gateway:
    """Assembles the gateway's parts; see the module docstring."""

    def __init__(
        self,
        cfg: ApprenticeConfig,
        *,
        base_dir: Path | None = None,
        teachers: TeacherPool | None = None,
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
        metrics = metrics_mod.Metrics()
        writer = StoreWriter()
        budget = spending.SharedBudget(cfg)
        settler = settling.Settler(budget, writer, None, SpendJournal(Path()))
        alerter = alerts_mod.Alerter(cfg.alerts, metrics=metrics)
        self.parts = Parts(cfg, metrics, alerter, writer, budget, settler)
        self.control = TaskControl(self.parts)
        self.admin = Admin(self.parts, self.control)
        admission = Admission(self.parts)
        committer = Committer(
            self.parts, write_events=self.control.write_events, maybe_train=self.control.maybe_train
        )
        self.pipeline = Pipeline(self.parts, admission, committer)
        self._started = False
        self._background: set[asyncio.Task[None]] = set()
        self.pruner: retention.RequestPruner | None = None  # old request rows (serving)
        self.tracing: tracing.Tracing | None = None

    # -- the parts, by name (tests, the CLI and the benchmark read them) ----------------------

    @property
    def store(self) -> Any:  # a Store once started (None before): callers rely on that
        return self.parts.store

    @store.setter
    def store(self, store: Store | None) -> None:
        self.parts.store = store

    @property
    def tasks(self) -> dict[str, ServedTask]:
        return self.parts.tasks

    @property
    def metrics(self) -> metrics_mod.Metrics:
        return self.parts.metrics

    @property
    def alerts(self) -> alerts_mod.Alerter:
        return self.parts.alerts

    @property
    def teachers(self) -> TeacherPool | None:
        return self.parts.teachers

    @property
    def budget(self) -> spending.SharedBudget:
        return self.parts.budget

    @budget.setter
    def budget(self, budget: spending.SharedBudget) -> None:
        """Swap the budget for every part at once (the benchmark's process-local baseline)."""
        self.parts.budget = budget
        self.parts.settler.budget = budget

    @property
    def orchestrator(self) -> local_orch.LocalOrchestrator | None:
        return self.admin.orchestrator

    @property
    def new_request_id(self) -> Callable[[], str]:
        return self.parts.new_request_id

    @new_request_id.setter
    def new_request_id(self, source: Callable[[], str]) -> None:
        """A deterministic id source for a reproducible run (ids feed the sampling draw)."""
        self.parts.new_request_id = source

    # -- start and stop -----------------------------------------------------------------------

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
        if self.parts.teachers is not None:
            await self.parts.teachers.aclose()
        if self.parts.store is not None:
            await asyncio.to_thread(self.parts.store.close)
            self.parts.store = None

    async def _start(self, serving: bool) -> None:
        parts = self.parts
        store = parts.store = await asyncio.to_thread(open_store, self.config.store.url)
        parts.writer = StoreWriter(store)
        await self._start_budget()
        for task in self.config.tasks:
            parts.tasks[task.name] = await self._load_task(task)
        parts.serving = serving
        if serving:
            parts.teachers = self._injected_teachers or teacher_registry.build_pool(
                self.config.remote
            )
            for served in parts.tasks.values():
                self._build_models(served)
        orchestrator = self.admin.orchestrator = self._orchestrator()
        self.control.trainer = orchestrator.train
        if serving:
            self.tracing = tracing.start(self.config)  # None: off (nothing of OTel imported)
            await self._serve(orchestrator)
        self._started = True

    async def _load_task(self, task: TaskConfig) -> ServedTask:
        """One task as the store left it: engine state, example counts, version, requests."""
        store = self.parts.opened()
        saved = await asyncio.to_thread(store.load_task_state, task.name)
        served = ServedTask(
            task,
            TaskEngine(self.config, task, saved),
            self.config.local.training.heldout_fraction,
        )
        counts = await asyncio.to_thread(store.example_counts, task.name)
        served.examples = {str(split): n for split, n in counts.items()}
        served.engine.sync_examples(sum(counts.values()))
        active = await asyncio.to_thread(store.active_version, task.name)
        served.engine.sync_version(None if active is None else active.version)
        totals = await asyncio.to_thread(store.request_counts, task.name)
        served.engine.requests = totals.requests
        return served

    def _build_models(self, served: ServedTask) -> None:
        served.evaluator = evaluator_registry.build_evaluator(
            served.cfg,
            judge_factory=judging.billed_judges(self.parts.budget, served.name),
            default_judge=self.config.remote.providers()[0],
        )
        try:
            served.attach_student(self.student_factory(served.cfg))
        except Exception as exc:  # the teacher can still serve; /readyz tells
            served.student_error = f"{type(exc).__name__}: {exc}"
            log.error("task %s: no student backend: %s", served.name, served.student_error)

    def _orchestrator(self) -> local_orch.LocalOrchestrator:
        tasks, budget = self.parts.tasks, self.parts.budget
        return local_orch.LocalOrchestrator(
            self.config,
            self.parts.opened(),
            hooks=self.control,
            students={n: t.student for n, t in tasks.items()},
            evaluators={  # held-out validation's judge calls are reserved and booked
                n: judging.BudgetedEvaluator(t.evaluator, budget, n) if t.evaluator else None
                for n, t in tasks.items()
            },
            alerts=self.parts.alerts,
            metrics=self.parts.metrics,
            student_factory=self.student_factory,
            validation_threshold=self.validation_threshold,
            trainer_command=self.trainer_command,
        )

    async def _serve(self, orchestrator: local_orch.LocalOrchestrator) -> None:
        for served in self.parts.tasks.values():
            await orchestrator.load_active(served.name)
            warm_up = getattr(served.evaluator, "warm_up", None)
            if warm_up is not None:  # e.g. the MiniLM model: load it off the request path
                self._background.add(asyncio.get_running_loop().create_task(warm_up()))
        self.parts.writer.start()
        self.pruner = retention.start(
            self.parts.opened(), self.config.store, self._background,
            on_pruned=self.parts.metrics.record_pruned,
        )  # fmt: skip
        await self.parts.alerts.start()
        for served in self.parts.tasks.values():
            self.control.write_events(served)  # e.g. a run interrupted by the restart
            if served.engine.state.interrupted:
                self.control.maybe_train(served)  # it runs again now, not after a new batch

    async def _start_budget(self) -> None:
        """The shared budget on the store; what a crash left unbooked is booked first.

        The spend journal (lines the store refused after payment) is replayed at
        exact cost, then the reservations this gateway held before it restarted,
        and any whose lease expired, are booked at their worst case.
        """
        parts, store = self.parts, self.parts.opened()
        journal = SpendJournal(journal_path(self.config))
        parts.budget = spending.SharedBudget(self.config, store, writer=parts.writer)
        parts.settler = settling.Settler(parts.budget, parts.writer, store, journal)
        replayed = await asyncio.to_thread(journal.replay, store)
        now = datetime.now(UTC)
        recovered = await parts.budget.recover(now)
        if replayed or recovered:
            log.warning(
                "budget: %d journaled spend lines replayed, %d unsettled reservations booked "
                "at their worst case (%.6f)",
                replayed, len(recovered), sum(r.amount for r in recovered),
            )  # fmt: skip
        await parts.budget.refresh(now)

    async def close(self) -> None:
        if not self._started:
            return
        parts = self.parts
        await parts.settler.drain()
        self._started = False
        for job in self._background:
            job.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        for served in parts.tasks.values():
            if served.training is not None and not served.training.done():
                served.training.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await served.training
        await self.control.wait_for_canaries()
        for served in parts.tasks.values():
            if served.canary is not None:  # a canary still running resumes at the next start
                await served.canary.student.aclose()
        if self.admin.orchestrator is not None:
            await self.admin.orchestrator.aclose()
        await parts.writer.close()
        await parts.budget.close()
        await parts.alerts.stop(drain_timeout_s=2.0)
        for served in parts.tasks.values():
            if served.student is not None:
                await served.student.aclose()
            if served.evaluator is not None:
                await served.evaluator.aclose()
        if parts.teachers is not None:
            await parts.teachers.aclose()
        if parts.store is not None:  # closed, but the reference stays for the caller
            await asyncio.to_thread(parts.store.close)
        if self.tracing is not None:  # its last export blocks: off the event loop
            await asyncio.to_thread(self.tracing.close)
            self.tracing = None

    # -- what callers ask (each handed to the part that owns it) -------------------------------

    def check_task(self, name: str) -> ServedTask:
        return self.pipeline.task(name)

    async def run(self, task: str, task_input: object, meta: Meta = NO_META) -> Result:
        """Answer one request (:mod:`apprentice.gateway.pipeline`)."""
        return await self.pipeline.run(task, task_input, meta)

    def engine_state(self, task: str) -> TaskEngine:
        return self.parts.tasks[task].engine

    def training_in_progress(self, task: str) -> bool:
        return self.parts.tasks[task].training_in_progress()

    # The read side and the seam's version verbs (Admin), the engine hooks (TaskControl):
    # the HTTP API, the CLI and the facade call them here by their names.

    async def flush(self) -> None:
        await self.admin.flush()

    def task_summaries(self) -> list[dict[str, Any]]:
        return self.admin.task_summaries()

    async def status(self, task: str) -> dict[str, Any]:
        return await self.admin.status(task)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        return await self.admin.readiness(self._started)

    def metrics_exposition(self) -> tuple[bytes, str]:
        return self.admin.metrics_exposition()

    async def export_dataset(self, task: str, split: str, fmt: str) -> list[str]:
        return await self.admin.export_dataset(task, split, fmt)

    async def versions(self, task: str) -> tuple[list[VersionInfo], str | None]:
        return await self.admin.versions(task)

    async def register_version(
        self, task: str, path: str, metrics: dict[str, Any], version: str | None
    ) -> VersionInfo:
        return await self.admin.register_version(task, path, metrics, version)

    async def validate_version(self, task: str, version: str) -> ValidationResult:
        return await self.admin.validate_version(task, version)

    async def promote(self, task: str, version: str) -> str:
        return await self.admin.promote(task, version)

    async def rollback(self, task: str) -> str:
        return await self.admin.rollback(task)

    async def set_paused(self, task: str, paused: bool) -> None:
        await self.control.set_paused(task, paused)

    async def training_started(self, task: str) -> int | None:
        return await self.control.training_started(task)

    async def training_finished(self, task: str, ok: bool, reason: str | None) -> None:
        await self.control.training_finished(task, ok, reason)

    async def version_promoted(self, task: str, version: str) -> None:
        await self.control.version_promoted(task, version)

    def coaching(self, task: str) -> bool:
        return self.control.coaching(task)

    async def training_data(self, task: str) -> TrainingData:
        return await self.control.training_data(task)

    async def version_registered(self, task: str, version: str) -> None:
        await self.control.version_registered(task, version)

    def training_due_or_running(self, task: str) -> bool:
        return self.control.training_due_or_running(task)

    async def wait_for_training_idle(self, task: str | None = None) -> None:
        await self.control.wait_for_training_idle(task)
