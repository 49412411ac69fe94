"""Pure builders: spec in, manifests out; compared as data."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kube_samples import classify

from apprentice import config
from apprentice.kube import CONFIG_HASH_ANNOTATION, manifests, training_manifests
from apprentice.kube.manifests import Defaults, TaskObject
from apprentice.kube.models import KeyRef

SECURE = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def task(**spec: Any) -> TaskObject:
    return TaskObject.from_body(classify(**spec))


def cpu_task() -> TaskObject:
    return task(
        student={"profile": "cpu", "baseModel": "apprentice/tiny"},
        teacher={"provider": "replay", "replayFrom": {"name": "answers", "key": "a.jsonl"}},
    )


def postgres_task() -> TaskObject:
    return task(
        storage={
            "postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
            "accessMode": "ReadWriteMany",
        },
        gateway={"replicas": 3, "adminTokenSecretRef": {"name": "gateway-admin", "key": "token"}},
    )


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


class TestGatewayConfig:
    def test_is_one_task_in_operator_mode_and_loads_as_apprentice_yaml(self) -> None:
        cm = manifests.get_config_map(task())
        text = cm["data"]["apprentice.yaml"]
        loaded = config.loads(text)
        assert [t.name for t in loaded.tasks] == ["classify_ticket"]
        assert loaded.gateway.orchestrator == "operator"
        assert (loaded.gateway.host, loaded.gateway.port) == ("0.0.0.0", 8080)
        assert loaded.remote.api_key_env == "APPRENTICE_TEACHER_API_KEY"
        assert loaded.local.backend.value == "vllm"
        assert loaded.local.base_url == "http://127.0.0.1:8000/v1"
        assert loaded.budget.daily == 2.0 and loaded.budget.weekly == 10.0
        assert loaded.store.url == "sqlite:////var/lib/apprentice/apprentice.db"

    def test_names_env_vars_never_secret_values(self) -> None:
        t = task(
            teacher={
                "provider": "anthropic",
                "model": "m",
                "secretRef": {"name": "teacher-secret", "key": "the-key"},
            }
        )
        text = manifests.get_config_map(t)["data"]["apprentice.yaml"]
        for word in ("secret", "teacher-secret", "the-key", "gateway-admin"):
            assert word not in text.lower()

    def test_cpu_profile_runs_transformers_and_replay_reads_the_mounted_answers(self) -> None:
        loaded = config.loads(manifests.get_config_map(cpu_task())["data"]["apprentice.yaml"])
        assert loaded.local.backend.value == "transformers" and loaded.local.device == "cpu"
        assert loaded.local.base_url is None
        assert loaded.remote.path == "/etc/apprentice/replay/a.jsonl"

    def test_postgres_store_comes_from_an_env_var(self) -> None:
        text = manifests.get_config_map(postgres_task())["data"]["apprentice.yaml"]
        assert yaml.safe_load(text)["store"] == {"url": "${APPRENTICE_STORE_URL}"}
        loaded = config.loads(text, env={"APPRENTICE_STORE_URL": "postgresql://u@h/db"})
        assert loaded.store.url == "postgresql://u@h/db"

    def test_hash_follows_the_config(self) -> None:
        one = manifests.config_hash(manifests.get_config_map(task()))
        same = manifests.config_hash(manifests.get_config_map(task()))
        other = manifests.config_hash(manifests.get_config_map(task(description="new")))
        assert one == same != other and len(one) == 16


class TestDeployment:
    def test_gpu_pod_runs_vllm_with_runtime_lora_beside_the_gateway(self) -> None:
        d = manifests.get_deployment(task(), "abc")
        c = containers(d)
        assert sorted(c) == ["gateway", "vllm"]
        args = c["vllm"]["args"]
        assert args[:2] == ["--model", "meta-llama/Llama-3.2-1B-Instruct"]
        assert "--enable-lora" in args
        assert args[args.index("--max-lora-rank") + 1] == "64"
        assert env(c["vllm"])["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
        assert c["vllm"]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert c["gateway"]["command"] + c["gateway"]["args"] == [
            "apprentice",
            "serve",
            "-c",
            "/etc/apprentice/apprentice.yaml",
        ]
        assert c["gateway"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["gateway"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == "abc"
        assert d["spec"]["strategy"] == {"type": "Recreate"}

    def test_cpu_profile_runs_only_the_gateway(self) -> None:
        d = manifests.get_deployment(cpu_task(), "abc")
        c = containers(d)
        assert list(c) == ["gateway"]
        pod = d["spec"]["template"]["spec"]
        assert "nvidia.com/gpu" not in str(pod)
        mounts = {m["name"]: m["mountPath"] for m in c["gateway"]["volumeMounts"]}
        assert mounts["replay"] == "/etc/apprentice/replay"
        assert {"name": "replay", "configMap": {"name": "answers"}} in pod["volumes"]

    @pytest.mark.parametrize("build", [task, cpu_task, postgres_task])
    def test_every_pod_is_hardened(self, build: Any) -> None:
        pod = manifests.get_deployment(build(), "h")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert container["securityContext"] == SECURE

    def test_secrets_are_referenced_by_env(self) -> None:
        gw = containers(manifests.get_deployment(postgres_task(), "h"))["gateway"]
        assert env(gw) == {
            "APPRENTICE_ADMIN_TOKEN": {"secretKeyRef": {"name": "gateway-admin", "key": "token"}},
            "HOME": "/tmp",
            "APPRENTICE_TEACHER_API_KEY": {"secretKeyRef": {"name": "anthropic", "key": "api-key"}},
            "APPRENTICE_STORE_URL": {"secretKeyRef": {"name": "db", "key": "dsn"}},
        }

    def test_replicas_with_postgres_roll_one_at_a_time(self) -> None:
        d = manifests.get_deployment(postgres_task(), "h")
        assert d["spec"]["replicas"] == 3
        assert d["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}

    def test_operator_gpu_defaults_apply_unless_the_task_sets_placement(self) -> None:
        defaults = Defaults(
            gpu_node_selector={"gpu": "yes"},
            pull_secrets=("regcred",),
            gpu_tolerations=[{"key": "gpu", "operator": "Exists"}],
        )
        body = classify()
        pod = manifests.get_deployment(TaskObject.from_body(body, defaults), "h")["spec"][
            "template"
        ]["spec"]
        assert pod["nodeSelector"] == {"gpu": "yes"}
        assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        own = copy.deepcopy(body)
        own["spec"]["student"]["nodeSelector"] = {"pool": "l4"}
        pod = manifests.get_deployment(TaskObject.from_body(own, defaults), "h")["spec"][
            "template"
        ]["spec"]
        assert pod["nodeSelector"] == {"pool": "l4"}

    def test_operator_postgres_default_is_used_by_tasks_without_a_store(self) -> None:
        defaults = Defaults(postgres=KeyRef(name="shared-db", key="dsn"))
        t = TaskObject.from_body(classify(), defaults)
        gw = containers(manifests.get_deployment(t, "h"))["gateway"]
        assert env(gw)["APPRENTICE_STORE_URL"] == {
            "secretKeyRef": {"name": "shared-db", "key": "dsn"}
        }


class TestChildren:
    def test_every_child_is_owned_and_labelled(self) -> None:
        kids = manifests.build_children(task())
        assert [k["kind"] for k in kids] == [
            "ConfigMap",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
        ]
        for kid in kids:
            meta = kid["metadata"]
            assert meta["ownerReferences"][0]["uid"] == "uid-dt-1"
            assert meta["labels"]["apprentice.dev/task"] == "classify-ticket"
            assert meta["namespace"] == "ns1"

    def test_service_selects_the_inference_pods(self) -> None:
        t = task()
        svc, deploy = manifests.get_service(t), manifests.get_deployment(t, "h")
        assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
        assert svc["spec"]["ports"] == [
            {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
        ]

    def test_pvc_size_class_and_mode(self) -> None:
        pvc = manifests.get_pvc(
            task(storage={"size": "5Gi", "storageClassName": "fast", "accessMode": "ReadWriteMany"})
        )
        assert pvc["spec"] == {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "fast",
            "resources": {"requests": {"storage": "5Gi"}},
        }


class TestTraining:
    def test_job_runs_the_trainer_with_gpu_limits_and_deadlines(self) -> None:
        t = task(
            training={
                "backoffLimit": 2,
                "activeDeadlineSeconds": 600,
                "ttlSecondsAfterFinished": 60,
            }
        )
        job = training_manifests.get_job(t, "classify-ticket-v2", "uid-tj", "v2", "http://gw:8080")
        assert job["metadata"]["ownerReferences"][0] == {
            "apiVersion": "apprentice.dev/v1alpha1",
            "kind": "TrainingJob",
            "name": "classify-ticket-v2",
            "uid": "uid-tj",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        spec = job["spec"]
        assert (
            spec["backoffLimit"],
            spec["activeDeadlineSeconds"],
            spec["ttlSecondsAfterFinished"],
        ) == (2, 600, 60)
        pod = spec["template"]["spec"]
        (trainer,) = pod["containers"]
        assert trainer["command"] == ["python", "-m", "apprentice.training.job"]
        assert "args" not in trainer
        variables = env(trainer)
        assert {
            k: variables[k]
            for k in (
                "APPRENTICE_GATEWAY_URL",
                "APPRENTICE_TASK",
                "APPRENTICE_OUTPUT_DIR",
                "APPRENTICE_BASE_MODEL",
                "APPRENTICE_FINE_TUNE_BACKEND",
                "APPRENTICE_DEVICE",
            )
        } == {
            "APPRENTICE_GATEWAY_URL": "http://gw:8080",
            "APPRENTICE_TASK": "classify_ticket",
            "APPRENTICE_OUTPUT_DIR": "/var/lib/apprentice/models/classify_ticket/v2",
            "APPRENTICE_BASE_MODEL": "meta-llama/Llama-3.2-1B-Instruct",
            "APPRENTICE_FINE_TUNE_BACKEND": "huggingface",
            "APPRENTICE_DEVICE": "cuda",
        }
        assert config.TrainingConfig.model_validate_json(variables["APPRENTICE_TRAINING"]) == (
            t.spec.training.hyperparameters
        )
        assert trainer["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert env(trainer)["APPRENTICE_ADMIN_TOKEN"] == {
            "secretKeyRef": {"name": "gateway-admin", "key": "token"}
        }
        assert pod["restartPolicy"] == "Never"
        assert {
            "name": "data",
            "persistentVolumeClaim": {"claimName": "classify-ticket-data"},
        } in pod["volumes"]

    def test_training_job_and_model_version_are_owned_by_the_task(self) -> None:
        t = task()
        tj = training_manifests.get_training_job(t, "v3", reason="coaching", examples=40)
        assert tj["spec"] == {
            "taskRef": "classify-ticket",
            "task": "classify_ticket",
            "version": "v3",
            "reason": "coaching",
            "examples": 40,
        }
        mv = training_manifests.get_model_version(t, tj["metadata"]["name"], "v3", {"loss": 1})
        assert mv["spec"]["path"] == "/var/lib/apprentice/models/classify_ticket/v3"
        for obj in (tj, mv):
            assert obj["metadata"]["ownerReferences"][0]["kind"] == "DistilledTask"


@pytest.mark.parametrize("build", [task, cpu_task, postgres_task])
def test_built_manifests_validate_against_kubernetes_schemas(build: Any) -> None:
    t = build()
    objs = [
        *manifests.build_children(t),
        manifests.get_admin_secret(t, "x" * 32),
        training_manifests.get_job(t, "tj", "uid", "v1", "http://gw:8080"),
    ]
    for obj in objs:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


class TestTopologyAndTokens:
    """Issue 8 items 8 and 9: RWO co-scheduling, the Hugging Face token, torch without passwd."""

    def test_rwo_volume_puts_the_trainer_on_the_inference_node(self) -> None:
        job = training_manifests.get_job(task(), "classify-ticket-v1", "u", "v1", "http://gw")
        rule = job["spec"]["template"]["spec"]["affinity"]["podAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        deployment = manifests.get_deployment(task(), "h")
        assert rule == [
            {
                "labelSelector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]},
                "topologyKey": "kubernetes.io/hostname",
            }
        ]
        shared = training_manifests.get_job(postgres_task(), "classify-ticket-v1", "u", "v1", "g")
        assert "affinity" not in shared["spec"]["template"]["spec"]

    def test_hf_token_is_a_secret_reference_in_vllm_and_the_trainer(self) -> None:
        ref = {"name": "huggingface", "key": "token"}
        t = task(student={"baseModel": "meta-llama/Llama-3.2-1B-Instruct", "hfTokenSecretRef": ref})
        want = {"secretKeyRef": ref}
        assert env(containers(manifests.get_deployment(t, "h"))["vllm"])["HF_TOKEN"] == want
        job = training_manifests.get_job(t, "classify-ticket-v1", "u", "v1", "http://gw")
        assert env(job["spec"]["template"]["spec"]["containers"][0])["HF_TOKEN"] == want
        assert "HF_TOKEN" not in env(containers(manifests.get_deployment(task(), "h"))["vllm"])

    def test_vllm_runs_as_a_user_without_a_passwd_entry(self) -> None:
        vllm = containers(manifests.get_deployment(task(), "h"))["vllm"]
        values = env(vllm)
        assert (values["USER"], values["LOGNAME"], values["HOME"]) == ("apprentice",) * 2 + (
            "/tmp",
        )
        for key in ("TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME", "TRITON_CACHE_DIR"):
            assert values[key].startswith("/tmp/")
        assert values["VLLM_CACHE_ROOT"].startswith("/var/lib/apprentice/")
        assert vllm["securityContext"] == SECURE
        names = [e["name"] for e in vllm["env"]]
        assert len(names) == len(set(names))

    def test_generated_token_changes_roll_the_pods(self) -> None:
        t = task(gateway={})
        plain = manifests.build_children(t)[2]
        keyed = manifests.build_children(t, "derived-token")[2]
        annotation = CONFIG_HASH_ANNOTATION
        assert (
            plain["spec"]["template"]["metadata"]["annotations"][annotation]
            != keyed["spec"]["template"]["metadata"]["annotations"][annotation]
        )
        assert "derived-token" not in str(keyed)
