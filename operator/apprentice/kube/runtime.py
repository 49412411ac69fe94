"""Operator settings (from the chart's env vars) and the context handed to every handler.

No module globals: :class:`OperatorContext` travels in kopf's ``memo``, so a test builds one
pointing at an emulator and a loopback gateway, and production builds one from the
pod's environment.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import kopf
import pydantic

from apprentice.config import TracesConfig
from apprentice.kube import client as k8s
from apprentice.kube.gateway_client import GatewayClient
from apprentice.kube.manifests import Defaults, TaskObject
from apprentice.kube.models import KeyRef
from apprentice.kube.task_status import Backoff

__all__ = ["OperatorContext", "OperatorSettings", "context_of", "settings_from_env"]


@dataclass(frozen=True)
class OperatorSettings:
    """How the operator runs; every field has the chart's default."""

    namespaces: tuple[str, ...] = ()  # empty: every namespace (cluster-wide)
    peering: str | None = None  # kopf peering object name; None: standalone (one replica)
    # Replicas of equal priority would all pause, so each picks a random one unless set.
    peering_priority: int | None = None
    identity: str | None = None  # this replica's peering identity; None: host@pid
    poll_interval_s: float = 30.0  # seconds between reads of each gateway's state
    defaults: Defaults = field(default_factory=Defaults)
    metrics_port: int | None = None  # Prometheus metrics; None: off
    health_port: int | None = None  # kopf liveness endpoint /healthz; None: off
    log_level: str = "info"
    # For tests and development only (APPRENTICE_GATEWAY_URL): every task's gateway is
    # reached at this URL instead of its in-cluster Service, by the operator and by the
    # trainer Jobs it creates (their APPRENTICE_GATEWAY_URL), e.g. a gateway running as a
    # local process next to a test control plane.
    gateway_url: str | None = None
    gateway_timeout_s: float = 10.0  # state/admin calls; validation gets longer
    retry_delay_s: float = 30.0  # first back-off after a temporary failure; doubles per retry
    max_retry_delay_s: float = 600.0  # the back-off's cap
    training_backoff: Backoff = field(default_factory=Backoff)

    def retry_delay(self, retry: int) -> float:
        """Exponential back-off: ``retry_delay_s * 2**retry``, capped."""
        return float(min(self.max_retry_delay_s, self.retry_delay_s * 2 ** max(0, retry)))

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def _json(env: Mapping[str, str], key: str, default: Any) -> Any:
    text = env.get(key, "").strip()
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{key} must be JSON, e.g. {json.dumps(default)}: {exc}") from exc


def _key_ref(value: str, default_key: str) -> KeyRef:
    name, _, key = value.partition("/")
    return KeyRef(name=name, key=key or default_key)


# TracesConfig's fields and the variables the chart sets them in.
_TRACES_ENV = {
    "endpoint": "APPRENTICE_TRACES_ENDPOINT",
    "sample_ratio": "APPRENTICE_TRACES_SAMPLE_RATIO",
    "service_name": "APPRENTICE_TRACES_SERVICE_NAME",
}


def _traces(env: Mapping[str, str]) -> tuple[TracesConfig | None, KeyRef | None]:
    """The chart's gateway.tracing (``APPRENTICE_TRACES_*``); (None, None) while it is off."""
    if env.get("APPRENTICE_TRACES_ENABLED", "").lower() not in ("1", "true"):
        return None, None
    fields: dict[str, object] = {"enabled": True}
    for name, var in _TRACES_ENV.items():
        if env.get(var):
            fields[name] = env[var]
    try:
        traces = TracesConfig.model_validate(fields)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        var = _TRACES_ENV.get(str(first["loc"][0]), "APPRENTICE_TRACES_*")
        raise ValueError(
            f"{var}={first['input']!r} (the chart's gateway.tracing): {first['msg']}"
        ) from exc
    secret = env.get("APPRENTICE_TRACES_HEADERS_SECRET")
    return traces, _key_ref(secret, "headers") if secret else None


