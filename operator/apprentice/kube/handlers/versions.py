"""ModelVersion: register with the gateway, validate on the held-out split, promote or reject.

With the task's canary on, the gateway answers a promotion by trying the version on live
traffic first; the ModelVersion stays ``candidate`` (``passed``, reconciling) and the
handler polls the gateway until its verdict: promoted, or rejected with the reason.

Promotion loads the adapter into the student server at runtime and switches the
gateway; the previously promoted ModelVersion of the task is marked retired. These
handlers write ModelVersion status only (state, kstatus conditions, observedGeneration);
the DistilledTask's timer reads ``activeModelVersion`` from the gateway and the
ModelVersions (one writer per status).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from apprentice.kube import GROUP, TASK_LABEL, VERSION, metrics, reconcile, task_status
from apprentice.kube import client as k8s
from apprentice.kube.gateway_client import GatewayClient, GatewayError
from apprentice.kube.handlers import emit, namespace_of, now, translated
from apprentice.kube.models import ModelVersionState
from apprentice.kube.runtime import OperatorContext, OperatorSettings, context_of

__all__ = ["register"]

Obj = dict[str, Any]
_FINAL = {
    ModelVersionState.promoted.value,
    ModelVersionState.rejected.value,
    ModelVersionState.retired.value,
}


def _mv_status(mv: Mapping[str, Any], state: str, message: str, **fields: Any) -> Obj:
    """``state`` and ``fields`` plus the conditions and observedGeneration that go with them."""
    old = mv.get("status") or {}
    generation = (mv.get("metadata") or {}).get("generation")
    conditions = task_status.model_version_conditions(
        old.get("conditions") or [], state, message, generation=generation, now=now()
    )
    return {**fields, "state": state, "conditions": conditions, "observedGeneration": generation}


async def validate_version(
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
    """candidate -> validating -> promoted | rejected, as the gateway decides."""
    if status.get("state") in _FINAL:
        return
    ctx = context_of(memo)
    version = spec["version"]
    with translated(ctx.settings.retry_delay(retry)):
        dt_body = await ctx.kube.get(k8s.DISTILLED_TASKS, namespace_of(namespace), spec["taskRef"])
        if dt_body is None:
            raise kopf.PermanentError(f"DistilledTask {spec['taskRef']} does not exist")
        task = ctx.task(dt_body)
        token = await ctx.admin_token(task)
        async with ctx.gateway(task, token) as gateway:
            known = await _known(gateway, version)
            if known is None or not _judged(known):
                verdict = await _register_and_validate(gateway, spec)
                if not verdict.get("passed"):
                    _reject(
                        body, dt_body, patch, verdict.get("heldout_score"), verdict.get("reason")
                    )
                    return
                await gateway.promote(version)  # with the task's canary on: a canary first
                known = await _known(gateway, version) or {"state": "promoted"}
    score = known.get("heldout_score")
    if known.get("state") == ModelVersionState.rejected.value:  # the canary rolled it back
        _reject(body, dt_body, patch, score, known.get("reason"))
        return
    if known.get("state") != ModelVersionState.promoted.value:
        _canary(body, patch, score)
        raise kopf.TemporaryError(
            f"{version} is a canary on live traffic", delay=ctx.settings.poll_interval_s
        )
    when = reconcile.rfc3339(now())
    patch.status.update(
        _mv_status(
            body,
            ModelVersionState.promoted.value,
            f"scored {score} and serves",
            heldoutScore=score,
            passed=True,
            promotedAt=when,
            reason=None,
        )
    )
    await _retire_others(ctx, dt_body, meta["name"])
    metrics.PROMOTIONS.labels("promoted").inc()
    emit(body, "Normal", "Promoted", f"{version} scored {score} and now serves")
    emit(dt_body, "Normal", "Promoted", f"{version} scored {score} and now serves")


async def _known(gateway: GatewayClient, version: str) -> Obj | None:
    """The version as the gateway's store has it (None: not registered yet)."""
    listed = await gateway.versions()
    return next((v for v in listed.get("versions") or [] if v.get("version") == version), None)


def _judged(known: Obj) -> bool:
    """Validated and handed to promotion already: promoted, rejected, or a canary running."""
    state = known.get("state")
    canary = (known.get("metrics") or {}).get("canary")
    return state in (ModelVersionState.promoted.value, ModelVersionState.rejected.value) or (
        state == ModelVersionState.candidate.value and canary is not None
    )


def _canary(body: kopf.Body, patch: kopf.Patch, score: Any) -> None:
    """Validated, now tried on live traffic by the gateway: still a candidate, reconciling."""
    message = f"scored {score}; a canary on live traffic until the gateway's verdict"
    if (body.get("status") or {}).get("passed") is not True:
        emit(body, "Normal", "Canary", f"{body.spec['version']} {message}")
    patch.status.update(
        _mv_status(
            body, ModelVersionState.candidate.value, message, heldoutScore=score, passed=True
        )
    )


async def _register_and_validate(gateway: GatewayClient, spec: kopf.Spec) -> dict[str, Any]:
    """Register the adapter with the gateway (again, after an interrupted attempt: its 409
    is fine) and let it score the held-out split; the gateway's verdict."""
    version = spec["version"]
    try:
        await gateway.register_version(version, spec["path"], dict(spec.get("metrics") or {}))
    except GatewayError as exc:
        if exc.status != 409:
            raise
    return await gateway.validate(version)


def _reject(
    body: kopf.Body, dt_body: Obj, patch: kopf.Patch, score: Any, reason: str | None
) -> None:
    """A version that did not pass: rejected, with why; the serving version stays."""
    reason = reason or "did not beat the threshold"
    version = body.spec["version"]
    patch.status.update(
        _mv_status(
            body,
            ModelVersionState.rejected.value,
            f"scored {score}: {reason}",
            heldoutScore=score,
            passed=False,
            reason=reason,
        )
    )
    metrics.PROMOTIONS.labels("rejected").inc()
    emit(body, "Warning", "Rejected", f"{version} scored {score}: {reason}")
    emit(dt_body, "Warning", "VersionRejected", f"{version} scored {score}: {reason}")


async def _retire_others(ctx: OperatorContext, dt_body: dict[str, Any], promoted: str) -> None:
    namespace, name = dt_body["metadata"]["namespace"], dt_body["metadata"]["name"]
    for mv in await ctx.kube.list(k8s.MODEL_VERSIONS, namespace, {TASK_LABEL: name}):
        mv_name = mv["metadata"]["name"]
        if mv_name != promoted and (mv.get("status") or {}).get("state") == "promoted":
            status = _mv_status(mv, ModelVersionState.retired.value, f"{promoted} replaced it")
            await ctx.kube.patch(
                k8s.MODEL_VERSIONS, namespace, mv_name, {"status": status}, status=True
            )


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Register the ModelVersion handlers on ``registry``."""
    del settings
    res = (GROUP, VERSION, "modelversions")
    for on in (kopf.on.create, kopf.on.resume):
        on(*res, registry=registry, id="validate")(validate_version)
