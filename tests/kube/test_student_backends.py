"""A DistilledTask may name any student backend of the config; gpu->vllm, cpu->transformers
stay the defaults. The pod and the gateway's ``local:`` block follow the backend named."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kube_samples import classify
from kube_support import NS, eventually, live
from pydantic import ValidationError

from apprentice.config import StudentBackend
from apprentice.kube import client as k8s
from apprentice.kube import crds
from apprentice.kube.manifests import TaskObject, build_children

BASE = "meta-llama/Llama-3.2-1B-Instruct"
#: One student per backend of the config, as a DistilledTask names it.
STUDENTS: dict[StudentBackend, dict[str, Any]] = {
    StudentBackend.vllm: {"profile": "gpu", "backend": "vllm", "baseModel": BASE},
    StudentBackend.transformers: {"profile": "gpu", "backend": "transformers", "baseModel": BASE},
    StudentBackend.ollama: {
        "profile": "cpu",
        "backend": "ollama",
        "baseModel": BASE,
        "baseUrl": "http://ollama.models:11434",
    },
    StudentBackend.llama_cpp: {
        "profile": "cpu",
        "backend": "llama_cpp",
        "baseModel": BASE,
        "baseUrl": "http://llama-server.models:8080",
    },
    StudentBackend.openai: {
        "profile": "cpu",
        "backend": "openai",
        "baseModel": "gpt-4o-mini-2024-07-18",
        "apiKeySecretRef": {"name": "openai", "key": "api-key"},
    },
}


def body_for(backend: StudentBackend) -> dict[str, Any]:
    body = classify(student=STUDENTS[backend])
    if backend is StudentBackend.openai:  # an OpenAI fine-tune is served by OpenAI only
        body["spec"]["training"] = {"fineTuneBackend": "openai"}
    return body


def children(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["kind"]: m for m in build_children(TaskObject.from_body(body), "token")}


def gateway_local(children_: dict[str, dict[str, Any]]) -> dict[str, Any]:
    config = yaml.safe_load(children_["ConfigMap"]["data"]["apprentice.yaml"])
    return dict(config["local"])


def containers(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}


def test_the_crd_enum_is_the_configs_backends() -> None:
    spec = crds.all_crds()["DistilledTask"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    student = spec["properties"]["spec"]["properties"]["student"]["properties"]
    assert student["backend"]["enum"] == [b.value for b in StudentBackend]
    assert set(STUDENTS) == set(StudentBackend), "a backend without a case here"


@pytest.mark.parametrize("backend", list(StudentBackend), ids=lambda b: b.value)
def test_every_backend_reaches_the_gateway_config(backend: StudentBackend) -> None:
    built = children(body_for(backend))
    local = gateway_local(built)
    assert local["backend"] == backend.value
    url = STUDENTS[backend].get("baseUrl")
    if url is not None:
        assert local["base_url"] == url
    runs_vllm = "vllm" in containers(built["Deployment"])
    assert runs_vllm == (backend is StudentBackend.vllm)


@pytest.mark.parametrize(("profile", "backend"), [("gpu", "vllm"), ("cpu", "transformers")])
def test_the_profile_chooses_the_backend_when_none_is_named(profile: str, backend: str) -> None:
    built = children(classify(student={"profile": profile, "baseModel": BASE}))
    assert gateway_local(built)["backend"] == backend
    assert ("vllm" in containers(built["Deployment"])) == (profile == "gpu")


def test_transformers_on_a_gpu_node_gives_the_gateway_the_gpu() -> None:
    built = children(body_for(StudentBackend.transformers))
    gateway = containers(built["Deployment"])["gateway"]
    assert gateway["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gateway_local(built)["device"] == "auto"


def test_an_openai_student_reads_its_key_from_a_secret_never_a_value() -> None:
    built = children(body_for(StudentBackend.openai))
    env = {e["name"]: e for e in containers(built["Deployment"])["gateway"]["env"]}
    assert env["OPENAI_API_KEY"] == {
        "name": "OPENAI_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "openai", "key": "api-key"}},
    }
    assert gateway_local(built)["api_key_env"] == "OPENAI_API_KEY"


@pytest.mark.parametrize(
    ("student", "message"),
    [
        ({"backend": "ollama", "baseModel": BASE}, "backend ollama needs baseUrl"),
        ({"profile": "cpu", "backend": "vllm", "baseModel": BASE}, "vllm on profile cpu"),
        ({"profile": "cpu", "backend": "openai", "baseModel": "m"}, "apiKeySecretRef"),
        ({"backend": "nonesuch", "baseModel": BASE}, "backend"),
    ],
)
def test_a_backend_without_what_it_needs_is_a_spec_error(
    student: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        TaskObject.from_body(classify(student=student))


async def test_the_operator_serves_a_task_with_a_named_backend(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient
) -> None:
    body = body_for(StudentBackend.ollama)
    await kube.create(NS, body)
    name = body["metadata"]["name"]
    config_map = await eventually(
        lambda: live(emulator, "v1/configmaps", f"{name}-gateway-config"), what="ConfigMap"
    )
    local = yaml.safe_load(config_map["data"]["apprentice.yaml"])["local"]
    assert (local["backend"], local["base_url"]) == ("ollama", "http://ollama.models:11434")
    deployment = await eventually(
        lambda: live(emulator, "apps/v1/deployments", f"{name}-inference"), what="Deployment"
    )
    assert list(containers(deployment)) == ["gateway"]
