"""The real operator against KMock's Kubernetes emulator and a loopback gateway.

KMock stores objects and serves watches but runs no controllers: nothing schedules
pods, bumps ``generation`` or collects garbage. The tests therefore play the cluster's
part where needed (they mark a Job finished, set ``generation``) and assert on state.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from kube_samples import classify
from kube_support import ADMIN_TOKEN, NS, TEACHER_KEY, eventually, live
from prometheus_client import REGISTRY

from apprentice.kube import CONFIG_HASH_ANNOTATION
from apprentice.kube import client as k8s
from apprentice.kube.apply import apply
from apprentice.kube.manifests import TaskObject, build_children

DT = "apprentice.dev/v1alpha1/distilledtasks"
TJ = "apprentice.dev/v1alpha1/trainingjobs"
MV = "apprentice.dev/v1alpha1/modelversions"
NAME = "classify-ticket"


def status_of(emulator: Any, resource: str = DT, name: str = NAME) -> dict[str, Any]:
    return dict((live(emulator, resource, name) or {}).get("status") or {})


def cond(emulator: Any, kind: str) -> dict[str, Any]:
    for c in status_of(emulator).get("conditions", []):
        if c["type"] == kind:
            return dict(c)
    return {}


def events(emulator: Any) -> list[dict[str, Any]]:
    return [
        dict(obj.raw)
        for (res, _, _), obj in emulator.objects.items()
        if res.plural == "events" and not obj.deleted
    ]


def event_reasons(emulator: Any) -> set[str]:
    return {e.get("reason", "") for e in events(emulator)}


async def create_and_wait_ready(kube: k8s.KubeClient, emulator: Any, **spec: Any) -> None:
    await kube.create(NS, classify(**spec))
    await eventually(lambda: cond(emulator, "Ready").get("status") == "True", what="Ready")


async def test_children_have_the_builders_content_and_owner_references(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    body = classify()
    await kube.create(NS, body)
    expected = {m["kind"]: m for m in build_children(TaskObject.from_body(body))}
    paths = {
        "ConfigMap": "v1/configmaps",
        "PersistentVolumeClaim": "v1/persistentvolumeclaims",
        "Deployment": "apps/v1/deployments",
        "Service": "v1/services",
    }
    for kind, resource in paths.items():
        name = expected[kind]["metadata"]["name"]
        obj = await eventually(lambda r=resource, n=name: live(emulator, r, n), what=kind)
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "apprentice.dev/v1alpha1",
                "kind": "DistilledTask",
                "name": NAME,
                "uid": "uid-dt-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert obj.get("spec", obj.get("data")) == expected[kind].get(
            "spec", expected[kind].get("data")
        )
    # The task names its own admin Secret, so none is generated.
    assert live(emulator, "v1/secrets", f"{NAME}-admin-token") is None


async def test_generates_an_owned_admin_token_secret_when_none_is_named(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    gateway[0].token = "will-not-match"  # without a token key the token is random
    await kube.create(NS, classify(gateway={}))
    secret = await eventually(lambda: live(emulator, "v1/secrets", f"{NAME}-admin-token"))
    assert len(base64.b64decode(secret["data"]["token"])) >= 32
    assert secret["metadata"]["ownerReferences"][0]["name"] == NAME
    deploy = await eventually(lambda: live(emulator, "apps/v1/deployments", f"{NAME}-inference"))
    env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "APPRENTICE_ADMIN_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": f"{NAME}-admin-token", "key": "token"}},
    } in env


async def test_status_and_conditions_follow_the_gateway(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    await create_and_wait_ready(kube, emulator)
    status = status_of(emulator)
    assert status["phase"] == "cold_start"
    assert status["observedGeneration"] == 1
    assert status["spend"] == {"today": 0.42, "week": 1.5, "month": 3.25, "currency": "USD"}
    assert status["examples"] == {"train": 12, "heldout": 2}
    assert status["endpoint"] == f"http://{NAME}-gateway.{NS}.svc:8080"
    assert cond(emulator, "Stalled")["status"] == "False"

    fake.state.update(
        phase="steady_state",
        phase_number=3,
        confidence=0.95,
        confidence_lower_bound=0.9,
        sampling_rate=0.05,
        active_version="v3",
        budget_exhausted=True,
        alarms=[{"kind": "drift", "index": 40, "comparisons": 30, "at": "t"}],
    )
    await eventually(lambda: cond(emulator, "BudgetExhausted").get("status") == "True")
    status = status_of(emulator)
    assert (status["phase"], status["confidence"], status["samplingRate"]) == (
        "steady_state",
        0.95,
        0.05,
    )
    assert status["activeModelVersion"] == "v3"
    assert status["lastAlarmIndex"] == 40
    await eventually(lambda: {"PhaseChanged", "Alarm"} <= event_reasons(emulator))
    alarm_events = [e for e in events(emulator) if e.get("reason") == "Alarm"]
    assert alarm_events[0]["type"] == "Warning" and "drift" in alarm_events[0]["message"]

    fake.state["emergency"] = True
    await eventually(lambda: cond(emulator, "Degraded").get("reason") == "Emergency")


async def test_spec_change_rolls_the_deployment_and_sets_observed_generation(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    await create_and_wait_ready(kube, emulator)
    deployment = f"{NAME}-inference"
    annotations = live(emulator, "apps/v1/deployments", deployment)["spec"]["template"]["metadata"][
        "annotations"
    ]
    before = annotations[CONFIG_HASH_ANNOTATION]
    # KMock does not bump generation: play the API server's part.
    await kube.patch(
        k8s.DISTILLED_TASKS,
        NS,
        NAME,
        {"metadata": {"generation": 2}, "spec": {"description": "Triage tickets, v2"}},
    )
    await eventually(lambda: status_of(emulator).get("observedGeneration") == 2)
    after = await eventually(
        lambda: (
            live(emulator, "apps/v1/deployments", deployment)["spec"]["template"]["metadata"][
                "annotations"
            ][CONFIG_HASH_ANNOTATION]
            != before
        )
    )
    assert after
    config = live(emulator, "v1/configmaps", f"{NAME}-gateway-config")["data"]["apprentice.yaml"]
    assert "Triage tickets, v2" in config


async def test_a_second_reconcile_changes_nothing(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    await create_and_wait_ready(kube, emulator)
    versions_before = child_versions(emulator)
    # A label change is an update kopf hands to the reconcile handler again.
    await kube.patch(k8s.DISTILLED_TASKS, NS, NAME, {"metadata": {"labels": {"team": "a"}}})
    await eventually(
        lambda: (
            '"team"'
            in live(emulator, DT, NAME)["metadata"]
            .get("annotations", {})
            .get("apprentice.dev/last-handled-configuration", "")
        ),
        what="update handled",
    )
    # Children were re-applied (server-side apply, every poll too) but none was rewritten.
    assert child_versions(emulator) == versions_before
    task = TaskObject.from_body(live(emulator, DT, NAME))
    for manifest in build_children(task):
        await apply(kube, manifest)
    assert child_versions(emulator) == versions_before


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else str(value)


def child_versions(emulator: Any) -> dict[str, int]:
    """How many versions each child object has had (a write that changes nothing adds none)."""
    kinds = {"configmaps", "persistentvolumeclaims", "deployments", "services"}
    return {
        f"{res.plural}/{name}": len(obj.history)
        for (res, _, name), obj in emulator.objects.items()
        if res.plural in kinds
    }


async def _mark_job(kube: k8s.KubeClient, name: str, condition: str, **counts: int) -> None:
    await kube.patch(
        k8s.JOBS,
        NS,
        name,
        {
            "status": {
                **counts,
                "conditions": [
                    {
                        "type": condition,
                        "status": "True",
                        "reason": "BackoffLimitExceeded" if condition == "Failed" else "Completed",
                        "message": "trainer exited with 3" if condition == "Failed" else "done",
                    }
                ],
            }
        },
        status=True,
    )


async def test_training_due_runs_a_job_then_validates_and_promotes(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    promoted_before = _sample("apprentice_operator_model_versions_total", verdict="promoted")
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True, training_reason="50 examples collected")
    tj = await eventually(lambda: live(emulator, TJ, f"{NAME}-v1"), what="TrainingJob")
    assert tj["spec"] == {
        "taskRef": NAME,
        "task": "classify_ticket",
        "version": "v1",
        "reason": "50 examples collected",
        "examples": 12,
    }
    assert tj["metadata"]["ownerReferences"][0]["uid"] == "uid-dt-1"
    job = await eventually(lambda: live(emulator, "batch/v1/jobs", f"{NAME}-v1-train"))
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"
    assert "POST" in [m for m, p, _ in fake.calls if p.endswith("/training/started")]
    await eventually(lambda: cond(emulator, "Training").get("status") == "True")

    await _mark_job(kube, f"{NAME}-v1-train", "Complete", succeeded=1)
    mv = await eventually(
        lambda: status_of(emulator, MV, f"{NAME}-v1").get("state") == "promoted", what="promoted"
    )
    assert mv
    mv_status = status_of(emulator, MV, f"{NAME}-v1")
    assert mv_status["heldoutScore"] == 0.93 and mv_status["passed"] is True
    assert status_of(emulator, TJ, f"{NAME}-v1")["state"] == "Succeeded"
    assert status_of(emulator, TJ, f"{NAME}-v1")["modelVersion"] == f"{NAME}-v1"
    admin = "/admin/tasks/classify_ticket"
    posts = fake.paths("POST")
    assert (
        posts.index(f"{admin}/versions")
        < posts.index(f"{admin}/versions/v1/validate")
        < posts.index(f"{admin}/versions/v1/promote")
    )
    registered = next(b for m, p, b in fake.calls if p == f"{admin}/versions" and m == "POST")
    assert registered["path"] == "/var/lib/apprentice/models/classify_ticket/v1"
    await eventually(lambda: status_of(emulator).get("activeModelVersion") == "v1")
    await eventually(
        lambda: {"TrainingStarted", "TrainingSucceeded", "Promoted"} <= event_reasons(emulator)
    )
    assert fake.unauthorized == 0
    promoted = _sample("apprentice_operator_model_versions_total", verdict="promoted")
    assert promoted == promoted_before + 1


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_rejected_version_is_not_promoted(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    fake.verdict = {"heldout_score": 0.41, "passed": False, "reason": "loses to v0 (0.80)"}
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True)
    await eventually(lambda: live(emulator, "batch/v1/jobs", f"{NAME}-v1-train"))
    await _mark_job(kube, f"{NAME}-v1-train", "Complete", succeeded=1)
    await eventually(lambda: status_of(emulator, MV, f"{NAME}-v1").get("state") == "rejected")
    assert status_of(emulator, MV, f"{NAME}-v1")["reason"] == "loses to v0 (0.80)"
    assert not [p for p in fake.paths() if p.endswith("/promote")]


async def test_failed_job_degrades_the_task_and_keeps_the_current_version(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    fake.state["active_version"] = "v3"
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True)
    await eventually(
        lambda: (
            live(emulator, "batch/v1/jobs", f"{NAME}-v4-train")
            or live(emulator, "batch/v1/jobs", f"{NAME}-v1-train")
        ),
        what="job",
    )
    job_name = next(
        n for (r, _, n), o in emulator.objects.items() if r.plural == "jobs" and not o.deleted
    )
    await kube.create(
        NS,
        {  # what the Job controller and kubelet would leave behind
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{job_name}-x7k2p",
                "namespace": NS,
                "labels": {"job-name": job_name},
            },
            "status": {
                "containerStatuses": [
                    {
                        "name": "trainer",
                        "state": {
                            "terminated": {
                                "exitCode": 1,
                                "message": "training failed: CUDA out of memory\n",
                            }
                        },
                    }
                ]
            },
        },
    )
    await _mark_job(kube, job_name, "Failed", failed=2)
    degraded = await eventually(
        lambda: (
            cond(emulator, "Degraded").get("reason") == "TrainingFailed"
            and cond(emulator, "Degraded")
        )
    )
    assert degraded["status"] == "True" and "exited with 3" in degraded["message"]
    assert degraded["message"].endswith(
        "trainer: training failed: CUDA out of memory; the current version keeps serving"
    )
    tj_name = job_name.removesuffix("-train")
    assert status_of(emulator, TJ, tj_name)["state"] == "Failed"  # recorded before the task
    finished = await eventually(
        lambda: [b for m, p, b in fake.calls if p.endswith("/training/finished")]
    )
    assert finished[0] == {
        "ok": False,
        "reason": degraded["message"]
        .split(": ", 1)[1]
        .removesuffix("; the current version keeps serving"),
    }
    assert not [p for p in fake.paths() if p.endswith("/promote")]
    # Later polls keep the failure visible while the current version serves.
    polls = len([p for p in fake.paths("GET") if p.endswith("/state")])
    await eventually(
        lambda: len([p for p in fake.paths("GET") if p.endswith("/state")]) > polls + 2
    )
    assert cond(emulator, "Degraded")["reason"] == "TrainingFailed"
    assert status_of(emulator)["activeModelVersion"] == "v3"
    assert not live(emulator, MV, tj_name)


async def test_invalid_spec_is_stalled_without_children(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    bad = classify(
        confidenceThresholds={
            "phase2ToPhase3": 0.85,
            "coachingTrigger": 0.7,
            "emergencyThreshold": 0.8,
        }
    )
    await kube.create(NS, bad)
    stalled = await eventually(
        lambda: cond(emulator, "Stalled").get("status") == "True" and cond(emulator, "Stalled")
    )
    assert stalled["reason"] == "InvalidSpec"
    assert stalled["message"] == (
        "spec.confidenceThresholds.emergency_threshold: (0.8) must be below coaching_trigger (0.7)"
    )
    assert live(emulator, "apps/v1/deployments", f"{NAME}-inference") is None


async def test_delete_releases_the_finalizer(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    await create_and_wait_ready(kube, emulator)
    assert "apprentice.dev/finalizer" in live(emulator, DT, NAME)["metadata"]["finalizers"]
    await kube.delete(k8s.DISTILLED_TASKS, NS, NAME)
    await eventually(lambda: live(emulator, DT, NAME) is None, what="deleted")


async def test_no_secret_value_reaches_config_status_events_or_logs(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any, caplog: Any
) -> None:
    fake = gateway[0]
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True)
    await eventually(lambda: live(emulator, "batch/v1/jobs", f"{NAME}-v1-train"))
    await _mark_job(kube, f"{NAME}-v1-train", "Complete", succeeded=1)
    await eventually(lambda: status_of(emulator, MV, f"{NAME}-v1").get("state") == "promoted")
    fake.token = "rotated"  # admin calls now fail with 401: their errors must not leak either
    fake.state.update(training_due=True, training_in_progress=False)
    await eventually(lambda: "TrainingNotStarted" in event_reasons(emulator))
    dumped: dict[str, list[str]] = {}
    for (res, _, _), obj in emulator.objects.items():
        if res.plural != "secrets":  # every version of every other object
            versions = [json.dumps(v, default=_plain) for v in obj.history if v is not None]
            dumped.setdefault(res.plural, []).extend(versions)
    assert {"configmaps", "events", "distilledtasks", "deployments", "jobs"} <= set(dumped)
    text = "\n".join(line for lines in dumped.values() for line in lines) + caplog.text
    assert "401 unauthorized" in text  # the failure itself is visible, the token is not
    for secret in (TEACHER_KEY, ADMIN_TOKEN):
        assert secret not in text
