"""The operator against a real API server, with exactly the chart's RBAC.

The chart is installed with default values; the operator then runs here as
``python -m apprentice.kube.operator`` (the chart's container args) with the chart
Deployment's env and a TokenRequest token of the chart's ServiceAccount, so every call it
makes is authorised by the chart's ClusterRole and nothing else. ``APPRENTICE_GATEWAY_URL``
(the documented test/dev override of every task's in-cluster gateway address) points it
at the task pod's gateway container, run here as a real ``apprentice serve`` process.
The tests run in file order: the last compares the verbs the operator used (the audit
log) with the chart's rules.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cluster_procs import (
    LocalContainer,
    Process,
    env_value,
    free_port,
    operator_env,
    start,
    start_operator,
    token_kubeconfig,
)
from cluster_support import CHART, EXAMPLES, GROUP, ROOT, Cluster, eventually, load_docs

from apprentice.kube.objects import ADMIN_TOKEN_ENV

RELEASE = "apprentice"
NS = "apprentice-system"
TASKS = "op-tasks"
TASK = "ticket-triage-cpu"
TASK_LABEL = f"{GROUP}/task"
ANSWERS = ROOT / "examples" / "demo" / "answers.jsonl"
#: The operator re-applies a deleted or edited child within this many seconds.
RESTORE_WITHIN_S = 30.0
#: Training starts at 100 examples, and validation (held-out score >= phase2ToPhase3)
#: passes at 0.02, one field right in 12 held-out answers: these tests check the
#: Kubernetes flow (TrainingJob -> Job -> ModelVersion -> promoted), not the tiny student.
THRESHOLDS = {
    "phase1ToPhase2": 100,
    "phase2ToPhase3": 0.02,
    "coachingTrigger": 0.01,
    "emergencyThreshold": 0.0,
}
#: The trainer's cap on optimiser steps (``APPRENTICE_MAX_STEPS``). The tiny model's own
#: minimum, 360 steps, took 15 minutes on a loaded machine; at 40 steps none of its
#: answers parsed (held-out 0.0), at 80 all did (0.23 agreement on 30 tickets).
TRAIN_STEPS = 100
#: Distinct examples sent before training: past phase1ToPhase2.
TRAIN_ON = 110
CHILDREN = {
    "configmap": f"{TASK}-gateway-config",
    "persistentvolumeclaim": f"{TASK}-data",
    "deployment": f"{TASK}-inference",
    "service": f"{TASK}-gateway",
}


#: The tokens this module's operator processes used: the audit test reads only their calls.
ISSUED: set[str] = set()


@dataclass
class Operator:
    proc: Process
    env: dict[str, str]
    kubeconfig: Path
    username: str
    workdir: Path

    @property
    def identity(self) -> str:
        return self.env["POD_NAME"]  # kopf's peering identity (the chart sets it per pod)

    @property
    def credential(self) -> str:
        """The audit log's credential-id of this process's token (its JWT ``jti``)."""
        token = json.loads(self.kubeconfig.read_text())["users"][0]["user"]["token"]
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return f"JTI={claims['jti']}"


def _owned_crds(cluster: Cluster) -> None:
    """CRDs a Helm release can adopt: delete those another installer left."""
    for plural in ("distilledtasks", "trainingjobs", "modelversions"):
        crd = cluster.get("crd", f"{plural}.{GROUP}")
        notes = (crd or {}).get("metadata", {}).get("annotations", {})
        if crd and notes.get("meta.helm.sh/release-namespace") != NS:
            cluster.delete_crds([f"{plural}.{GROUP}"])


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """The chart, default values; yields its operator Deployment."""
    if cluster.get("namespace", NS) is None:
        cluster.create_namespace(NS)
    _owned_crds(cluster)
    cluster.helm("upgrade", "--install", RELEASE, str(CHART), "-n", NS, "--wait", "--timeout=3m")
    deploys = cluster.items("deployment", NS, f"app.kubernetes.io/instance={RELEASE}")
    assert len(deploys) == 1
    yield deploys[0]
    cluster.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout=2m")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator")


@pytest.fixture(scope="module")
def gateway_port() -> int:
    return free_port()


def _start(
    cluster: Cluster, release: dict[str, Any], workdir: Path, port: int, name: str
) -> Operator:
    sa = release["spec"]["template"]["spec"]["serviceAccountName"]
    kubeconfig = token_kubeconfig(cluster, sa, NS, workdir / f"{name}.kubeconfig")
    env = operator_env(
        cluster,
        release,
        f"{name}-local",
        APPRENTICE_GATEWAY_URL=f"http://127.0.0.1:{port}",
        APPRENTICE_POLL_INTERVAL="1",
        APPRENTICE_HEALTH_PORT=str(free_port()),
        APPRENTICE_METRICS_PORT=str(free_port()),
    )
    proc = start_operator(workdir, kubeconfig, env, name)
    op = Operator(proc, env, kubeconfig, f"system:serviceaccount:{NS}:{sa}", workdir)
    ISSUED.add(op.credential)
    return op


@pytest.fixture(scope="module")
def operator(
    cluster: Cluster, release: dict[str, Any], workdir: Path, gateway_port: int
) -> Iterator[Operator]:
    op = _start(cluster, release, workdir, gateway_port, "operator")
    try:
        yield op
    finally:
        op.proc.stop()


def _pods(cluster: Cluster, task: str) -> list[dict[str, Any]]:
    return [
        p
        for p in cluster.items("pod", TASKS, f"{TASK_LABEL}={task}")
        if not p["metadata"].get("deletionTimestamp")
    ]


@pytest.fixture(scope="module")
def gateway(
    cluster: Cluster, operator: Operator, workdir: Path, gateway_port: int
) -> Iterator[Process]:
    """The CPU example applied; its pod's gateway container running here."""
    cluster.create_namespace(TASKS)
    docs = load_docs(EXAMPLES / "cpu-replay-task.yaml")
    for doc in docs:  # as e2e/ does: every recorded answer, so training can start
        if doc["kind"] == "ConfigMap":
            doc["data"] = {"answers.jsonl": ANSWERS.read_text()}
        else:  # this tests the Kubernetes flow, not the tiny model (bench/results/training.md)
            doc["spec"]["confidenceThresholds"] = THRESHOLDS
    cluster.apply(docs, TASKS)
    eventually(lambda: _pods(cluster, TASK), 90, f"a pod of {TASK}")
    cluster.kubectl(
        "wait", "--for=condition=Ready", "pod", "-l", f"{TASK_LABEL}={TASK}", "-n", TASKS,
        "--timeout=120s",
    )  # fmt: skip
    pod = _pods(cluster, TASK)[0]
    argv, env = LocalContainer(cluster, TASKS, pod["spec"], workdir / "gateway").prepare("gateway")
    argv += ["--host", "127.0.0.1", "--port", str(gateway_port)]
    proc = start("gateway", argv, env, workdir / "gateway.log", workdir)

    def listening() -> bool:
        assert proc.alive(), f"the gateway exited:\n{proc.tail()}"
        return "listening on" in proc.tail()

    try:
        eventually(listening, 180, "the gateway to listen")
        yield proc
        # While the operator still runs, so it releases its finalizers (the GC tests check
        # that it does; here a leftover is only cleaned up).
        for kind in ("distilledtasks", "trainingjobs", "modelversions"):
            cluster.try_kubectl(
                "delete", kind, "--all", "-n", TASKS, "--wait=true", "--timeout=60s"
            )
        cluster.release_finalizers(TASKS)
    finally:
        proc.stop()


