"""ModelVersion: register with the gateway, validate on the held-out split, promote or reject.

Promotion loads the adapter into the student server at runtime and switches the
gateway; the previously promoted ModelVersion of the task is marked retired.
"""

from __future__ import annotations

from typing import Any

import kopf

from apprentice.kube import GROUP, TASK_LABEL, VERSION, metrics, reconcile
from apprentice.kube import client as k8s
from apprentice.kube.gateway_client import GatewayError
from apprentice.kube.handlers import emit, now, translated
from apprentice.kube.models import ModelVersionState
from apprentice.kube.runtime import OperatorSettings, Runtime, runtime_of

__all__ = ["register"]

_FINAL = {
    ModelVersionState.promoted.value,
    ModelVersionState.rejected.value,
    ModelVersionState.retired.value,
}


async def validate_version(
    body: Any, spec: Any, meta: Any, status: Any, namespace: Any, patch: Any, memo: Any, **_: Any
) -> None:
    """candidate -> validating -> promoted | rejected, as the gateway decides."""
    if status.get("state") in _FINAL:
        return
    rt = runtime_of(memo)
    version = spec["version"]
    with translated(rt.settings.retry_delay_s):
        dt_body = await rt.kube.get(k8s.DISTILLED_TASKS, namespace, spec["taskRef"])
        if dt_body is None:
            raise kopf.PermanentError(f"DistilledTask {spec['taskRef']} does not exist")
        task = rt.task(dt_body)
        token = await rt.admin_token(task)
        async with rt.gateway(task, token) as gateway:
            try:
                await gateway.register_version(
                    version, spec["path"], dict(spec.get("metrics") or {})
                )
            except GatewayError as exc:
                if exc.status != 409:  # 409: registered by an earlier, interrupted attempt
                    raise
            verdict = await gateway.validate(version)
            score = verdict.get("heldout_score")
            patch.status["heldoutScore"] = score
            patch.status["passed"] = bool(verdict.get("passed"))
            if not verdict.get("passed"):
                reason = verdict.get("reason") or "did not beat the threshold"
                patch.status.update(state=ModelVersionState.rejected.value, reason=reason)
                metrics.PROMOTIONS.labels("rejected").inc()
                emit(body, "Warning", "Rejected", f"{version} scored {score}: {reason}")
                emit(dt_body, "Warning", "VersionRejected", f"{version} scored {score}: {reason}")
                return
            await gateway.promote(version)
    when = reconcile.rfc3339(now())
    patch.status.update(state=ModelVersionState.promoted.value, promotedAt=when, reason=None)
    await _after_promotion(rt, dt_body, meta["name"], version)
    metrics.PROMOTIONS.labels("promoted").inc()
    emit(body, "Normal", "Promoted", f"{version} scored {score} and now serves")
    emit(dt_body, "Normal", "Promoted", f"{version} scored {score} and now serves")


async def _after_promotion(
    rt: Runtime, dt_body: dict[str, Any], promoted: str, version: str
) -> None:
    namespace, name = dt_body["metadata"]["namespace"], dt_body["metadata"]["name"]
    for mv in await rt.kube.list(k8s.MODEL_VERSIONS, namespace, {TASK_LABEL: name}):
        mv_name = mv["metadata"]["name"]
        if mv_name != promoted and (mv.get("status") or {}).get("state") == "promoted":
            await rt.kube.patch(
                k8s.MODEL_VERSIONS,
                namespace,
                mv_name,
                {"status": {"state": ModelVersionState.retired.value}},
                status=True,
            )
    status = dt_body.get("status") or {}
    generation = dt_body["metadata"].get("generation")
    conds = reconcile.set_condition(
        status.get("conditions") or [],
        "Degraded",
        False,
        "Promoted",
        f"{version} serves",
        generation=generation,
        now=now(),
    )
    conds = reconcile.set_condition(
        conds, "Training", False, "Idle", "", generation=generation, now=now()
    )
    await rt.kube.patch(
        k8s.DISTILLED_TASKS,
        namespace,
        name,
        {
            "status": {
                "activeModelVersion": version,
                "conditions": conds,
                "lastTrainingFailure": None,
            }
        },
        status=True,
    )


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register the ModelVersion handlers on ``registry``."""
    del settings
    res = (GROUP, VERSION, "modelversions")
    for on in (kopf.on.create, kopf.on.resume):
        on(*res, registry=registry, id="validate")(validate_version)
