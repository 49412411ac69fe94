"""LocalOrchestrator: the embedded default acts on the engine's training decisions itself.

One run, from "training is due" to a served adapter::

    hooks.training_started -> hooks.training_data: the gateway selects the run's data
      (covered snapshot, held-out firewall, recency, coaching weights) -> spec.json
      -> ``python -m apprentice.training.run --spec spec.json``  (asyncio subprocess;
         the request path never waits on it)
      -> adapter + metadata.json in model_dir/<task>/v<N>/ -> store: candidate
         (hooks.version_registered: the covered examples are marked trained)
      -> validate: a *second* student instance loads the candidate (never the serving
         one) and answers the held-out split; the task's evaluator scores it against
         the teacher's answers; the current version is scored on the same examples
      -> promote only if score >= threshold AND score >= current's score,
         else rejected with the reason (alert) and never served; with the task's
         canary on, tried on live traffic first (orchestration/canary.py)
      -> the serving student loads it; older versions stay on disk for rollback

The threshold is the task's ``phase2_to_phase3`` unless ``validation_threshold``
is given. With ``gateway.orchestrator: operator`` the same object serves the
admin endpoints (register, validate, promote, roll back) but never trains.

The orchestrator knows the gateway only through
:class:`~apprentice.orchestration.seam.GatewayHooks`, the in-process form of the
admin API: the seam both run modes use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from apprentice.config import ApprenticeConfig, TaskConfig
from apprentice.evaluators.base import Evaluator
from apprentice.orchestration import canary as canary_mod
from apprentice.orchestration import datasets
from apprentice.orchestration import trainer as trainer_mod
from apprentice.orchestration.seam import (
    GatewayHooks,
    OrchestrationError,
    ValidationResult,
    VersionInfo,
)
from apprentice.reporting import alerts as alerts_mod
from apprentice.reporting.metrics import Metrics
from apprentice.store import base as store_base
from apprentice.store import records
from apprentice.students import base as student_base
from apprentice.students import build_student
from apprentice.training import recency
from apprentice.training.backends import base as training_base
from apprentice.vocabulary import VersionState

log = logging.getLogger(__name__)

#: Held-out examples scored per validation (the most recent); bounds validation time.
MAX_VALIDATION_EXAMPLES = 200
_UNJUDGED = (VersionState.candidate, VersionState.validating)  # states that may validate

P = ParamSpec("P")
R = TypeVar("R")


class LocalOrchestrator:
    """The seam's embedded implementation (see the module docstring)."""

    def __init__(
        self,
        cfg: ApprenticeConfig,
        store: store_base.Store,
        *,
        hooks: GatewayHooks,
        students: Mapping[str, student_base.Student | None],
        evaluators: Mapping[str, Evaluator | None],
        alerts: alerts_mod.Alerter | None = None,
        metrics: Metrics | None = None,
        student_factory: Callable[[TaskConfig], student_base.Student] | None = None,
        validation_threshold: float | None = None,
        trainer_command: Sequence[str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.hooks = hooks
        self.students = dict(students)
        self.evaluators = dict(evaluators)
        self.alerts = alerts
        self.metrics = metrics
        self.student_factory = student_factory or (
            lambda task: build_student(cfg.local, task=task.name)
        )
        self.validation_threshold = validation_threshold
        # The trainer entry point; ``--spec FILE`` is appended. Tests swap in a stand-in.
        self.trainer_command = list(
            trainer_command or (sys.executable, "-m", "apprentice.training.run")
        )
        self.model_dir = Path(cfg.local.model_dir)
        self.trainer = trainer_mod.TrainerProcesses()

    # -- helpers ---------------------------------------------------------------------------

    async def _db(self, fn: Callable[P, R], *args: P.args, **kw: P.kwargs) -> R:
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        except store_base.UnknownVersionError as exc:
            raise OrchestrationError(str(exc), kind="not_found") from exc
        except (store_base.InvalidTransitionError, store_base.VersionExistsError) as exc:
            raise OrchestrationError(str(exc), kind="conflict") from exc

    async def _next_version(self, task: str) -> str:
        return await self._db(self.store.next_version_name, task)

    def _threshold(self, task: str) -> float:
        if self.validation_threshold is not None:
            return self.validation_threshold
        return self.cfg.task(task).confidence_thresholds.phase2_to_phase3

    async def load_active(self, task: str) -> None:
        """Load the promoted version into the serving student (start-up after a restart)."""
        student = self.students.get(task)
        active = await self._db(self.store.active_version, task)
        if student is None or active is None:
            return
        try:
            await student.load_version(student_base.VersionRef(active.version, active.path))
        except student_base.StudentError as exc:
            log.error("task %s: cannot load active version %s: %s", task, active.version, exc)
        await canary_mod.resume(self, task)

    # -- the seam --------------------------------------------------------------------------

    async def versions(self, task: str) -> tuple[list[VersionInfo], str | None]:
        found = await self._db(self.store.versions, task)
        active = next((v.version for v in found if v.state == VersionState.promoted), None)
        return [VersionInfo.of(v) for v in found], active

    async def register_version(
        self, task: str, path: str, metrics: dict[str, Any], version: str | None = None
    ) -> VersionInfo:
        if version is not None:
            try:
                records.version_number(version)
            except ValueError as exc:
                raise OrchestrationError(str(exc), kind="bad_request") from None
        name = version if version is not None else await self._next_version(task)
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError, TypeError):
            meta = training_base.TrainingResult.read_metadata(Path(path)).to_json()
        now = datetime.now(UTC)
        rec = records.ModelVersionRecord(
            task=task,
            version=name,
            state="candidate",
            path=str(path),
            base_model=meta.get("base_model") or self.cfg.local.base_model,
            created_at=now,
            updated_at=now,
            metrics={**meta, **metrics},
        )
        try:
            added = await asyncio.to_thread(self.store.add_version, rec)
        except store_base.VersionExistsError:
            # A retried registration (the operator reconciles) is answered, not refused.
            existing = await self._db(self.store.version, task, name)
            if Path(existing.path) == Path(path):
                return VersionInfo.of(existing)
            raise OrchestrationError(
                f"{task} {name} already exists with adapter {existing.path}; pick another "
                "version name or omit it"
            ) from None
        await self.hooks.version_registered(task, name)  # marks the run's covered examples
        return VersionInfo.of(added)

    async def _score(
        self, task: str, ref: student_base.VersionRef, heldout: list[records.ExampleRecord]
    ) -> float:
        """Mean agreement of ``ref`` on ``heldout``, from a private student instance."""
        evaluator = self.evaluators.get(task)
        if evaluator is None:
            raise OrchestrationError("validation needs a running gateway (no evaluator loaded)")
        task_cfg = self.cfg.task(task)
        student = self.student_factory(task_cfg)
        try:
            await student.load_version(ref)
            total = 0.0
            for example in heldout:
                try:
                    answer = await student.generate(task_cfg, example.input)
                    out = answer.output
                except student_base.StudentUnavailable:
                    out = None
                evaluation = await evaluator.evaluate(
                    task_cfg, out, example.output, task_input=example.input
                )
                total += evaluation.score
            return total / len(heldout)
        finally:
            await student.aclose()

    async def validate(self, task: str, version: str) -> ValidationResult:
        rec = await self._db(self.store.version, task, version)
        if rec.state not in _UNJUDGED:
            raise OrchestrationError(f"{task} {version} is {rec.state}; only candidates validate")
        heldout = await self._heldout(task)
        if not heldout:
            return await self._reject(task, version, None, "no held-out examples to score on")
        await self._db(self.store.update_version, task, version, state="validating")
        try:
            score = await self._score(task, student_base.VersionRef(version, rec.path), heldout)
        except (student_base.StudentError, OSError) as exc:
            return await self._reject(task, version, None, f"could not load or run: {exc}")
        why = await self._why_not(task, score, heldout)
        if why is not None:
            return await self._reject(task, version, score, why)
        update = self.store.update_version
        await self._db(update, task, version, state="candidate", heldout_score=score, reason=None)
        return ValidationResult(version, score, True, None)

    async def _heldout(self, task: str) -> list[records.ExampleRecord]:
        """The examples a version is judged on: what the teacher says now (retired
        answers out, recent ones only once there are enough of them), the latest
        :data:`MAX_VALIDATION_EXAMPLES`."""
        every = await self._db(self.store.examples, task)
        heldout = [e for e in every if e.split == "heldout"]
        since = await self._db(datasets.last_change, self.store, task)
        return recency.heldout(heldout, since, evidence=every)[-MAX_VALIDATION_EXAMPLES:]

    async def _why_not(
        self, task: str, score: float, heldout: list[records.ExampleRecord]
    ) -> str | None:
        """Why a version scoring ``score`` may not be promoted, or None when it may:
        under the threshold, or losing to the active version on the same examples."""
        threshold = self._threshold(task)
        if score < threshold:
            return (
                f"held-out score {score:.3f} is below the threshold "
                f"{threshold:.3f} ({len(heldout)} examples)"
            )
        current = await self._db(self.store.active_version, task)
        if current is None:
            return None
        try:
            ref = student_base.VersionRef(current.version, current.path)
            current_score = await self._score(task, ref, heldout)
        except (student_base.StudentError, OSError):
            return None
        if score < current_score:
            return (
                f"held-out score {score:.3f} loses to the active "
                f"{current.version} ({current_score:.3f}) on the same {len(heldout)} examples"
            )
        return None

    async def _reject(
        self, task: str, version: str, score: float | None, reason: str
    ) -> ValidationResult:
        update = self.store.update_version
        await self._db(update, task, version, state="rejected", heldout_score=score, reason=reason)
        if self.alerts is not None:
            self.alerts.emit(alerts_mod.rejected_version(task, version, reason, score))
        log.warning("task %s: version %s rejected: %s", task, version, reason)
        await self.unload_candidate(task, version)
        return ValidationResult(version, score, False, reason)

    async def unload_candidate(self, task: str, version: str) -> None:
        """Free a rejected candidate's slot on a shared student server (vLLM's max_loras).

        Only rejected candidates: the active version must never be unloaded behind the
        serving instance's back, and a passing candidate is about to be served.
        """
        if self.evaluators.get(task) is None:
            return  # offline (CLI): nothing was loaded
        student = self.student_factory(self.cfg.task(task))
        try:
            await student.unload_version(version)
        except student_base.StudentError as exc:
            log.info("task %s: could not unload rejected %s: %s", task, version, exc)
        finally:
            await student.aclose()

    async def promote(self, task: str, version: str, *, canary: bool = True) -> str:
        """Serve ``version``; with the task's canary on (and ``canary``), try it on live
        traffic first (:mod:`apprentice.orchestration.canary`) and return at once."""
        rec = await self._db(self.store.version, task, version)
        if rec.state == VersionState.rejected:
            raise OrchestrationError(
                f"{task} {version} was rejected ({rec.reason}); it is never served"
            )
        if rec.state in _UNJUDGED and rec.heldout_score is None:
            raise OrchestrationError(
                f"{task} {version} has not passed validation; POST .../validate first"
            )
        if rec.state == VersionState.promoted:
            return version
        if canary:
            try:
                if await canary_mod.start(self, task, rec):
                    return version
            except student_base.StudentError as exc:
                raise OrchestrationError(f"cannot load {task} {version}: {exc}") from exc
        student = self.students.get(task)
        if student is not None:
            try:
                await student.load_version(student_base.VersionRef(version, rec.path))
            except student_base.StudentError as exc:
                raise OrchestrationError(f"cannot load {task} {version}: {exc}") from exc
        await self._db(self.store.update_version, task, version, state="promoted")
        await self.hooks.version_promoted(task, version)
        return version

    async def rollback(self, task: str) -> str:
        previous = await self._db(self.store.rollback, task)
        if previous is None:
            raise OrchestrationError(f"{task} has no previously promoted version to roll back to")
        student = self.students.get(task)
        if student is not None:
            await student.load_version(student_base.VersionRef(previous.version, previous.path))
        await self.hooks.version_promoted(task, previous.version)
        return str(previous.version)

    # -- training --------------------------------------------------------------------------

    async def train(self, task: str, reason: str | None) -> VersionInfo | None:
        """One whole run (train, register, validate, promote or reject); never raises."""
        covered = await self.hooks.training_started(task)
        ok, why = False, "failed"  # type: bool, str | None
        try:
            info = await self._train(task, reason, covered)
            ok = info is not None
            why = None if info is None else info.state
            return info
        except asyncio.CancelledError:
            why = "cancelled"
            raise
        except Exception as exc:
            log.exception("task %s: training run failed", task)
            why = f"training failed: {exc}"
            return None
        finally:
            with contextlib.suppress(Exception):
                await self.hooks.training_finished(task, ok, why)

    async def _train(
        self, task: str, reason: str | None, covered: int | None
    ) -> VersionInfo | None:
        version = await self._next_version(task)
        out_dir = (self.model_dir / task / version).resolve()
        run_dir = (self.model_dir / task / ".runs" / version).resolve()
        # A directory without a store row is what a killed run left behind: start clean.
        for stale in (out_dir, run_dir):
            if stale.exists():
                await asyncio.to_thread(shutil.rmtree, stale)
        run_dir.mkdir(parents=True, exist_ok=True)
        # The gateway selects the data (the covered snapshot, recency, coaching weights),
        # exactly as it does for the Kubernetes trainer Job.
        data = await self.hooks.training_data(task)
        data_path = data.selection.dataset.write_jsonl(run_dir / "train.jsonl")
        # A retrain starts from the active version's adapter (fewer passes): the gateway
        # names it with the data, as it does for the Kubernetes trainer Job.
        spec = datasets.training_spec(
            self.cfg.local, data_path, out_dir, init_adapter=data.init_adapter
        )
        spec_path = spec.write(run_dir / "spec.json")
        started = time.monotonic()
        code = await self._run_trainer(spec_path, run_dir / "train.log")
        if code != 0:
            if self.metrics is not None:
                self.metrics.record_training_run(task, "failed")
            tail = (run_dir / "train.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"trainer exited with {code}; log tail:\n{tail}")
        await self.register_version(
            task,
            str(out_dir),
            {"reason": reason, "wall_s": time.monotonic() - started, "examples_seen": covered},
        )
        result = await self.validate(task, version)
        if result.passed:
            await self.promote(task, version)
        found = await self._db(self.store.version, task, version)
        if self.metrics is not None:  # a canary's verdict comes later (events, alert)
            canary = result.passed and "canary" in found.metrics
            outcome = "canary" if canary else "promoted" if result.passed else "rejected"
            self.metrics.record_training_run(task, outcome)
        return VersionInfo.of(found)

    async def _run_trainer(self, spec_path: Path, log_path: Path) -> int:
        return await self.trainer.run([*self.trainer_command, "--spec", str(spec_path)], log_path)

    async def aclose(self) -> None:
        """Stop running trainers (their partial output is never registered)."""
        self.trainer.kill_all()
