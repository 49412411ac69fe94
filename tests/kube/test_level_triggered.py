"""Level-triggered reconciliation, status and Secrets against KMock (issue 8, items 3-8).

The emulator applies server-side-apply requests by replacing what the operator owns (see
``conftest.Emulator``), so removed fields disappear here as on a real API server; the
tests in tests/cluster/ repeat the important ones against one.
"""

from __future__ import annotations

import base64
from typing import Any

from kube_operator import fast_settings
from kube_samples import classify
from kube_support import NS, eventually, live
from test_operator import DT, MV, NAME, TJ, cond, create_and_wait_ready, events, status_of

from apprentice.kube import client as k8s
from apprentice.kube.manifests import Defaults, TaskObject

DEPLOY = f"{NAME}-inference"
POSTGRES = {"postgres": {"dsnSecretRef": {"name": "pg", "key": "dsn"}}}


def _deployment(emulator: Any) -> dict[str, Any]:
    return live(emulator, "apps/v1/deployments", DEPLOY) or {}


async def _edit_spec(kube: k8s.KubeClient, generation: int, **spec: Any) -> None:
    """A spec edit as the API server records it (KMock does not bump generation)."""
    patch = {"metadata": {"generation": generation}, "spec": spec}
    await kube.patch(k8s.DISTILLED_TASKS, NS, NAME, patch)