def _dt(cluster: Cluster, name: str = TASK) -> dict[str, Any]:
    body = cluster.get("distilledtask", name, TASKS)
    assert body is not None, f"DistilledTask {name} missing"
    return body


def _condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in body.get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return dict(cond)
    return {}


def test_task_pods_run_and_ready_reflects_the_real_gateway(
    cluster: Cluster, gateway: Process, gateway_port: int, api_key: str
) -> None:
    for kind, name in CHILDREN.items():
        child = cluster.get(kind, name, TASKS)
        assert child is not None, f"{kind}/{name} not created"
        owners = child["metadata"].get("ownerReferences", [])
        assert [o["kind"] for o in owners] == ["DistilledTask"], owners
    pod = _pods(cluster, TASK)[0]
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"].startswith("kwok-")
    cluster.kubectl(
        "wait", "--for=condition=Ready", f"dt/{TASK}", "-n", TASKS, "--timeout=120s", timeout=150
    )
    # Traffic through the real gateway (the replay teacher answers, at a price) ...
    state = _traffic(gateway_port, ANSWERS.read_text().splitlines()[:6], api_key)
    assert state["spend"]["today"] > 0
    # ... shows in the DistilledTask's status: phase, confidence and spend from the gateway.

    def mirrored() -> dict[str, Any] | None:
        status = _dt(cluster).get("status", {})
        spend = status.get("spend", {}).get("today")
        return status if spend == pytest.approx(state["spend"]["today"]) else None

    status = eventually(mirrored, 30, "the gateway's spend in status")
    assert status["phase"] == state["phase"]
    assert status.get("confidence") == state.get("confidence")
    assert status["examples"]["train"] + status["examples"]["heldout"] >= 1


