"""TrainingJob: create its batch/v1 Job; the task's timer mirrors the Job and finishes the run.

On success a ModelVersion is created (the version handlers validate and promote it); on
failure the TrainingJob is Failed and the version that was serving keeps serving. These
handlers write only TrainingJob status (with kstatus conditions and observedGeneration)
and Events; the DistilledTask's timer reads the TrainingJobs to derive ``Training`` and
``Degraded`` (one writer per status).

A trainer pod that the scheduler cannot place (no free GPU, or no room on the node that
holds the task's ReadWriteOnce volume) leaves the TrainingJob Pending with reason
``WaitingForGPU``/``WaitingForNode`` and the scheduler's message (:func:`check_waiting`,
run by the task's timer): not a failure, nothing is re-created; the Job's
``activeDeadlineSeconds`` bounds the wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from apprentice.kube import GROUP, TRAINING_JOB_LABEL, VERSION, metrics, reconcile, task_status
from apprentice.kube import client as k8s
from apprentice.kube.apply import apply
from apprentice.kube.gateway_client import GatewayError
from apprentice.kube.handlers import emit, namespace_of, now, translated
from apprentice.kube.models import TrainingJobState
from apprentice.kube.objects import TaskObject, labels
from apprentice.kube.runtime import OperatorContext, OperatorSettings, context_of
from apprentice.kube.training_manifests import get_job, get_model_version

__all__ = ["check_waiting", "refresh", "register"]

Obj = dict[str, Any]
_TERMINAL = {TrainingJobState.succeeded.value, TrainingJobState.failed.value}


async def _task_body(ctx: OperatorContext, namespace: str, name: str) -> dict[str, Any]:
    body = await ctx.kube.get(k8s.DISTILLED_TASKS, namespace, name)
    if body is None:
        raise kopf.PermanentError(f"DistilledTask {namespace}/{name} does not exist")
    return body


def _tj_status(tj: Mapping[str, Any], update: Obj, reason: str, message: str = "") -> Obj:
    """``update`` plus the conditions and observedGeneration that go with its state."""
    old = tj.get("status") or {}
    state = update.get("state") or old.get("state") or TrainingJobState.pending.value
    generation = (tj.get("metadata") or {}).get("generation")
    conditions = task_status.training_job_conditions(
        old.get("conditions") or [], state, reason, message, generation=generation, now=now()
    )
    return {**update, "conditions": conditions, "observedGeneration": generation}


async def start_job(
    body: kopf.Body,
    spec: kopf.Spec,
    meta: kopf.Meta,
    status: kopf.Status,
    namespace: str | None,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    **_: Any,
) -> None:
    """Create the Job of a new (or resumed, unfinished) TrainingJob."""
    if status.get("state") in _TERMINAL:
        return
    ctx = context_of(memo)
    with translated(ctx.settings.retry_delay(retry)):
        task = ctx.task(await _task_body(ctx, namespace_of(namespace), spec["taskRef"]))
        job = get_job(
            task, meta["name"], meta.get("uid", ""), spec["version"], ctx.gateway_url(task)
        )
        await apply(ctx.kube, job)  # created once: a Job's template is immutable
    _adopt(task, meta, patch)
    update: Obj = {"jobName": job["metadata"]["name"]}
    if not status.get("state"):
        update["state"] = TrainingJobState.pending.value
        update["startTime"] = reconcile.rfc3339(now())
    patch.status.update(_tj_status(body, update, "JobCreated", "the trainer Job exists"))


def _adopt(task: TaskObject, meta: kopf.Meta, patch: kopf.Patch) -> None:
    """A TrainingJob made by hand (``spec.taskRef`` only) gets the task's labels, as the
    operator's own have: the task's timer finds its TrainingJobs by label to mirror their
    Jobs. (Not an ownerReference: setting one needs ``delete`` on TrainingJobs, which the
    operator is not granted; whoever makes one by hand may set it.)"""
    have = meta.get("labels") or {}
    missing = {k: v for k, v in labels(task.name, "training").items() if have.get(k) != v}
    if missing:
        patch.metadata["labels"] = missing  # a merge patch: other labels stay


async def refresh(ctx: OperatorContext, tj: Obj) -> Obj:
    """Bring an unfinished TrainingJob up to date with its Job; returns it as it is now.

    The task's timer calls this every poll, so it is level-triggered and retried (a kopf
    event handler on Jobs would be neither, and would watch every Job in the cluster).
    """
    status = tj.get("status") or {}
    if status.get("state") in _TERMINAL or not status.get("jobName"):
        return tj  # finished, or start_job has not created the Job yet
    namespace, name = tj["metadata"]["namespace"], tj["metadata"]["name"]
    job = await ctx.kube.get(k8s.JOBS, namespace, status["jobName"])
    start = status.get("startTime") or reconcile.rfc3339(now())
    update: Obj = {"startTime": start, "duration": reconcile.format_duration(start, None, now())}
    if job is None:
        outcome, message = "failed", f"the trainer Job {status['jobName']} no longer exists"
    else:
        outcome, message = reconcile.job_outcome(job)
    if outcome == "pending":
        return await check_waiting(ctx, tj)
    if outcome == "running":
        if status.get("state") == TrainingJobState.running.value:
            return tj  # nothing new (the duration is written with the next change)
        update["state"] = TrainingJobState.running.value
        new = _tj_status(tj, update, "Running", "the trainer is running")
        await ctx.kube.patch(k8s.TRAINING_JOBS, namespace, name, {"status": new}, status=True)
        return {**tj, "status": {**status, **new}}
    if outcome == "failed" and job is not None:
        message = await _with_trainer_message(ctx, namespace, job, message)
    end = reconcile.rfc3339(now())
    update.update(
        completionTime=end, message=message, duration=reconcile.format_duration(start, end, now())
    )
    new = await _finish(ctx, tj, outcome == "succeeded", message, update)
    return {**tj, "status": {**status, **new}}


async def check_waiting(ctx: OperatorContext, tj: Obj) -> Obj:
    """A running TrainingJob whose trainer pod the scheduler cannot place waits (not a
    failure): state Pending, reason WaitingForGPU/WaitingForNode, one Event. Called by the
    task's timer with a server-side label selector, so no cluster-wide pod watch is needed.
    Returns the TrainingJob as it is now."""
    status = tj.get("status") or {}
    if status.get("state") in _TERMINAL:
        return tj
    namespace, name = tj["metadata"]["namespace"], tj["metadata"]["name"]
    pods = await ctx.kube.list(k8s.PODS, namespace, {TRAINING_JOB_LABEL: name})
    waiting = next((w for p in pods if (w := _unschedulable(p)) is not None), None)
    if waiting is None:
        return tj
    reason = "WaitingForGPU" if _mentions_gpu(waiting, ctx) else "WaitingForNode"
    text = f"the trainer pod cannot be scheduled yet: {waiting}"
    before = reconcile.condition(status.get("conditions") or [], "Reconciling")
    if before is not None and (before.get("reason"), before.get("message")) == (reason, text):
        return tj
    update = _tj_status(tj, {"state": TrainingJobState.pending.value}, reason, text)
    patched = await ctx.kube.patch(
        k8s.TRAINING_JOBS, namespace, name, {"status": update}, status=True
    )
    if before is None or before.get("reason") != reason:
        emit(tj, "Warning", reason, text)
    return patched or {**tj, "status": {**status, **update}}


def _unschedulable(pod: Mapping[str, Any]) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        scheduled = (cond.get("type"), cond.get("status"), cond.get("reason"))
        if scheduled == ("PodScheduled", "False", "Unschedulable"):
            return str(cond.get("message") or "Unschedulable")
    return None


def _mentions_gpu(message: str, ctx: OperatorContext) -> bool:
    return ctx.settings.defaults.gpu_resource in message or "gpu" in message.lower()


async def _with_trainer_message(
    ctx: OperatorContext, namespace: str, job: Obj, message: str
) -> str:
    """The Job's failure reason plus what the trainer wrote to its termination message."""
    pods = await ctx.kube.list(k8s.PODS, namespace, {"job-name": job["metadata"]["name"]})
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            said = ((status.get("state") or {}).get("terminated") or {}).get("message")
            if said:
                message = f"{message}; trainer: {said.strip()[-500:]}"
    return message


