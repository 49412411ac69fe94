"""DistilledTask: apply the children on every change and on a timer; one status writer.

Level-triggered: the ``sync`` timer (every ``poll_interval_s``, 30 s by default) re-applies
every child with server-side apply, so a deleted or hand-edited Deployment, Service or
ConfigMap is restored within one interval; create/update/resume apply at once too.
Server-side apply makes a re-apply of unchanged children a no-op on the server.

The timer is the only writer of the DistilledTask status: it validates the spec, applies
the children, reads the gateway's state and the task's TrainingJobs/ModelVersions, and
patches only what changed (an idle task writes nothing). It also starts training when the
engine says it is due, unless a run is in progress or earlier failures hold it back
(exponential back-off, bounded: see :mod:`apprentice.kube.task_status`).

The timer is leader-safe through kopf peering: a paused replica runs no handler at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from typing import Any

import kopf
from pydantic import ValidationError

from apprentice.kube import GROUP, TASK_LABEL, VERSION, metrics, reconcile, task_status
from apprentice.kube import client as k8s
from apprentice.kube.apply import apply
from apprentice.kube.gateway_client import GatewayClient, GatewayError
from apprentice.kube.handlers import KubeObject, emit, now, spec_problem, training, translated
from apprentice.kube.manifests import TaskObject, build_children, get_admin_secret
from apprentice.kube.objects import InvalidTaskName
from apprentice.kube.runtime import OperatorContext, OperatorSettings, context_of
from apprentice.kube.training_manifests import get_training_job

__all__ = ["register"]


async def apply_children(ctx: OperatorContext, task: TaskObject, body: KubeObject) -> list[str]:
    """Create the admin Secret (when generated) and server-side apply every child; returns
    the changed ones. The Secret is only ever created (a 409 means it exists): the operator
    neither reads nor patches Secrets (a PATCH would return the Secret's data)."""
    outcomes: dict[str, str] = {}
    if task.spec.gateway.admin_token_secret_ref is None:
        token = task.generated_token or secrets.token_urlsafe(32)
        with contextlib.suppress(k8s.Conflict):
            await ctx.kube.create(task.namespace, get_admin_secret(task, token))
            outcomes["Secret/" + task.admin_secret.name] = "applied"
    for manifest in build_children(task, task.generated_token or ""):
        key = f"{manifest['kind']}/{manifest['metadata']['name']}"
        outcomes[key] = await apply(ctx.kube, manifest, ctx.applied)
    changed = sorted(k for k, v in outcomes.items() if v != "unchanged")
    metrics.RECONCILES.labels("applied" if changed else "unchanged").inc()
    if changed:
        emit(body, "Normal", "Applied", "applied " + ", ".join(changed))
    return changed


async def reconcile_task(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """Apply the children at once on create/update/resume (the timer writes the status)."""
    ctx = context_of(memo)
    try:
        task = ctx.task(body)
    except (ValidationError, InvalidTaskName) as exc:
        message = spec_problem(exc)
        emit(body, "Warning", "InvalidSpec", message)
        metrics.RECONCILES.labels("invalid").inc()
        raise kopf.PermanentError(message) from exc
    with translated(ctx.settings.retry_delay(retry)):
        await apply_children(ctx, task, body)


async def sync_task(
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    logger: kopf.Logger,
    retry: int = 0,  # kopf passes it to timers too, though its TimerFn does not declare it
    **_: Any,
) -> None:
    """Validate, re-apply, read the gateway and the training objects, write what changed."""
    ctx = context_of(memo)
    generation = meta.get("generation")
    old = dict(status or {})

    def write(**parts: Any) -> None:
        desired = task_status.task_status(old, generation=generation, now=now(), **parts)
        patch.status.update(task_status.status_patch(old, desired))

    try:
        task = ctx.task(body)
    except (ValidationError, InvalidTaskName) as exc:
        write(endpoint=None, problem=spec_problem(exc))
        return
    refused = await _reapply(ctx, task, body, old, retry)
    if refused is not None:
        write(endpoint=task.endpoint, problem=refused, problem_reason="ApplyFailed")
        return
    with translated(ctx.settings.retry_delay(retry)):
        jobs = await ctx.kube.list(k8s.TRAINING_JOBS, task.namespace, {TASK_LABEL: task.name})
        jobs = [await training.refresh(ctx, job) for job in jobs]
        versions = await ctx.kube.list(k8s.MODEL_VERSIONS, task.namespace, {TASK_LABEL: task.name})
        view = task_status.training_view(jobs, versions)
        token = await _admin_token(ctx, task, logger)
        async with ctx.gateway(task, token) as gateway:
            try:
                state = await gateway.state()
            except GatewayError as exc:
                metrics.GATEWAY_POLLS.labels("unavailable").inc()
                logger.info("gateway of %s not answering yet: %s", task.name, exc)
                write(endpoint=task.endpoint, gateway_error=str(exc))
                return
            metrics.GATEWAY_POLLS.labels("ok").inc()
            blocked = view.blocked(now(), ctx.settings.training_backoff)
            due = state.get("training_due") and not state.get("training_in_progress")
            if due and blocked is None:
                try:
                    await _start_training(ctx, task, body, gateway, state, view.versions)
                    view = dataclasses.replace(view, running=True)
                except GatewayError as exc:  # status still gets updated; retried next poll
                    emit(body, "Warning", "TrainingNotStarted", str(exc))
    for type_, reason, message in reconcile.events_for(old, state):
        emit(body, type_, reason, message)
    write(endpoint=task.endpoint, state=state, training=view, blocked=blocked if due else None)
    index = reconcile.last_alarm_index(state, old.get("lastAlarmIndex"))
    if index != old.get("lastAlarmIndex"):
        patch.status["lastAlarmIndex"] = index


async def _reapply(
    ctx: OperatorContext, task: TaskObject, body: kopf.Body, old: dict[str, Any], retry: int
) -> str | None:
    """Re-apply the children; a refusal (e.g. 422 or 403) is returned, evented once per new
    problem (not per poll) and retried next interval; an unavailable server retries sooner."""
    try:
        await apply_children(ctx, task, body)
    except (k8s.KubeUnavailable, k8s.Conflict) as exc:
        raise kopf.TemporaryError(str(exc), delay=ctx.settings.retry_delay(retry)) from exc
    except k8s.KubeError as exc:
        stalled = reconcile.condition(old.get("conditions") or [], "Stalled") or {}
        if stalled.get("message") != str(exc):
            emit(body, "Warning", "ApplyFailed", str(exc))
        return str(exc)
    return None


async def _admin_token(ctx: OperatorContext, task: TaskObject, logger: kopf.Logger) -> str | None:
    """The admin token; a Secret the operator may not read (403) costs only admin calls."""
    try:
        return await ctx.admin_token(task)
    except (k8s.KubeUnavailable, k8s.Conflict):
        raise
    except k8s.KubeError as exc:
        logger.warning(
            "admin token of %s not readable (%s): set APPRENTICE_ADMIN_TOKEN_KEY, or grant get "
            "on the Secret that gateway.adminTokenSecretRef names",
            task.name,
            exc.reason,
        )
        return None


async def _start_training(
    ctx: OperatorContext,
    task: TaskObject,
    body: kopf.Body,
    gateway: GatewayClient,
    state: dict[str, Any],
    known: list[str],
) -> None:
    known = list(known)
    with contextlib.suppress(GatewayError):  # the TrainingJobs alone still give a fresh name
        known += [v["version"] for v in (await gateway.versions()).get("versions", [])]
    version = reconcile.next_version(known)
    examples = (state.get("examples") or {}).get("train")
    reason = state.get("training_reason") or "training due"
    # The gateway hears first: if it refuses, no Job runs that it would not expect.
    await gateway.training_started()
    try:
        await ctx.kube.create(
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
    )(sync_task)