@pytest.fixture(scope="module")
def api_key(cluster: Cluster, gateway: Process, gateway_port: int) -> str:
    """A client's API key for the task: the chart turns keys on (gateway.requireApiKeys),
    so a caller needs one; made with the admin token the pod's gateway reads."""
    pod = _pods(cluster, TASK)[0]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "gateway")
    item = next(e for e in container["env"] if e["name"] == ADMIN_TOKEN_ENV)
    reply = httpx.post(
        f"http://127.0.0.1:{gateway_port}/admin/keys",
        json={"tasks": ["classify_ticket"], "name": "cluster-tests"},
        headers={"Authorization": f"Bearer {env_value(cluster, TASKS, item)}"},
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["key"])


def _traffic(port: int, lines: list[str], key: str) -> dict[str, Any]:
    """Requests through the real gateway, as a client with its API key; returns the task
    state afterwards."""
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=auth) as http:
        for line in lines:
            body = {"input": json.loads(line)["input"]}
            reply = http.post("/v1/tasks/classify_ticket", json=body)
            assert reply.status_code == 200, reply.text
        state: dict[str, Any] = http.get("/v1/tasks/classify_ticket/state").json()
    return state


def _uid(cluster: Cluster, kind: str, name: str) -> str | None:
    obj = cluster.get(kind, name, TASKS)
    return None if obj is None else str(obj["metadata"]["uid"])


@pytest.mark.parametrize("kind", ["service", "configmap", "deployment"])
def test_a_deleted_child_is_recreated(cluster: Cluster, gateway: Process, kind: str) -> None:
    name = CHILDREN[kind]
    before = _uid(cluster, kind, name)
    assert before is not None
    cluster.kubectl("delete", kind, name, "-n", TASKS, "--wait=true")

    def recreated() -> bool:
        now = _uid(cluster, kind, name)
        return now is not None and now != before

    eventually(recreated, RESTORE_WITHIN_S, f"{kind}/{name} recreated")


def test_a_hand_edited_child_is_restored(cluster: Cluster, gateway: Process) -> None:
    name = CHILDREN["deployment"]

    def image() -> str:
        deploy = cluster.get("deployment", name, TASKS)
        assert deploy is not None
        return str(deploy["spec"]["template"]["spec"]["containers"][0]["image"])

    original = image()
    patch = [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "x:1"}]
    cluster.kubectl(
        "patch", "deployment", name, "-n", TASKS, "--type=json", "-p", json.dumps(patch)
    )
    assert image() == "x:1"
    eventually(lambda: image() == original, RESTORE_WITHIN_S, "the Deployment's image restored")


def test_an_invalid_edit_ends_stalled_with_the_observed_generation(
    cluster: Cluster, gateway: Process
) -> None:
    patch = {"spec": {"matchFields": ["category", "no_such_field"]}}
    cluster.kubectl("patch", "dt", TASK, "-n", TASKS, "--type=merge", "-p", json.dumps(patch))
    generation = _dt(cluster)["metadata"]["generation"]

    def stalled() -> dict[str, Any] | None:
        body = _dt(cluster)
        cond = _condition(body, "Stalled")
        observed = body.get("status", {}).get("observedGeneration")
        return body if cond.get("status") == "True" and observed == generation else None

    body = eventually(stalled, 30, "Stalled=True at the new generation")
    assert "no_such_field" in _condition(body, "Stalled").get("message", "")
    assert _condition(body, "Stalled").get("observedGeneration") == generation
    fix = {"spec": {"matchFields": ["category", "priority"]}}
    cluster.kubectl("patch", "dt", TASK, "-n", TASKS, "--type=merge", "-p", json.dumps(fix))
    fixed = _dt(cluster)["metadata"]["generation"]

    def recovered() -> bool:
        body = _dt(cluster)
        return (
            _condition(body, "Stalled").get("status") == "False"
            and body.get("status", {}).get("observedGeneration") == fixed
        )

    eventually(recovered, 30, "Stalled=False after the fix")


