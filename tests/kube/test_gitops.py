"""The GitOps examples, run for real: Argo CD's health Lua in Lua 5.1, Flux's CEL in CEL.

Argo CD runs resource health scripts in gopher-lua (Lua 5.1) with the object as the global
``obj``; JSON null and missing fields are both nil there. Flux's kustomize-controller
evaluates ``healthCheckExprs`` in the order inProgress, failed, current; none true means
in progress. Each status shape a DistilledTask can show is checked (finding 12).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import kubernetes_validate
import lupa.lua51 as lua51
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
EXAMPLES = sorted((ROOT / "examples" / "kubernetes").glob("*.yaml"))
PREFIX = "resource.customizations.health."


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def argocd_scripts() -> dict[str, str]:
    (cm,) = docs(GITOPS / "argocd-health.yaml")
    kubernetes_validate.validate(cm, "1.33.0", strict=True)
    return {k.removeprefix(PREFIX): v for k, v in cm["data"].items()}


def argocd_health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run one health script as Argo CD does: ``obj`` global, a table returned."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(argocd_scripts()[f"apprentice.dev_{kind}"])
    return str(result["status"]), str(result["message"])


def cond(type_: str, status: str, **extra: str) -> dict[str, Any]:
    return {"type": type_, "status": status, **extra}


def task(status: dict[str, Any] | None, generation: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "t", "generation": generation}}
    if status is not None:
        obj["status"] = status
    return obj


READY = cond("Ready", "True", reason="Serving", message="phase 2")
#: name -> (DistilledTask, Argo CD health, Flux verdict)
SHAPES: dict[str, tuple[dict[str, Any], str, str]] = {
    "no status": (task(None), "Progressing", "inProgress"),
    "no conditions": (task({"observedGeneration": 2}), "Progressing", "inProgress"),
    "empty conditions": (task({"observedGeneration": 2, "conditions": []}), "Progressing",
                         "inProgress"),
    "ready": (task({"observedGeneration": 2, "phase": "cold_start", "conditions": [READY]}),
              "Healthy", "current"),
    "ready false": (task({"observedGeneration": 2, "conditions": [
        cond("Ready", "False", reason="Deploying", message="0/1 pods ready")]}),
        "Progressing", "inProgress"),
    "ready without message or reason": (task({"observedGeneration": 2, "conditions": [
        cond("Ready", "False")]}), "Progressing", "inProgress"),
    "stalled": (task({"observedGeneration": 2, "conditions": [
        cond("Ready", "False", reason="InvalidSpec"),
        cond("Stalled", "True", reason="InvalidSpec", message="budget.daily must be > 0")]}),
        "Degraded", "failed"),
    "stalled without message": (task({"observedGeneration": 2, "conditions": [
        cond("Stalled", "True", reason="InvalidSpec")]}), "Degraded", "failed"),
    "degraded without message": (task({"observedGeneration": 2, "conditions": [
        READY, cond("Degraded", "True", reason="TrainingFailed")]}), "Degraded", "current"),
    "generation behind": (task({"observedGeneration": 1, "conditions": [READY]}),
                          "Progressing", "inProgress"),
    "stalled but generation behind": (task({"observedGeneration": 1, "conditions": [
        cond("Stalled", "True", reason="InvalidSpec")]}), "Progressing", "inProgress"),
    "budget exhausted without message": (task({"observedGeneration": 2, "conditions": [
        READY, cond("BudgetExhausted", "True")]}), "Healthy", "current"),
}  # fmt: skip


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_argocd_health_of_a_distilled_task(shape: str) -> None:
    obj, expected, _ = SHAPES[shape]
    status, message = argocd_health("DistilledTask", obj)
    assert status == expected, message
    assert message  # always says something, never crashes on a missing field


def test_argocd_skips_a_condition_without_type() -> None:
    """The CRD requires ``type`` (listMapKeys); the script must not crash on older objects."""
    obj = task({"observedGeneration": 2, "conditions": [{"status": "True"}, READY]})
    assert argocd_health("DistilledTask", obj)[0] == "Healthy"


def test_argocd_messages_carry_reason_and_message() -> None:
    _, message = argocd_health("DistilledTask", SHAPES["stalled"][0])
    assert message == "InvalidSpec: budget.daily must be > 0"
    _, message = argocd_health("DistilledTask", SHAPES["ready without message or reason"][0])
    assert message == "Ready is False"
    _, message = argocd_health("DistilledTask", SHAPES["budget exhausted without message"][0])
    assert message == "phase ; budget exhausted: BudgetExhausted is True"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, "Progressing"),
        ({"state": "Pending"}, "Progressing"),
        ({"state": "Pending", "conditions": [cond("Scheduled", "False", reason="WaitingForGPU")]},
         "Progressing"),
        ({"state": "Running"}, "Progressing"),
        ({"state": "Succeeded", "modelVersion": "v3"}, "Healthy"),
        ({"state": "Succeeded"}, "Healthy"),
        ({"state": "Failed"}, "Degraded"),
        ({"state": "Failed", "message": "OOMKilled"}, "Degraded"),
    ],
)  # fmt: skip
def test_argocd_health_of_a_training_job(status: dict[str, Any] | None, expected: str) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "tj"}}
    if status is not None:
        obj["status"] = status
    health, message = argocd_health("TrainingJob", obj)
    assert health == expected and message
    if status and status.get("conditions"):
        assert "WaitingForGPU" in message


@pytest.mark.parametrize(
    ("state", "expected"),
    [(None, "Progressing"), ("candidate", "Progressing"), ("validating", "Progressing"),
     ("promoted", "Healthy"), ("retired", "Healthy"), ("rejected", "Degraded")],
)  # fmt: skip
def test_argocd_health_of_a_model_version(state: str | None, expected: str) -> None:
    obj: dict[str, Any] = {"metadata": {"name": "mv"}}
    if state is not None:
        obj["status"] = {"state": state}
    assert argocd_health("ModelVersion", obj)[0] == expected


def test_argocd_scripts_cover_our_three_kinds() -> None:
    assert set(argocd_scripts()) == {
        "apprentice.dev_DistilledTask",
        "apprentice.dev_TrainingJob",
        "apprentice.dev_ModelVersion",
    }


def flux() -> dict[str, Any]:
    by_kind = {d["kind"]: d for d in docs(GITOPS / "flux-kustomization.yaml")}
    kustomization: dict[str, Any] = by_kind["Kustomization"]
    return kustomization


def flux_verdict(obj: dict[str, Any]) -> str:
    """kustomize-controller's order: inProgress, failed, current; else in progress."""
    (exprs,) = flux()["spec"]["healthCheckExprs"]
    env = celpy.Environment()
    activation = {k: celpy.json_to_cel(v) for k, v in obj.items()}
    for verdict in ("inProgress", "failed", "current"):
        if verdict in exprs:
            program = env.program(env.compile(exprs[verdict]))
            result = program.evaluate(activation)  # an evaluation error counts as false
            if isinstance(result, celpy.celtypes.BoolType) and bool(result):
                return verdict
    return "inProgress"


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_flux_health_check_exprs(shape: str) -> None:
    obj, _, expected = SHAPES[shape]
    assert flux_verdict(obj) == expected


def test_flux_exprs_are_for_distilled_tasks_and_name_the_example_tasks() -> None:
    spec = flux()["spec"]
    (exprs,) = spec["healthCheckExprs"]
    assert exprs["apiVersion"] == "apprentice.dev/v1alpha1" and exprs["kind"] == "DistilledTask"
    assert "current" in exprs  # required by Flux
    names = {
        d["metadata"]["name"] for p in EXAMPLES for d in docs(p) if d["kind"] == "DistilledTask"
    }
    checks = spec["healthChecks"]
    assert all(c["kind"] == "DistilledTask" for c in checks)
    assert {c["name"] for c in checks} <= names