async def _finish(ctx: OperatorContext, tj: Obj, ok: bool, message: str, update: Obj) -> Obj:
    """Record the outcome on the TrainingJob first, then tell the gateway; the new status."""
    namespace, name = tj["metadata"]["namespace"], tj["metadata"]["name"]
    spec = tj["spec"]
    dt_body = await _task_body(ctx, namespace, spec["taskRef"])
    task = ctx.task(dt_body)
    if ok:
        mv = get_model_version(
            task, name, spec["version"], {"examples": spec.get("examples"), "trainingJob": name}
        )
        await apply(ctx.kube, mv)
        update.update(state=TrainingJobState.succeeded.value, modelVersion=mv["metadata"]["name"])
        status = _tj_status(tj, update, "Succeeded", message)
    else:
        update["state"] = TrainingJobState.failed.value
        status = _tj_status(tj, update, "TrainingFailed", message)
    await ctx.kube.patch(k8s.TRAINING_JOBS, namespace, name, {"status": status}, status=True)
    metrics.TRAINING_RUNS.labels("succeeded" if ok else "failed").inc()
    if ok:
        emit(dt_body, "Normal", "TrainingSucceeded", f"{spec['version']}: {message}")
        emit(tj, "Normal", "Succeeded", message)
    else:
        text = f"training {spec['version']} failed: {message}; the current version keeps serving"
        emit(dt_body, "Warning", "TrainingFailed", text)
        emit(tj, "Warning", "Failed", message)
    token = await ctx.admin_token(task)
    async with ctx.gateway(task, token) as gateway:
        try:
            await gateway.training_finished(ok, None if ok else message)
        except GatewayError as exc:  # the engine re-derives this on its next poll
            emit(dt_body, "Warning", "GatewayNotified", f"training/finished not delivered: {exc}")
    return status


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register the TrainingJob handlers on ``registry`` (:func:`refresh` runs in the task's
    timer)."""
    del settings
    res = (GROUP, VERSION, "trainingjobs")
    for on in (kopf.on.create, kopf.on.resume):
        on(*res, registry=registry, id="start-job")(start_job)