def test_a_storage_switch_and_back_leaves_no_stale_fields(
    cluster: Cluster, gateway: Process
) -> None:
    name = CHILDREN["deployment"]

    def strategy() -> dict[str, Any]:
        deploy = cluster.get("deployment", name, TASKS)
        assert deploy is not None
        return dict(deploy["spec"]["strategy"])

    assert strategy() == {"type": "Recreate"}
    to_pg = {"spec": {"storage": {"postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}}}}}
    cluster.kubectl("patch", "dt", TASK, "-n", TASKS, "--type=merge", "-p", json.dumps(to_pg))
    eventually(lambda: strategy()["type"] == "RollingUpdate", RESTORE_WITHIN_S, "RollingUpdate")
    back = [{"op": "remove", "path": "/spec/storage/postgres"}]
    cluster.kubectl("patch", "dt", TASK, "-n", TASKS, "--type=json", "-p", json.dumps(back))
    eventually(lambda: strategy() == {"type": "Recreate"}, RESTORE_WITHIN_S, "Recreate, alone")
    deploy = cluster.get("deployment", name, TASKS)
    assert deploy is not None
    env = {e["name"] for c in deploy["spec"]["template"]["spec"]["containers"] for e in c["env"]}
    assert "APPRENTICE_STORE_URL" not in env


def test_deleting_a_task_releases_the_finalizer_and_collects_its_children(
    cluster: Cluster, gateway: Process
) -> None:
    body = yaml.safe_load_all((EXAMPLES / "cpu-replay-task.yaml").read_text())
    task = next(d for d in body if d and d["kind"] == "DistilledTask")
    task["metadata"] = {"name": "gc-probe", "namespace": TASKS}
    cluster.apply(task, TASKS)
    eventually(lambda: _pods(cluster, "gc-probe"), 60, "a pod of gc-probe")
    owned = {k: n.replace(TASK, "gc-probe") for k, n in CHILDREN.items()}
    for kind, name in owned.items():
        assert cluster.get(kind, name, TASKS) is not None, f"{kind}/{name}"
    # --wait returns only once the operator has released its finalizer.
    cluster.kubectl("delete", "dt", "gc-probe", "-n", TASKS, "--wait=true", "--timeout=60s")

    def collected() -> bool:
        left = [k for k, n in owned.items() if cluster.get(k, n, TASKS) is not None]
        return not left and not _pods(cluster, "gc-probe")

    eventually(collected, 60, "the garbage collector to remove gc-probe's children and pods")


def test_a_restarted_operator_resumes(
    cluster: Cluster, release: dict[str, Any], operator: Operator, gateway: Process
) -> None:
    operator.proc.stop()
    name = CHILDREN["service"]
    before = _uid(cluster, "service", name)
    cluster.kubectl("delete", "service", name, "-n", TASKS, "--wait=true")
    assert _uid(cluster, "service", name) is None
    restarted = start_operator(operator.workdir, operator.kubeconfig, operator.env, "operator-2")
    operator.proc = restarted  # the module's fixture stops this one
    eventually(
        lambda: _uid(cluster, "service", name) not in (None, before),
        RESTORE_WITHIN_S,
        "the Service recreated by the restarted operator",
    )


def test_two_replicas_with_peering_take_turns(
    cluster: Cluster,
    release: dict[str, Any],
    operator: Operator,
    gateway: Process,
    workdir: Path,
    gateway_port: int,
) -> None:
    """Both replicas join the peering; only the higher-priority one acts."""
    peering = operator.env["APPRENTICE_PEERING"]
    assert peering, "the chart's default values enable peering"
    second = _start(cluster, release, workdir, gateway_port, "replica-2")
    try:

        def both() -> dict[str, Any] | None:
            status = (cluster.get("clusterkopfpeering", peering) or {}).get("status") or {}
            return status if {operator.identity, second.identity} <= set(status) else None

        status = eventually(both, 30, "both replicas in the ClusterKopfPeering")
        first_prio = status[operator.identity]["priority"]
        second_prio = status[second.identity]["priority"]
        assert first_prio != second_prio
        active = operator if first_prio > second_prio else second
        seen = sum(1 for _ in cluster.audit_events())
        name = CHILDREN["service"]
        before = _uid(cluster, "service", name)
        cluster.kubectl("delete", "service", name, "-n", TASKS, "--wait=true")
        eventually(
            lambda: _uid(cluster, "service", name) not in (None, before),
            RESTORE_WITHIN_S,
            "the Service recreated by the active replica",
        )
        writers = {
            event["user"]
            .get("extra", {})
            .get("authentication.kubernetes.io/credential-id", [""])[0]
            for event in list(cluster.audit_events())[seen:]
            if (event.get("objectRef") or {}).get("resource") == "services"
            and event["objectRef"].get("name") == name
            and event["verb"] in ("create", "patch", "update")
            and event["user"]["username"] == operator.username
        }
        assert writers == {active.credential}, (writers, active.identity)
    finally:
        second.proc.stop()


def test_training_job_to_promoted_model_version(
    cluster: Cluster, gateway: Process, workdir: Path, gateway_port: int, api_key: str
) -> None:
    """TrainingJob -> batch/v1 Job -> (its container run here) -> ModelVersion -> promoted."""
    _traffic(gateway_port, ANSWERS.read_text().splitlines()[:TRAIN_ON], api_key)  # past phase 1
    tjs = eventually(
        lambda: cluster.items("trainingjob", TASKS, f"{TASK_LABEL}={TASK}"), 60, "a TrainingJob"
    )
    tj = tjs[0]["metadata"]["name"]
    selector = f"{GROUP}/training-job={tj}"
    jobs = eventually(lambda: cluster.items("job", TASKS, selector), 60, f"the Job of {tj}")
    job = jobs[0]["metadata"]["name"]
    assert jobs[0]["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"
    pods = eventually(lambda: cluster.items("pod", TASKS, f"job-name={job}"), 60, "its pod")
    pod = pods[0]["metadata"]["name"]
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "-n", TASKS, "--timeout=60s")
    # kwok runs no container: run the trainer's own command here, with the Job's env.
    local = LocalContainer(cluster, TASKS, pods[0]["spec"], workdir / "trainer")
    argv, env = local.prepare("trainer")
    env["APPRENTICE_GATEWAY_URL"] = f"http://127.0.0.1:{gateway_port}"  # the Service, here
    env["APPRENTICE_MAX_STEPS"] = str(TRAIN_STEPS)
    log = workdir / "trainer.log"
    with log.open("wb") as out:
        trainer = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=600)
    assert trainer.returncode == 0, log.read_text()[-4000:]
    cluster.kubectl("annotate", "pod", pod, "-n", TASKS, "cluster.apprentice.dev/complete=true")
    cluster.kubectl("wait", "--for=condition=Complete", f"job/{job}", "-n", TASKS, "--timeout=60s")

    def promoted() -> dict[str, Any] | None:
        for mv in cluster.items("modelversion", TASKS, f"{TASK_LABEL}={TASK}"):
            state = mv.get("status", {}).get("state")
            assert state != "rejected", f"validation rejected it: {mv.get('status')}"
            if state == "promoted":
                return mv
        return None

    mv = eventually(promoted, 300, "a promoted ModelVersion")  # validation runs the student
    version = mv["spec"]["version"]
    done = cluster.get("trainingjob", tj, TASKS)
    assert done is not None and done["status"]["state"] == "Succeeded"
    eventually(
        lambda: _dt(cluster).get("status", {}).get("activeModelVersion") == version,
        30,
        f"status.activeModelVersion {version}",
    )


def test_a_crashed_trainer_fails_its_training_job_and_the_version_keeps_serving(
    cluster: Cluster, gateway: Process
) -> None:
    active = _dt(cluster).get("status", {}).get("activeModelVersion")
    assert active, "runs after the promotion test"
    owner = _dt(cluster)["metadata"]
    tj = {  # made by hand: no labels (the operator adds them), owned by the task (GC)
        "apiVersion": "apprentice.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {
            "name": f"{TASK}-crash",
            "namespace": TASKS,
            "ownerReferences": [
                {
                    "apiVersion": "apprentice.dev/v1alpha1",
                    "kind": "DistilledTask",
                    "name": owner["name"],
                    "uid": owner["uid"],
                }
            ],
        },
        "spec": {"taskRef": TASK, "task": "classify_ticket", "version": "v99"},
    }
    cluster.apply(tj, TASKS)
    selector = f"{GROUP}/training-job={TASK}-crash"
    jobs = eventually(lambda: cluster.items("job", TASKS, selector), 60, "the crash Job")
    job = jobs[0]["metadata"]["name"]

    def failed() -> bool:  # every pod the Job starts (backoffLimit + 1) crashes
        for pod in cluster.items("pod", TASKS, f"job-name={job}"):
            notes = pod["metadata"].get("annotations", {})
            if pod["status"].get("phase") == "Running" and not notes:
                cluster.kubectl(
                    "annotate", "pod", pod["metadata"]["name"], "-n", TASKS,
                    "cluster.apprentice.dev/complete=false",
                    "cluster.apprentice.dev/message=CUDA out of memory (simulated)",
                )  # fmt: skip
        state = (cluster.get("trainingjob", f"{TASK}-crash", TASKS) or {}).get("status", {})
        return state.get("state") == "Failed"

    eventually(failed, 120, "the TrainingJob Failed")
    done = cluster.get("trainingjob", f"{TASK}-crash", TASKS)
    assert done is not None
    assert "CUDA out of memory (simulated)" in done["status"]["message"]
    body = _dt(cluster)
    assert _condition(body, "Degraded").get("status") == "True"
    assert body["status"]["activeModelVersion"] == active


def test_deleting_the_trained_task_orphans_no_job(cluster: Cluster, gateway: Process) -> None:
    """DistilledTask -> TrainingJobs -> Jobs -> pods, and ModelVersions: all collected."""
    selector = f"{TASK_LABEL}={TASK}"
    assert cluster.items("job", TASKS, selector), "runs after the training tests"
    cluster.kubectl("delete", "dt", TASK, "-n", TASKS, "--wait=true", "--timeout=60s")

    def gone() -> list[str]:
        left = [
            f"{kind}/{obj['metadata']['name']}"
            for kind in ("trainingjob", "modelversion", "job", "pod", "deployment", "service")
            for obj in cluster.items(kind, TASKS, selector)
        ]
        return left

    eventually(lambda: not gone(), 90, "every object of the task collected")


def _granted(cluster: Cluster) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) the chart grants its ServiceAccount."""
    manifest = cluster.helm("get", "manifest", RELEASE, "-n", NS)
    granted: set[tuple[str, str, str]] = set()
    for doc in yaml.safe_load_all(manifest):
        if doc and doc["kind"] in ("ClusterRole", "Role"):
            for rule in doc.get("rules", []):
                for group in rule.get("apiGroups", []):
                    for resource in rule.get("resources", []):
                        for verb in rule.get("verbs", []):
                            granted.add((group, resource, verb))
    return granted


#: What every authenticated user may do (system:basic-user), not the chart's to grant.
DEFAULT_ALLOWED = {
    ("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "create"),
    ("authentication.k8s.io", "selfsubjectreviews", "create"),
}


def _used(cluster: Cluster, username: str) -> tuple[set[tuple[str, str, str]], list[str]]:
    """(apiGroup, resource, verb) the operator was authorised for, and what it was refused.

    Besides each request's own verb, two checks the API server makes leave no audit event
    of their own, so they are read off the request that caused them: a server-side apply
    (PATCH) that created its object (201) was also authorised as ``create``; creating an
    object whose ownerReference has ``blockOwnerDeletion`` was authorised (admission plugin
    OwnerReferencesPermissionEnforcement) as ``update`` on the owner's ``finalizers``.
    """
    used: set[tuple[str, str, str]] = set()
    denied: list[str] = []
    for event in cluster.audit_events():
        ref = event.get("objectRef")
        user = event["user"]
        token = user.get("extra", {}).get("authentication.kubernetes.io/credential-id", [""])[0]
        if user["username"] != username or token not in ISSUED or not ref:
            continue
        group = ref.get("apiGroup", "")
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        code = event.get("responseStatus", {}).get("code")
        used.add((group, resource, event["verb"]))
        decision = event.get("annotations", {}).get("authorization.k8s.io/decision")
        if decision == "forbid":  # RBAC said no (not, say, a namespace being deleted)
            denied.append(f"{(group, resource, event['verb'])} in {ref.get('namespace', '-')}")
        if code != 201:
            continue
        used.add((group, resource, "create"))
        body = event.get("requestObject") or {}
        for owner in (body.get("metadata") or {}).get("ownerReferences") or []:
            if owner.get("blockOwnerDeletion"):
                owner_group = owner["apiVersion"].rpartition("/")[0]
                used.add((owner_group, f"{owner['kind'].lower()}s/finalizers", "update"))
    return used, denied


def test_the_operator_used_exactly_the_verbs_the_chart_grants(
    cluster: Cluster, operator: Operator, gateway: Process
) -> None:
    used, denied = _used(cluster, operator.username)
    granted = _granted(cluster)
    assert used, "no audit events of the operator: is the audit log on?"
    assert not denied, f"requests the chart's RBAC refused (missing grants): {sorted(set(denied))}"
    assert used - granted <= DEFAULT_ALLOWED, f"used but not granted: {used - granted}"
    unused = granted - used
    assert not unused, f"granted but never used by the operator: {sorted(unused)}"
