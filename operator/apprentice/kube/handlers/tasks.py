"""DistilledTask: apply the children on create/update/resume; poll the gateway on a timer.

The timer is leader-safe through kopf peering: a paused replica runs no handler at all.
When the engine says training is due and no TrainingJob is running, the timer creates
one (named after the next version), and the TrainingJob handlers take it from there.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import kopf
from pydantic import ValidationError

from apprentice.kube import GROUP, TASK_LABEL, VERSION, metrics, reconcile
from apprentice.kube import client as k8s
from apprentice.kube.apply import apply
from apprentice.kube.gateway_client import GatewayError
from apprentice.kube.handlers import emit, now, spec_problem, translated
from apprentice.kube.manifests import TaskObject, build_children, get_admin_secret
from apprentice.kube.models import TrainingJobState
from apprentice.kube.runtime import OperatorSettings, Runtime, runtime_of
from apprentice.kube.training_manifests import get_training_job

__all__ = ["register"]

_TERMINAL = {TrainingJobState.succeeded.value, TrainingJobState.failed.value}


async def reconcile_task(
    body: Any, meta: Any, status: Any, patch: Any, memo: Any, **_: Any
) -> None:
    """Apply ConfigMap, PVC, Deployment and Service; a no-op when nothing changed."""
    rt = runtime_of(memo)
    generation = meta.get("generation")
    conditions = list(status.get("conditions") or [])
    try:
        task = rt.task(body)
    except ValidationError as exc:
        message = spec_problem(exc)
        patch.status["conditions"] = reconcile.set_condition(
            conditions, "Stalled", True, "InvalidSpec", message, generation=generation, now=now()
        )
        emit(body, "Warning", "InvalidSpec", message)
        metrics.RECONCILES.labels("invalid").inc()
        raise kopf.PermanentError(message) from exc
    with translated(rt.settings.retry_delay_s):
        if task.spec.gateway.admin_token_secret_ref is None:
            await apply(rt.kube, get_admin_secret(task, secrets.token_urlsafe(32)))
        outcomes = {
            f"{m['kind']}/{m['metadata']['name']}": await apply(rt.kube, m)
            for m in build_children(task)
        }
    changed = sorted(k for k, v in outcomes.items() if v != "unchanged")
    metrics.RECONCILES.labels("applied" if changed else "unchanged").inc()
    if changed:
        emit(body, "Normal", "Applied", ", ".join(f"{outcomes[k]} {k}" for k in changed))
    conds = reconcile.set_condition(
        conditions, "Stalled", False, "Reconciled", "", generation=generation, now=now()
    )
    if reconcile.condition(conds, "Ready") is None or changed:
        conds = reconcile.set_condition(
            conds,
            "Reconciling",
            True,
            "Applied",
            "waiting for the gateway to answer",
            generation=generation,
            now=now(),
        )
        if reconcile.condition(conds, "Ready") is None:
            conds = reconcile.set_condition(
                conds,
                "Ready",
                False,
                "Starting",
                "the inference pod is starting",
                generation=generation,
                now=now(),
            )
    patch.status["conditions"] = conds
    patch.status["observedGeneration"] = generation
    patch.status["endpoint"] = task.endpoint


async def poll_gateway(
    body: Any, meta: Any, status: Any, patch: Any, memo: Any, logger: Any, **_: Any
) -> None:
    """Read the gateway's state into status; start training when the engine asks."""
    rt = runtime_of(memo)
    try:
        task = rt.task(body)
    except ValidationError:
        return  # the reconcile handler reports Stalled
    generation = meta.get("generation")
    conditions = list(status.get("conditions") or [])
    with translated(rt.settings.retry_delay_s):
        token = await rt.admin_token(task)
        async with rt.gateway(task, token) as gateway:
            try:
                state = await gateway.state()
            except GatewayError as exc:
                metrics.GATEWAY_POLLS.labels("unavailable").inc()
                conds = reconcile.set_condition(
                    conditions,
                    "Ready",
                    False,
                    "GatewayUnavailable",
                    str(exc),
                    generation=generation,
                    now=now(),
                )
                patch.status["conditions"] = conds
                logger.info("gateway of %s not answering yet: %s", task.name, exc)
                return
            metrics.GATEWAY_POLLS.labels("ok").inc()
            running = await _training_running(rt, task)
            if state.get("training_due") and not running and not state.get("training_in_progress"):
                try:
                    await _start_training(rt, task, body, gateway, state)
                    running = True
                except GatewayError as exc:  # status still gets updated; retried next poll
                    emit(body, "Warning", "TrainingNotStarted", str(exc))
    for type_, reason, message in reconcile.events_for(status, state):
        emit(body, type_, reason, message)
    fields = reconcile.status_from_state(state)
    fields["lastAlarmIndex"] = reconcile.last_alarm_index(state, status.get("lastAlarmIndex"))
    fields["lastPollTime"] = reconcile.rfc3339(now())
    fields["endpoint"] = task.endpoint
    fields["conditions"] = reconcile.state_conditions(
        conditions,
        state,
        generation=generation,
        training_running=running,
        now=now(),
        training_failure=status.get("lastTrainingFailure"),
    )
    patch.status.update(fields)


async def _training_running(rt: Runtime, task: TaskObject) -> bool:
    jobs = await rt.kube.list(k8s.TRAINING_JOBS, task.namespace, {TASK_LABEL: task.name})
    return any((j.get("status") or {}).get("state") not in _TERMINAL for j in jobs)


async def _start_training(
    rt: Runtime, task: TaskObject, body: Any, gateway: Any, state: dict[str, Any]
) -> None:
    jobs = await rt.kube.list(k8s.TRAINING_JOBS, task.namespace, {TASK_LABEL: task.name})
    known = [j["spec"]["version"] for j in jobs]
    with contextlib.suppress(GatewayError):  # the TrainingJobs alone still give a fresh name
        known += [v["version"] for v in (await gateway.versions()).get("versions", [])]
    version = reconcile.next_version(known)
    examples = (state.get("examples") or {}).get("train")
    reason = state.get("training_reason") or "training due"
    # The gateway hears first: if it refuses, no Job runs that it would not expect.
    await gateway.training_started()
    try:
        await rt.kube.create(
            task.namespace, get_training_job(task, version, reason=reason, examples=examples)
        )
    except k8s.KubeError as exc:
        await gateway.training_finished(False, f"TrainingJob not created: {exc}")
        raise
    metrics.TRAINING_RUNS.labels("started").inc()
    emit(body, "Normal", "TrainingStarted", f"{version}: {reason} ({examples} examples)")


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register the DistilledTask handlers on ``registry``."""
    res = (GROUP, VERSION, "distilledtasks")
    for on in (kopf.on.create, kopf.on.update, kopf.on.resume):
        on(*res, registry=registry, id="reconcile")(reconcile_task)
    kopf.timer(
        *res,
        registry=registry,
        id="poll",
        interval=settings.poll_interval_s,
        initial_delay=min(5.0, settings.poll_interval_s),
    )(poll_gateway)