def settings_from_env(env: Mapping[str, str]) -> OperatorSettings:
    """Settings from the ``APPRENTICE_*`` variables the chart's Deployment sets."""
    base = Defaults()
    postgres = None
    if env.get("APPRENTICE_POSTGRES_SECRET"):
        postgres = _key_ref(env["APPRENTICE_POSTGRES_SECRET"], "dsn")
    traces, traces_headers = _traces(env)
    defaults = Defaults(
        gateway_image=env.get("APPRENTICE_GATEWAY_IMAGE") or base.gateway_image,
        vllm_image=env.get("APPRENTICE_VLLM_IMAGE") or base.vllm_image,
        trainer_image=env.get("APPRENTICE_TRAINER_IMAGE") or base.trainer_image,
        pull_policy=env.get("APPRENTICE_IMAGE_PULL_POLICY") or base.pull_policy,
        pull_secrets=tuple(s for s in env.get("APPRENTICE_IMAGE_PULL_SECRETS", "").split(",") if s),
        gpu_resource=env.get("APPRENTICE_GPU_RESOURCE") or base.gpu_resource,
        gpu_node_selector=_json(env, "APPRENTICE_GPU_NODE_SELECTOR", {}),
        gpu_tolerations=_json(env, "APPRENTICE_GPU_TOLERATIONS", []),
        postgres=postgres,
        admin_token_key=env.get("APPRENTICE_ADMIN_TOKEN_KEY") or None,
        require_api_keys=env.get("APPRENTICE_REQUIRE_API_KEYS", "").lower() in ("1", "true"),
        traces=traces,
        traces_headers=traces_headers,
    )

    def port(key: str) -> int | None:
        return int(env[key]) if env.get(key) else None

    return OperatorSettings(
        namespaces=tuple(n for n in env.get("APPRENTICE_WATCH_NAMESPACES", "").split(",") if n),
        peering=env.get("APPRENTICE_PEERING") or None,
        identity=env.get("POD_NAME") or None,
        poll_interval_s=float(env.get("APPRENTICE_POLL_INTERVAL") or 30.0),
        defaults=defaults,
        metrics_port=port("APPRENTICE_METRICS_PORT"),
        health_port=port("APPRENTICE_HEALTH_PORT"),
        log_level=env.get("APPRENTICE_LOG_LEVEL") or "info",
        gateway_url=env.get("APPRENTICE_GATEWAY_URL") or None,
        training_backoff=Backoff(
            base_s=float(env.get("APPRENTICE_TRAINING_BACKOFF") or 600.0),
            max_failures=int(env.get("APPRENTICE_TRAINING_MAX_FAILURES") or 5),
        ),
    )


@dataclass
class OperatorContext:
    """What handlers share: the API client, the settings, the gateway transport."""

    kube: k8s.KubeClient
    settings: OperatorSettings
    gateway_transport: httpx.AsyncBaseTransport | None = None
    #: resourceVersion of each child after its last apply (tells changed from unchanged).
    applied: dict[str, str] = field(default_factory=dict)

    def task(self, body: Mapping[str, Any]) -> TaskObject:
        return TaskObject.from_body(body, self.settings.defaults)

    async def admin_token(self, task: TaskObject) -> str | None:
        """The gateway admin token (never logged or stored): derived when it can be, else
        read from the task's Secret (a user-named Secret, or no token key configured)."""
        derived = task.generated_token
        if derived is not None:
            return derived
        ref = task.admin_secret
        secret = await self.kube.get(k8s.SECRETS, task.namespace, ref.name)
        return secret_value(secret, ref) if secret else None

    def gateway_url(self, task: TaskObject) -> str:
        """The task's in-cluster gateway URL, or the test override (APPRENTICE_GATEWAY_URL)."""
        return self.settings.gateway_url or task.endpoint

    def gateway(self, task: TaskObject, token: str | None) -> GatewayClient:
        url = self.gateway_url(task)
        return GatewayClient(
            url,
            task.spec.name,
            token,
            timeout_s=self.settings.gateway_timeout_s,
            transport=self.gateway_transport,
        )


def secret_value(secret: Mapping[str, Any], ref: KeyRef) -> str | None:
    """One key of a Secret: ``data`` is base64 (the API server's form), ``stringData`` plain."""
    data = secret.get("data") or {}
    if ref.key in data:
        try:
            return base64.b64decode(data[ref.key]).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
    value = (secret.get("stringData") or {}).get(ref.key)
    return str(value) if value is not None else None


def context_of(memo: kopf.Memo) -> OperatorContext:
    """The context kopf carries in ``memo``."""
    ctx = getattr(memo, "context", None)
    if not isinstance(ctx, OperatorContext):
        raise RuntimeError("the operator was started without an OperatorContext in memo.context")
    return ctx
