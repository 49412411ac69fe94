"""Request/response mapping of the Kubernetes and gateway clients, and error translation."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import kopf
import pytest

from apprentice.kube import client as k8s
from apprentice.kube import handlers
from apprentice.kube.gateway_client import GatewayClient, GatewayError, GatewayUnavailable
from apprentice.kube.manifests import Defaults, TaskObject
from apprentice.kube.models import KeyRef
from apprentice.kube.operator import configure, require_crds
from apprentice.kube.runtime import OperatorSettings, secret_value, settings_from_env

TOKEN = "sa-token-never-in-repr"


def transport(status: int, body: Any, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, k8s.NotFound),
        (409, k8s.Conflict),
        (429, k8s.KubeUnavailable),
        (503, k8s.KubeUnavailable),
        (403, k8s.KubeError),
        (422, k8s.KubeError),
    ],
)
async def test_kube_errors_are_typed(status: int, error: type[Exception]) -> None:
    seen: list[httpx.Request] = []
    kube = k8s.KubeClient(
        "https://api",
        token=TOKEN,
        transport=transport(status, {"reason": "Why", "message": "because"}, seen),
    )
    with pytest.raises(error) as info:
        await kube.create("ns", {"kind": "ConfigMap", "metadata": {"name": "x"}})
    assert type(info.value) is error and "because" in str(info.value)
    assert TOKEN not in str(info.value) and TOKEN not in repr(kube)
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url.path == "/api/v1/namespaces/ns/configmaps"
    await kube.aclose()


async def test_a_terminating_namespace_is_a_temporary_refusal() -> None:
    """NamespaceLifecycle's 403 (the API server's body) is retried, not a missing grant."""
    body = {
        "reason": "Forbidden",
        "message": 'configmaps "x" is forbidden: unable to create new content in namespace ns '
        "because it is being terminated",
        "details": {"name": "x", "kind": "configmaps", "causes": [
            {"reason": "NamespaceTerminating", "message": "namespace ns is being terminated",
             "field": "metadata.namespace"}
        ]},
    }  # fmt: skip
    kube = k8s.KubeClient("https://api", token=TOKEN, transport=transport(403, body, []))
    with pytest.raises(k8s.NamespaceTerminating) as info:
        await kube.create("ns", {"kind": "ConfigMap", "metadata": {"name": "x"}})
    await kube.aclose()
    with pytest.raises(kopf.TemporaryError), handlers.translated(delay=7):
        raise info.value


async def test_get_returns_none_on_404_and_patch_is_a_merge_patch(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    kube = k8s.KubeClient("https://api", token_path=token_file, transport=transport(404, {}, seen))
    assert await kube.get(k8s.DEPLOYMENTS, "ns", "d") is None
    token_file.write_text("rotated\n")  # projected service-account tokens rotate
    kube = k8s.KubeClient(
        "https://api", token_path=token_file, transport=transport(200, {"status": {}}, seen)
    )
    await kube.patch(k8s.TRAINING_JOBS, "ns", "tj", {"status": {"state": "Running"}}, status=True)
    patch = seen[-1]
    assert patch.method == "PATCH"
    assert patch.url.path == "/apis/apprentice.dev/v1alpha1/namespaces/ns/trainingjobs/tj/status"
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.headers["Authorization"] == "Bearer rotated"
    assert json.loads(patch.content) == {"status": {"state": "Running"}}


async def test_list_filters_by_labels_even_when_the_server_does_not() -> None:
    items = [
        {"metadata": {"name": "a", "labels": {"t": "1"}}},
        {"metadata": {"name": "b", "labels": {"t": "2"}}},
    ]
    seen: list[httpx.Request] = []
    kube = k8s.KubeClient("https://api", transport=transport(200, {"items": items}, seen))
    got = await kube.list(k8s.JOBS, "ns", {"t": "1"})
    assert [i["metadata"]["name"] for i in got] == ["a"]
    assert seen[0].url.params["labelSelector"] == "t=1"


async def test_unreachable_api_is_temporary() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    kube = k8s.KubeClient("https://api", transport=httpx.MockTransport(refuse))
    with pytest.raises(k8s.KubeUnavailable):
        await kube.get(k8s.SECRETS, "ns", "s")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, GatewayError),
        (404, GatewayError),
        (502, GatewayUnavailable),
        (503, GatewayUnavailable),
    ],
)
async def test_gateway_errors_carry_the_contract_code(status: int, error: type[Exception]) -> None:
    seen: list[httpx.Request] = []
    body = {"error": {"type": "some_code", "message": "explained"}}
    async with GatewayClient(
        "http://gw", "t", TOKEN, transport=transport(status, body, seen)
    ) as gw:
        with pytest.raises(error) as info:
            await gw.promote("v2")
        assert info.value.code == "some_code"  # type: ignore[attr-defined]
        assert TOKEN not in str(info.value) and TOKEN not in repr(gw)
    assert seen[0].url.path == "/admin/tasks/t/versions/v2/promote"
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_gateway_admin_call_without_a_token_fails_before_sending() -> None:
    seen: list[httpx.Request] = []
    async with GatewayClient("http://gw", "t", None, transport=transport(200, {}, seen)) as gw:
        with pytest.raises(GatewayError, match="no admin token"):
            await gw.versions()
        assert await gw.state() == {}
    assert [r.url.path for r in seen] == ["/v1/tasks/t/state"]


@pytest.mark.parametrize(
    ("raised", "kopf_error"),
    [
        (k8s.KubeUnavailable(503, "x", "m"), kopf.TemporaryError),
        (k8s.Conflict(409, "x", "m"), kopf.TemporaryError),
        (GatewayUnavailable(0, "ConnectError", "m"), kopf.TemporaryError),
        (k8s.KubeError(403, "Forbidden", "m"), kopf.PermanentError),
        (GatewayError(400, "bad_request", "m"), kopf.PermanentError),
    ],
)
def test_foreign_errors_become_kopf_outcomes(
    raised: Exception, kopf_error: type[Exception]
) -> None:
    with pytest.raises(kopf_error) as info, handlers.translated(delay=7):
        raise raised
    assert info.value.__cause__ is raised
    if isinstance(info.value, kopf.TemporaryError):
        assert info.value.delay == 7


def test_secret_values_decode_from_data_or_string_data() -> None:
    ref = KeyRef(name="s", key="token")
    assert secret_value({"data": {"token": base64.b64encode(b"abc").decode()}}, ref) == "abc"
    assert secret_value({"stringData": {"token": "xyz"}}, ref) == "xyz"
    assert secret_value({"data": {"other": "eA=="}}, ref) is None


def test_settings_from_the_charts_environment() -> None:
    settings = settings_from_env(
        {
            "APPRENTICE_WATCH_NAMESPACES": "a,b",
            "APPRENTICE_PEERING": "apprentice",
            "POD_NAME": "apprentice-7d9-x",
            "APPRENTICE_POLL_INTERVAL": "12",
            "APPRENTICE_GATEWAY_IMAGE": "gw:1",
            "APPRENTICE_IMAGE_PULL_SECRETS": "r1,r2",
            "APPRENTICE_GPU_TOLERATIONS": '[{"key": "gpu", "operator": "Exists"}]',
            "APPRENTICE_POSTGRES_SECRET": "db/dsn",
            "APPRENTICE_METRICS_PORT": "9090",
        }
    )
    assert settings.namespaces == ("a", "b") and not settings.clusterwide
    assert (settings.peering, settings.identity, settings.poll_interval_s) == (
        "apprentice",
        "apprentice-7d9-x",
        12.0,
    )
    assert settings.defaults.gateway_image == "gw:1"
    assert settings.defaults.pull_secrets == ("r1", "r2")
    assert settings.defaults.gpu_tolerations == [{"key": "gpu", "operator": "Exists"}]
    assert settings.defaults.postgres == KeyRef(name="db", key="dsn")
    assert settings.metrics_port == 9090 and settings.health_port is None
    with pytest.raises(ValueError, match="APPRENTICE_GPU_NODE_SELECTOR must be JSON"):
        settings_from_env({"APPRENTICE_GPU_NODE_SELECTOR": "gpu=yes"})


def test_new_settings_token_key_backoff_and_the_test_gateway_override() -> None:
    settings = settings_from_env(
        {
            "APPRENTICE_ADMIN_TOKEN_KEY": "k3y",
            "APPRENTICE_TRAINING_BACKOFF": "60",
            "APPRENTICE_TRAINING_MAX_FAILURES": "2",
            "APPRENTICE_GATEWAY_URL": "http://127.0.0.1:9",
        }
    )
    assert settings.defaults.admin_token_key == "k3y" and "k3y" not in repr(settings)
    assert (settings.training_backoff.base_s, settings.training_backoff.max_failures) == (60, 2)
    assert settings.gateway_url == "http://127.0.0.1:9"
    # Temporary failures back off exponentially up to the cap.
    assert [settings.retry_delay(n) for n in (0, 1, 2, 10)] == [30.0, 60.0, 120.0, 600.0]


@pytest.mark.parametrize(
    ("ours", "mandatory", "clusterwide"),
    [
        (OperatorSettings(peering="apprentice"), True, True),
        (OperatorSettings(peering="p", namespaces=("a",)), True, False),
        (OperatorSettings(), False, True),
    ],
)
def test_kopf_is_configured_for_peering_and_our_finalizer(
    ours: OperatorSettings, mandatory: bool, clusterwide: bool
) -> None:
    settings = kopf.OperatorSettings()
    configure(settings, ours)
    assert settings.persistence.finalizer == "apprentice.dev/finalizer"
    assert settings.peering.mandatory is mandatory
    assert settings.peering.standalone is (not mandatory)
    assert settings.peering.clusterwide is clusterwide
    assert settings.posting.level == logging.WARNING
    # No cluster-wide CRD/Namespace watches unless namespace globs need them.
    assert settings.scanning.disabled is True


def test_namespace_globs_keep_kopf_scanning() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, OperatorSettings(namespaces=("team-*",)))
    assert settings.scanning.disabled is False


async def test_the_operator_refuses_to_start_without_its_crds() -> None:
    seen: list[httpx.Request] = []
    missing = k8s.KubeClient("https://api", transport=transport(404, {}, seen))
    with pytest.raises(kopf.PermanentError, match="install the CRDs"):
        await require_crds(missing)
    assert seen[0].url.path == "/apis/apprentice.dev/v1alpha1"
    served = {"resources": [{"name": n} for n in ("distilledtasks", "trainingjobs")]}
    partial = k8s.KubeClient("https://api", transport=transport(200, served, seen))
    with pytest.raises(kopf.PermanentError, match=r"^the API server does not serve modelversions"):
        await require_crds(partial)


async def test_apply_is_a_forced_server_side_apply_with_our_field_manager() -> None:
    seen: list[httpx.Request] = []
    kube = k8s.KubeClient("https://api", transport=transport(200, {"metadata": {}}, seen))
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"replicas": 1},
    }
    await kube.apply(manifest)
    request = seen[-1]
    assert (request.method, request.url.path) == (
        "PATCH",
        "/apis/apps/v1/namespaces/ns/deployments/d",
    )
    assert request.headers["Content-Type"] == "application/apply-patch+yaml"
    assert dict(request.url.params) == {"fieldManager": "apprentice", "force": "true"}
    assert json.loads(request.content) == manifest  # the whole desired object, every time
    await kube.aclose()


def test_derived_admin_tokens_are_per_task_object_and_need_the_key() -> None:
    sample = {
        "metadata": {"name": "t", "namespace": "ns", "uid": "u1"},
        "spec": {
            "name": "t",
            "teacher": {"provider": "replay", "replayFrom": {"name": "a", "key": "k"}},
            "student": {"baseModel": "b"},
        },
    }
    keyed, other = Defaults(admin_token_key="k"), Defaults(admin_token_key="rotated")
    task = TaskObject.from_body(sample, keyed)
    token = task.generated_token
    assert token and len(token) >= 43
    recreated = {**sample, "metadata": {**sample["metadata"], "uid": "u2"}}
    assert TaskObject.from_body(recreated, keyed).generated_token != token
    assert TaskObject.from_body(sample).generated_token is None  # no key: random, read back
    ref = {"adminTokenSecretRef": {"name": "s", "key": "t"}}
    named = {**sample, "spec": {**sample["spec"], "gateway": ref}}
    assert TaskObject.from_body(named, keyed).generated_token is None
    # A new key is a new Secret: the operator creates it and never has to rewrite one.
    names = {TaskObject.from_body(sample, d).admin_secret.name for d in (keyed, other, Defaults())}
    assert len(names) == 3 and "t-admin-token" in names
    assert "k" not in repr(keyed)