async def test_deleted_children_come_back_within_a_poll(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    await create_and_wait_ready(kube, emulator)
    await kube.delete(k8s.DEPLOYMENTS, NS, DEPLOY)
    await kube.delete(k8s.SERVICES, NS, f"{NAME}-gateway")
    await kube.delete(k8s.CONFIG_MAPS, NS, f"{NAME}-gateway-config")
    assert live(emulator, "apps/v1/deployments", DEPLOY) is None
    await eventually(lambda: live(emulator, "apps/v1/deployments", DEPLOY), what="Deployment")
    await eventually(lambda: live(emulator, "v1/services", f"{NAME}-gateway"), what="Service")
    await eventually(lambda: live(emulator, "v1/configmaps", f"{NAME}-gateway-config"))


async def test_a_hand_edited_child_is_restored(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    await create_and_wait_ready(kube, emulator)
    image = _deployment(emulator)["spec"]["template"]["spec"]["containers"][0]["image"]
    await kube.patch(k8s.DEPLOYMENTS, NS, DEPLOY, {"spec": {"replicas": 5}})
    await eventually(lambda: _deployment(emulator)["spec"]["replicas"] == 1, what="replicas")
    assert _deployment(emulator)["spec"]["template"]["spec"]["containers"][0]["image"] == image


async def test_a_storage_switch_leaves_no_stale_rolling_update(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    await create_and_wait_ready(
        kube,
        emulator,
        storage={**POSTGRES, "accessMode": "ReadWriteMany"},
        gateway={"replicas": 2, "adminTokenSecretRef": {"name": "gateway-admin", "key": "token"}},
    )
    strategy = _deployment(emulator)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and "rollingUpdate" in strategy
    await _edit_spec(kube, 2, storage={"postgres": None}, gateway={"replicas": 1})
    await eventually(
        lambda: _deployment(emulator)["spec"]["strategy"] == {"type": "Recreate"},
        what="Recreate without rollingUpdate",
    )
    await _edit_spec(kube, 3, storage=POSTGRES, gateway={"replicas": 2})
    await eventually(lambda: _deployment(emulator)["spec"]["strategy"]["type"] == "RollingUpdate")
    env = _deployment(emulator)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert any(e["name"] == "APPRENTICE_STORE_URL" for e in env)


async def test_removed_node_selector_and_tolerations_go_away(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    student = {
        "baseModel": "meta-llama/Llama-3.2-1B-Instruct",
        "nodeSelector": {"gpu": "a100"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }
    await create_and_wait_ready(kube, emulator, student=student)
    pod = _deployment(emulator)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu": "a100"} and pod["tolerations"]
    await _edit_spec(kube, 2, student={"nodeSelector": None, "tolerations": None})

    def placement_gone() -> bool:
        pod = _deployment(emulator)["spec"]["template"]["spec"]
        return "nodeSelector" not in pod and "tolerations" not in pod

    await eventually(placement_gone, what="placement removed")


async def test_an_invalid_edit_is_stalled_at_the_new_generation(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    await create_and_wait_ready(kube, emulator)
    await _edit_spec(kube, 2, budget={"daily": 50.0, "weekly": 10.0})
    stalled = await eventually(
        lambda: cond(emulator, "Stalled").get("status") == "True" and cond(emulator, "Stalled")
    )
    assert stalled["reason"] == "InvalidSpec" and "daily" in stalled["message"]
    assert status_of(emulator)["observedGeneration"] == 2
    assert stalled["observedGeneration"] == 2
    assert cond(emulator, "Reconciling")["status"] == "False"  # kstatus: Failed, not InProgress
    assert cond(emulator, "Ready")["status"] == "True"  # the old pods keep serving


async def test_names_that_would_break_children_are_stalled(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    body = classify()
    body["metadata"]["name"] = "1-" + NAME  # KMock has no admission: the operator checks too
    await kube.create(NS, body)
    stalled = await eventually(
        lambda: (
            [c for c in (status_of(emulator, DT, body["metadata"]["name"]).get("conditions") or [])]
            and status_of(emulator, DT, body["metadata"]["name"])["conditions"]
        ),
        what="status of the badly named task",
    )
    by_type = {c["type"]: c for c in stalled}
    assert by_type["Stalled"]["status"] == "True"
    assert by_type["Stalled"]["message"].startswith("metadata.name must start with a lowercase")
    assert live(emulator, "apps/v1/deployments", f"1-{NAME}-inference") is None


async def test_an_idle_task_writes_no_status(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    await create_and_wait_ready(kube, emulator)

    def polls() -> int:
        return len([p for p in fake.paths("GET") if p.endswith("/state")])

    def status_writes() -> int:
        return sum(
            1
            for r in emulator
            if str(r.method).upper().endswith("PATCH")
            and r.resource is not None
            and r.resource.plural == "distilledtasks"
            and "status" in (r.data or {})
        )

    start = polls()
    await eventually(lambda: polls() >= start + 2, what="two polls")
    writes = status_writes()
    await eventually(lambda: polls() >= start + 6, what="four more polls")
    assert status_writes() == writes, "an unchanged gateway state must not be written again"
    assert "lastPollTime" not in status_of(emulator)
    fake.state["confidence"] = 0.99  # a real change is written
    await eventually(lambda: status_of(emulator).get("confidence") == 0.99)


async def test_a_trainer_without_a_gpu_waits_instead_of_failing(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True)
    job = await eventually(lambda: live(emulator, "batch/v1/jobs", f"{NAME}-v1-train"))
    trainer = job["spec"]["template"]["spec"]["containers"][0]
    gateway_env = [e for e in trainer["env"] if e["name"] == "APPRENTICE_GATEWAY_URL"]
    assert gateway_env == [{"name": "APPRENTICE_GATEWAY_URL", "value": gateway[1]}]  # override
    labels = job["spec"]["template"]["metadata"]["labels"]
    message = "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{NAME}-v1-train-abcde", "namespace": NS, "labels": labels},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                }
            ],
        },
    }
    await kube.create(NS, pod)

    def tj_cond(kind: str) -> dict[str, Any]:
        conds = status_of(emulator, TJ, f"{NAME}-v1").get("conditions") or []
        return next((c for c in conds if c["type"] == kind), {})

    await eventually(lambda: tj_cond("Reconciling").get("reason") == "WaitingForGPU")
    assert message in tj_cond("Reconciling")["message"]
    assert status_of(emulator, TJ, f"{NAME}-v1")["state"] == "Pending"
    training = await eventually(
        lambda: (
            cond(emulator, "Training").get("reason") == "WaitingForGPU"
            and cond(emulator, "Training")
        )
    )
    assert training["status"] == "True" and "waiting for a GPU" in training["message"]
    # The Job controller counts the waiting pod as active (not ready): still waiting, and
    # the scheduler's retries change nothing either: one Event, no second Job.
    job_status = {"status": {"active": 1, "ready": 0}}
    await kube.patch(k8s.JOBS, NS, f"{NAME}-v1-train", job_status, status=True)
    await kube.patch(k8s.PODS, NS, pod["metadata"]["name"], {"metadata": {"labels": {"x": "1"}}})
    polls = len(gateway[0].paths("GET"))
    await eventually(lambda: len(gateway[0].paths("GET")) > polls + 3, what="more polls")
    assert tj_cond("Reconciling")["reason"] == "WaitingForGPU"
    assert len([e for e in events(emulator) if e.get("reason") == "WaitingForGPU"]) == 1
    assert [n for (r, _, n), o in emulator.objects.items() if r.plural == "jobs"] == [
        f"{NAME}-v1-train"
    ]


async def test_training_job_and_model_version_carry_kstatus_conditions(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True)
    await eventually(lambda: live(emulator, "batch/v1/jobs", f"{NAME}-v1-train"))
    # KMock sets no generation: play the API server's part for the TrainingJob.
    await kube.patch(k8s.TRAINING_JOBS, NS, f"{NAME}-v1", {"metadata": {"generation": 1}})
    await kube.patch(
        k8s.JOBS,
        NS,
        f"{NAME}-v1-train",
        {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}},
        status=True,
    )
    await eventually(lambda: status_of(emulator, MV, f"{NAME}-v1").get("state") == "promoted")
    tj = status_of(emulator, TJ, f"{NAME}-v1")
    by_type = {c["type"]: c for c in tj["conditions"]}
    assert (by_type["Ready"]["status"], by_type["Succeeded"]["status"]) == ("True", "True")
    assert (by_type["Reconciling"]["status"], by_type["Stalled"]["status"]) == ("False", "False")
    assert tj["observedGeneration"] == 1
    mv = status_of(emulator, MV, f"{NAME}-v1")
    mv_conds = {c["type"]: c for c in mv["conditions"]}
    assert mv_conds["Ready"]["status"] == "True" and mv_conds["Ready"]["reason"] == "Promoted"
    assert all(
        c["reason"] and c["lastTransitionTime"] for c in [*tj["conditions"], *mv["conditions"]]
    )


async def test_with_a_token_key_the_operator_only_ever_creates_secrets(
    start_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake, url = gateway
    settings = fast_settings(url, defaults=Defaults(admin_token_key="operator-key-from-the-chart"))
    await start_operator(settings)
    body = classify(gateway={})
    task = TaskObject.from_body(body, settings.defaults)
    fake.token = task.generated_token or ""
    await kube.create(NS, body)
    name = task.admin_secret.name
    secret = await eventually(lambda: live(emulator, "v1/secrets", name), what=name)
    assert base64.b64decode(secret["data"]["token"]).decode() == fake.token
    await eventually(lambda: cond(emulator, "Ready").get("status") == "True", what="Ready")
    fake.state.update(training_due=True)  # admin calls with the derived token succeed
    await eventually(lambda: live(emulator, TJ, f"{NAME}-v1"), what="TrainingJob")
    assert fake.unauthorized == 0
    calls = [r for r in emulator if r.resource is not None and r.resource.plural == "secrets"]
    others = [r for r in calls if not str(r.method).upper().endswith("POST")]
    assert others == [], [(r.method, r.url) for r in others]  # no GET, PATCH, PUT, DELETE
    ours = [r for r in calls if (r.data or {}).get("metadata", {}).get("name") == name]
    assert len(ours) >= 2  # created once, then every poll's create is a harmless 409


async def test_a_failed_run_is_not_retried_at_once(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True)
    await eventually(lambda: live(emulator, "batch/v1/jobs", f"{NAME}-v1-train"))
    failed = {"failed": 2, "conditions": [{"type": "Failed", "status": "True", "reason": "x"}]}
    await kube.patch(k8s.JOBS, NS, f"{NAME}-v1-train", {"status": failed}, status=True)
    await eventually(lambda: status_of(emulator, TJ, f"{NAME}-v1").get("state") == "Failed")
    fake.state.update(training_due=True)  # the engine asks again at once
    await eventually(lambda: cond(emulator, "Training").get("reason") == "BackingOff")
    polls = len(fake.paths("GET"))
    await eventually(lambda: len(fake.paths("GET")) > polls + 4, what="more polls")
    assert live(emulator, TJ, f"{NAME}-v2") is None  # 10 minutes' back-off by default
    assert "next attempt after" in cond(emulator, "Training")["message"]
    assert cond(emulator, "Degraded")["reason"] == "TrainingFailed"


async def test_a_deleted_trainer_job_fails_its_run_instead_of_blocking_training(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    fake = gateway[0]
    await create_and_wait_ready(kube, emulator)
    fake.state.update(training_due=True)
    await eventually(lambda: status_of(emulator, TJ, f"{NAME}-v1").get("jobName"))
    await kube.delete(k8s.JOBS, NS, f"{NAME}-v1-train")
    await eventually(lambda: status_of(emulator, TJ, f"{NAME}-v1").get("state") == "Failed")
    assert "no longer exists" in status_of(emulator, TJ, f"{NAME}-v1")["message"]
    await eventually(lambda: cond(emulator, "Training").get("status") == "False")
    finished = [b for m, p, b in fake.calls if p.endswith("/training/finished")]
    assert finished and finished[0]["ok"] is False
