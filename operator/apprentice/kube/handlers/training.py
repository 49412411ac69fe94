"""TrainingJob: create its batch/v1 Job, mirror the Job's status, finish the run.

On success a ModelVersion is created (the version handlers validate and promote it);
on failure the TrainingJob is Failed, the DistilledTask Degraded with the reason, and
the version that was serving keeps serving.
"""

from __future__ import annotations

from typing import Any

import kopf

from apprentice.kube import GROUP, TRAINING_JOB_LABEL, VERSION, metrics, reconcile
from apprentice.kube import client as k8s
from apprentice.kube.apply import apply
from apprentice.kube.gateway_client import GatewayError
from apprentice.kube.handlers import emit, now, translated
from apprentice.kube.models import TrainingJobState
from apprentice.kube.runtime import OperatorSettings, Runtime, runtime_of
from apprentice.kube.training_manifests import get_job, get_model_version, job_name

__all__ = ["register"]

_TERMINAL = {TrainingJobState.succeeded.value, TrainingJobState.failed.value}


async def _task_body(rt: Runtime, namespace: Any, name: str) -> dict[str, Any]:
    body = await rt.kube.get(k8s.DISTILLED_TASKS, namespace, name)
    if body is None:
        raise kopf.PermanentError(f"DistilledTask {namespace}/{name} does not exist")
    return body


async def start_job(
    spec: Any, meta: Any, status: Any, namespace: Any, patch: Any, memo: Any, **_: Any
) -> None:
    """Create the Job of a new (or resumed, unfinished) TrainingJob."""
    if status.get("state") in _TERMINAL:
        return
    rt = runtime_of(memo)
    with translated(rt.settings.retry_delay_s):
        task = rt.task(await _task_body(rt, namespace, spec["taskRef"]))
        job = get_job(task, meta["name"], meta.get("uid", ""), spec["version"], task.endpoint)
        await apply(rt.kube, job)
    patch.status["jobName"] = job["metadata"]["name"]
    if not status.get("state"):
        patch.status["state"] = TrainingJobState.pending.value
        patch.status["startTime"] = reconcile.rfc3339(now())


async def job_changed(
    body: Any, event: Any, namespace: Any, labels: Any, memo: Any, **_: Any
) -> None:
    """Mirror a training Job into its TrainingJob; finish the run once the Job ends."""
    if event.get("type") == "DELETED":
        return
    rt = runtime_of(memo)
    name = labels[TRAINING_JOB_LABEL]
    with translated(rt.settings.retry_delay_s):
        tj = await rt.kube.get(k8s.TRAINING_JOBS, namespace, name)
        if tj is None or body["metadata"]["name"] != job_name(name):
            return
        tj_status = tj.get("status") or {}
        if tj_status.get("state") in _TERMINAL:
            return
        outcome, message = reconcile.job_outcome(body)
        start = tj_status.get("startTime") or reconcile.rfc3339(now())
        update: dict[str, Any] = {
            "startTime": start,
            "jobName": body["metadata"]["name"],
            "duration": reconcile.format_duration(start, None, now()),
        }
        if outcome == "running":
            update["state"] = TrainingJobState.running.value
        if outcome == "failed":
            message = await _with_trainer_message(rt, namespace, body, message)
        if outcome in ("succeeded", "failed"):
            end = reconcile.rfc3339(now())
            update.update(
                completionTime=end,
                message=message,
                duration=reconcile.format_duration(start, end, now()),
            )
            await _finish(rt, tj, outcome == "succeeded", message, update)
        else:
            await rt.kube.patch(k8s.TRAINING_JOBS, namespace, name, {"status": update}, status=True)


async def _with_trainer_message(rt: Runtime, namespace: str, job: Any, message: str) -> str:
    """The Job's failure reason plus what the trainer wrote to its termination message."""
    pods = await rt.kube.list(k8s.PODS, namespace, {"job-name": job["metadata"]["name"]})
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or ""):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            said = ((status.get("state") or {}).get("terminated") or {}).get("message")
            if said:
                message = f"{message}; trainer: {said.strip()[-500:]}"
    return message


async def _finish(
    rt: Runtime, tj: dict[str, Any], ok: bool, message: str, update: dict[str, Any]
) -> None:
    """Record the outcome on the TrainingJob first, then on the task and the gateway."""
    namespace, name = tj["metadata"]["namespace"], tj["metadata"]["name"]
    spec = tj["spec"]
    dt_body = await _task_body(rt, namespace, spec["taskRef"])
    task = rt.task(dt_body)
    if ok:
        mv = get_model_version(
            task, name, spec["version"], {"examples": spec.get("examples"), "trainingJob": name}
        )
        await apply(rt.kube, mv)
        update.update(state=TrainingJobState.succeeded.value, modelVersion=mv["metadata"]["name"])
    else:
        update["state"] = TrainingJobState.failed.value
    await rt.kube.patch(k8s.TRAINING_JOBS, namespace, name, {"status": update}, status=True)
    metrics.TRAINING_RUNS.labels("succeeded" if ok else "failed").inc()
    if ok:
        emit(dt_body, "Normal", "TrainingSucceeded", f"{spec['version']}: {message}")
        emit(tj, "Normal", "Succeeded", message)
    else:
        conditions = (dt_body.get("status") or {}).get("conditions") or []
        generation = dt_body["metadata"].get("generation")
        text = f"training {spec['version']} failed: {message}; the current version keeps serving"
        conds = reconcile.set_condition(
            conditions, "Degraded", True, "TrainingFailed", text, generation=generation, now=now()
        )
        conds = reconcile.set_condition(
            conds, "Training", False, "TrainingFailed", message, generation=generation, now=now()
        )
        await rt.kube.patch(
            k8s.DISTILLED_TASKS,
            namespace,
            task.name,
            {"status": {"conditions": conds, "lastTrainingFailure": text}},
            status=True,
        )
        emit(dt_body, "Warning", "TrainingFailed", text)
        emit(tj, "Warning", "Failed", message)
    token = await rt.admin_token(task)
    async with rt.gateway(task, token) as gateway:
        try:
            await gateway.training_finished(ok, None if ok else message)
        except GatewayError as exc:  # the engine re-derives this on its next poll
            emit(dt_body, "Warning", "GatewayNotified", f"training/finished not delivered: {exc}")


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register the TrainingJob and training-Job handlers on ``registry``."""
    del settings
    res = (GROUP, VERSION, "trainingjobs")
    for on in (kopf.on.create, kopf.on.resume):
        on(*res, registry=registry, id="start-job")(start_job)
    kopf.on.event(
        "batch",
        "v1",
        "jobs",
        registry=registry,
        id="job-changed",
        labels={TRAINING_JOB_LABEL: kopf.PRESENT},
    )(job_changed)
