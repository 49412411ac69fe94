"""Traces in Kubernetes: the chart's gateway.tracing values reach every task gateway.

The real helm binary renders the chart; the operator's settings are read from the
rendered Deployment's env as the operator reads its own; the operator's builders make the
task's gateway ConfigMap and Deployment. Off (the default), nothing changes: no telemetry
block, no extra env. On, the gateway config carries ``telemetry.traces`` and the gateway
container reads the collector's headers from a Secret by reference, so the header value
is in no ConfigMap. Last, the whole way through: the gateway's real span exporter, built
from that ConfigMap with the env the kubelet would resolve, sends its spans with the
Secret's header to a collector on loopback.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, ROOT, by_kind, env_of, helm_binary, render, run_helm
from kube_samples import classify

from apprentice import config
from apprentice.kube.manifests import (
    STORE_URL_ENV,
    TaskObject,
    build_gateway_config,
    get_config_map,
    get_deployment,
)
from apprentice.kube.objects import TRACES_HEADERS_ENV
from apprentice.kube.runtime import settings_from_env

HEADERS_SECRET = {"name": "otel-auth", "key": "otlp-headers"}
ON = {
    "enabled": True,
    "endpoint": "http://otel-collector.observability:4318",
    "sampleRatio": 0.25,
    "serviceName": "triage-gateway",
    "headersSecret": HEADERS_SECRET,
}


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


def _task(env: dict[str, str]) -> TaskObject:
    return TaskObject.from_body(classify(), settings_from_env(env).defaults)


def _gateway_env(task: TaskObject) -> list[dict[str, Any]]:
    deploy = get_deployment(task, "digest")
    (container,) = [
        c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway"
    ]
    env: list[dict[str, Any]] = container["env"]
    return env


def _gateway_config(task: TaskObject) -> tuple[str, config.ApprenticeConfig]:
    """The ConfigMap's text, and the config the gateway loads from it."""
    text = str(get_config_map(task)["data"]["apprentice.yaml"])
    data = config.expand_env(yaml.safe_load(text), {STORE_URL_ENV: "postgresql://x"})
    return text, config.ApprenticeConfig.model_validate(data)


def test_tracing_is_off_by_default_and_changes_nothing(helm: Path, tmp_path: Path) -> None:
    env = env_of(render(helm, tmp_path, {}))
    assert env["APPRENTICE_TRACES_ENABLED"] == "false"
    assert [k for k in env if k.startswith("APPRENTICE_TRACES_")] == ["APPRENTICE_TRACES_ENABLED"]
    task = _task(env)
    assert task.defaults.traces is None
    assert "telemetry" not in build_gateway_config(task)  # the ConfigMap as before
    _, loaded = _gateway_config(task)
    assert loaded.telemetry.traces.enabled is False
    assert TRACES_HEADERS_ENV not in {e["name"] for e in _gateway_env(task)}
    # Values set but tracing off: still nothing reaches the operator or the gateways.
    off = env_of(render(helm, tmp_path, {"gateway": {"tracing": {**ON, "enabled": False}}}))
    assert [k for k in off if k.startswith("APPRENTICE_TRACES_")] == ["APPRENTICE_TRACES_ENABLED"]
    assert build_gateway_config(_task(off)) == build_gateway_config(task)


def test_tracing_on_reaches_every_gateway_config(helm: Path, tmp_path: Path) -> None:
    values = {"gateway": {"tracing": ON}}
    lint = run_helm(helm, "lint", "--strict", str(CHART), values=values, tmp=tmp_path)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    env = env_of(render(helm, tmp_path, values))
    assert env["APPRENTICE_TRACES_ENABLED"] == "true"
    assert env["APPRENTICE_TRACES_ENDPOINT"] == ON["endpoint"]
    assert env["APPRENTICE_TRACES_SAMPLE_RATIO"] == "0.25"
    assert env["APPRENTICE_TRACES_SERVICE_NAME"] == "triage-gateway"
    assert env["APPRENTICE_TRACES_HEADERS_SECRET"] == "otel-auth/otlp-headers"
    task = _task(env)
    assert build_gateway_config(task)["telemetry"] == {
        "traces": {
            "enabled": True,
            "endpoint": ON["endpoint"],
            "service_name": "triage-gateway",
            "sample_ratio": 0.25,
        }
    }
    _, loaded = _gateway_config(task)
    assert loaded.telemetry.traces.enabled and loaded.telemetry.traces.sample_ratio == 0.25
    ref = {"secretKeyRef": HEADERS_SECRET}
    assert {"name": TRACES_HEADERS_ENV, "valueFrom": ref} in _gateway_env(task)
    # Defaults: the exporter's own endpoint, every request, the config's service name; and
    # without headersSecret no header variable at all.
    plain = env_of(render(helm, tmp_path, {"gateway": {"tracing": {"enabled": True}}}))
    assert "APPRENTICE_TRACES_ENDPOINT" not in plain
    assert "APPRENTICE_TRACES_HEADERS_SECRET" not in plain
    traces = build_gateway_config(_task(plain))["telemetry"]["traces"]
    assert traces == {"enabled": True, "service_name": "apprentice-gateway", "sample_ratio": 1.0}
    assert TRACES_HEADERS_ENV not in {e["name"] for e in _gateway_env(_task(plain))}


def test_no_header_value_lands_in_a_config_map(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {"gateway": {"tracing": ON}})
    task = _task(env_of(docs))
    text, _ = _gateway_config(task)
    assert "headers" not in text.lower() and HEADERS_SECRET["name"] not in text
    for cm in by_kind(docs, "ConfigMap"):  # the chart's own (e.g. a dashboard)
        assert HEADERS_SECRET["name"] not in yaml.safe_dump(cm)
    (operator,) = by_kind(docs, "Deployment")  # the operator holds a reference, not a value
    assert TRACES_HEADERS_ENV not in yaml.safe_dump(operator)


def test_the_operations_guide_shows_values_the_chart_takes(helm: Path, tmp_path: Path) -> None:
    guide = (ROOT / "docs" / "guides" / "operations.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "tracing:" in b]
    env = env_of(render(helm, tmp_path, yaml.safe_load(block)))
    assert env["APPRENTICE_TRACES_ENABLED"] == "true"
    assert env["APPRENTICE_TRACES_HEADERS_SECRET"] == "otel-auth/headers"


@pytest.mark.parametrize(
    ("tracing", "named"),
    [
        ({"sampleRatio": 1.5}, "sampleRatio"),
        ({"endpoint": "otel-collector:4318"}, "endpoint"),
        ({"serviceName": ""}, "serviceName"),
        ({"headersSecret": {"name": "Not_A_Name", "key": "h"}}, "name"),
        ({"exporter": "grpc"}, "exporter"),
    ],
)
def test_the_schema_refuses_bad_tracing_values(
    helm: Path, tmp_path: Path, tracing: dict[str, Any], named: str
) -> None:
    values = {"gateway": {"tracing": {"enabled": True, **tracing}}}
    out = run_helm(helm, "template", "x", str(CHART), values=values, tmp=tmp_path)
    assert out.returncode != 0 and named in out.stderr, out.stderr


def test_the_operator_names_a_bad_setting() -> None:
    env = {"APPRENTICE_TRACES_ENABLED": "true", "APPRENTICE_TRACES_SAMPLE_RATIO": "2"}
    with pytest.raises(ValueError, match=r"^APPRENTICE_TRACES_SAMPLE_RATIO='2' .*less than"):
        settings_from_env(env)
    env = {"APPRENTICE_TRACES_ENABLED": "true", "APPRENTICE_TRACES_ENDPOINT": "collector:4318"}
    with pytest.raises(ValueError, match=r"^APPRENTICE_TRACES_ENDPOINT='collector:4318' .*http"):
        settings_from_env(env)


class _Collector(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports (an empty protobuf answer is a valid one) and keeps headers."""

    seen: list[dict[str, str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []
    handler = type("Handler", (_Collector,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_gateway_exports_with_the_secrets_header(
    helm: Path,
    tmp_path: Path,
    collector: tuple[str, list[dict[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from apprentice.gateway import tracing_otel  # needs the otel extra, which tests install

    url, seen = collector
    token = secrets.token_urlsafe(16)  # built at run time: no key-like literal in the repo
    cluster_secrets = {("otel-auth", "otlp-headers"): f"x-collector-token={token}"}
    values = {"gateway": {"tracing": {**ON, "endpoint": url, "sampleRatio": 1.0}}}
    task = _task(env_of(render(helm, tmp_path, values)))
    text, loaded = _gateway_config(task)
    assert token not in text
    for var in _gateway_env(task):  # what the kubelet does with the secretKeyRefs
        ref = var.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None and (ref["name"], ref["key"]) in cluster_secrets:
            monkeypatch.setenv(var["name"], cluster_secrets[(ref["name"], ref["key"])])
    spans = tracing_otel.Spans(loaded)
    try:
        with spans.request("classify"):
            pass
        spans.flush()
    finally:
        spans.close()
    assert seen, "the collector received no export"
    assert {h.get("x-collector-token") for h in seen} == {token}
