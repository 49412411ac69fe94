"""Traces end to end: a real OTLP/HTTP collector on loopback receives the gateway's spans.

The collector is a small aiohttp server that accepts ``POST /v1/traces`` as the
OpenTelemetry collector does (protobuf ``ExportTraceServiceRequest``) and decodes
it with ``opentelemetry-proto``. The teacher is a loopback OpenAI-format server
(its first reply a 429, so the gateway logs a retry inside the teacher's span).
With tracing off, a separate process serves a request and never imports the SDK.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gw_rules
import pytest
from aiohttp import web
from gw_config import make_config
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2
from test_steady import seed_steady_state

from apprentice import config
from apprentice.gateway import tracing, tracing_otel
from apprentice.teachers.errors import AuthError
from fakes.teachers import COMPLETION_TOKENS, PROMPT_TOKENS, FakeTeacherServer, openai_error

HERE = Path(__file__).parent


@dataclass
class Collector:
    """What the loopback collector received: each POST, and every span decoded."""

    url: str = ""
    posts: int = 0
    spans: list[trace_pb2.Span] = field(default_factory=list)
    services: set[str] = field(default_factory=set)

    def named(self, name: str) -> trace_pb2.Span:
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, f"{name}: {[s.name for s in self.spans]}"
        return found[0]


async def _collect(received: Collector, request: web.Request) -> web.Response:
    body = await request.read()
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    assert request.content_type == "application/x-protobuf"
    export = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
    received.posts += 1
    for resource in export.resource_spans:
        for attr in resource.resource.attributes:
            if attr.key == "service.name":
                received.services.add(attr.value.string_value)
        for scope in resource.scope_spans:
            received.spans.extend(scope.spans)
    reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
    return web.Response(body=reply, content_type="application/x-protobuf")


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    received = Collector()
    app = web.Application()

    async def handle(request: web.Request) -> web.Response:
        return await _collect(received, request)

    app.router.add_post("/v1/traces", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    received.url = f"http://127.0.0.1:{port}"
    yield received
    await runner.cleanup()


def _attrs(span: trace_pb2.Span) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind)
    return out


def _remote(base_url: str) -> dict[str, Any]:
    return {
        "provider": "openai_compatible",
        "model": "teacher-1",
        "base_url": base_url,
        "api_key_env": "TRACE_TEST_KEY",
        "max_retries": 1,
        "timeout_s": 5,
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }


def _traces(endpoint: str | None, ratio: float = 1.0) -> dict[str, Any]:
    return {"traces": {"enabled": True, "endpoint": endpoint, "service_name": "apprentice-test",
                       "sample_ratio": ratio}}  # fmt: skip


async def test_a_teacher_request_is_one_trace_with_its_attributes_and_logs_carry_its_id(
    collector: Collector,
    harness_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TRACE_TEST_KEY", "sk-" + "t" * 40)
    async with FakeTeacherServer("openai", answer=gw_rules.teacher_output) as fake:
        fake.script(openai_error(429, "Rate limit reached", type="rate_limit_error",
                                 headers={"retry-after-ms": "1"}))  # fmt: skip
        cfg = make_config(tmp_path, remote=_remote(fake.base_url),
                          telemetry=_traces(collector.url))  # fmt: skip
        h = await harness_factory(cfg)
        client = await h.serve()
        with caplog.at_level(logging.WARNING, logger="apprentice.teachers"):
            resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(2)})
        assert resp.status == 200
        request_id = (await resp.json())["request_id"]
        phase = h.gw.tasks["classify"].engine.phase_name()
        await asyncio.to_thread(h.gw.tracing.flush)  # the batch exports now, off the loop

    assert collector.services == {"apprentice-test"}
    root = collector.named("apprentice.request")
    teacher = collector.named("chat teacher-1")
    commit = collector.named("apprentice.commit")
    store = collector.named("apprentice.store")
    assert {s.name for s in collector.spans} == {root.name, teacher.name, commit.name, store.name}
    assert {s.trace_id for s in collector.spans} == {root.trace_id}
    assert root.parent_span_id == b""
    assert teacher.parent_span_id == root.span_id and commit.parent_span_id == root.span_id
    assert store.parent_span_id == commit.span_id
    assert root.kind == trace_pb2.Span.SPAN_KIND_SERVER
    assert teacher.kind == trace_pb2.Span.SPAN_KIND_CLIENT

    top, call = _attrs(root), _attrs(teacher)
    assert top["apprentice.task"] == "classify"
    assert top["apprentice.request_id"] == request_id
    assert top["apprentice.route"] == "remote_only"
    assert top["apprentice.phase"] == phase
    assert top["apprentice.served_by"] == "teacher"
    expected_cost = (PROMPT_TOKENS * 1.0 + COMPLETION_TOKENS * 2.0) / 1e6
    assert top["apprentice.cost_usd"] == pytest.approx(expected_cost)
    assert call["gen_ai.operation.name"] == "chat"
    assert call["gen_ai.request.model"] == "teacher-1"
    assert call["gen_ai.response.model"] == "teacher-1"
    assert call["gen_ai.provider.name"] == "openai_compatible"
    assert call["gen_ai.usage.input_tokens"] == PROMPT_TOKENS
    assert call["gen_ai.usage.output_tokens"] == COMPLETION_TOKENS
    assert call["apprentice.cost_usd"] == pytest.approx(expected_cost)
    assert call["apprentice.attempts"] == 2
    assert _attrs(store)["db.system.name"] == "sqlite"

    retry = [r for r in caplog.records if "retry 1/1" in r.getMessage()]
    assert len(retry) == 1, [r.getMessage() for r in caplog.records]
    assert retry[0].trace_id == root.trace_id.hex()  # type: ignore[attr-defined]
    assert retry[0].span_id == teacher.span_id.hex()  # type: ignore[attr-defined]
    line = logging.Formatter(tracing_otel.LOG_FORMAT).format(retry[0])
    assert f"trace_id={root.trace_id.hex()} span_id={teacher.span_id.hex()}" in line


async def test_a_failed_teacher_call_is_an_error_span_under_an_error_request(
    collector: Collector, harness_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRACE_TEST_KEY", "sk-" + "t" * 40)
    async with FakeTeacherServer("openai", answer=gw_rules.teacher_output) as fake:
        fake.script(openai_error(401, "Incorrect API key provided", code="invalid_api_key"))
        cfg = make_config(tmp_path, remote=_remote(fake.base_url),
                          telemetry=_traces(collector.url))  # fmt: skip
        h = await harness_factory(cfg)
        client = await h.serve()
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(2)})
        assert resp.status == 502
        await asyncio.to_thread(h.gw.tracing.flush)
    root = collector.named("apprentice.request")
    teacher = collector.named("chat teacher-1")
    assert teacher.parent_span_id == root.span_id
    error = trace_pb2.Status.STATUS_CODE_ERROR
    assert root.status.code == error and teacher.status.code == error
    assert _attrs(teacher)["error.type"] == AuthError.__qualname__  # the provider refused
    assert "gen_ai.usage.input_tokens" not in _attrs(teacher)
    assert [e.name for e in teacher.events] == ["exception"]
    assert _attrs(root)["apprentice.cost_usd"] == 0.0


async def test_a_steady_state_request_traces_the_student_and_the_judge(
    collector: Collector, harness_factory: Any, tmp_path: Path
) -> None:
    """Sampled comparisons: student and judge spans beside the teacher's; local-only too."""
    cfg = make_config(tmp_path, telemetry=_traces(collector.url))
    seed_steady_state(cfg, tmp_path, "first_word")
    h = await harness_factory(cfg)
    # Steady state samples a few per cent at random request ids: send until a sampled
    # comparison has come and gone, at least 60 requests (a fixed 60 missed it 1 in 3).
    confidence = lambda: h.gw.tasks["classify"].engine.state.confidence  # noqa: E731
    seeded, sent = confidence().comparisons, 0
    while sent < 60 or confidence().comparisons == seeded:
        await h.gw.run("classify", gw_rules.make_input(sent))
        sent += 1
        assert sent < 5000, "no sampled comparison in 5,000 steady-state requests"
    await asyncio.to_thread(h.gw.tracing.flush)
    roots = {s.span_id: _attrs(s) for s in collector.spans if s.name == "apprentice.request"}
    assert len(roots) == sent
    routes = {a["apprentice.route"] for a in roots.values()}
    assert routes == {"both", "local_only"}, routes
    students = [s for s in collector.spans if s.name == "apprentice.student"]
    judges = [s for s in collector.spans if s.name == "apprentice.judge"]
    assert len(students) == sent
    assert {_attrs(s)["apprentice.version"] for s in students} == {"v1"}
    assert {_attrs(s)["apprentice.student.valid"] for s in students} == {True}
    assert {a["apprentice.version"] for a in roots.values()} == {"v1"}
    both = [sid for sid, a in roots.items() if a["apprentice.route"] == "both"]
    assert sorted(j.parent_span_id for j in judges) == sorted(both)
    for judge in judges:
        assert _attrs(judge)["apprentice.score"] == 1.0  # the student learnt the rule
    for attrs in roots.values():
        served = "teacher" if attrs["apprentice.route"] == "both" else "student"
        assert attrs["apprentice.served_by"] == served
        if served == "student":
            assert attrs["apprentice.cost_usd"] == 0.0


async def test_the_standard_endpoint_variable_is_honoured_and_sampling_applies(
    collector: Collector, harness_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    h = await harness_factory(make_config(tmp_path, telemetry=_traces(None)))
    await h.gw.run("classify", gw_rules.make_input(1))
    await asyncio.to_thread(h.gw.tracing.flush)
    assert [s.name for s in collector.spans if s.name == "apprentice.request"] == [
        "apprentice.request"
    ]
    await h.close()
    unsampled = make_config(tmp_path, telemetry=_traces(collector.url, ratio=0.0))
    h2 = await harness_factory(unsampled)
    collector.spans.clear()
    for i in range(5):
        await h2.gw.run("classify", gw_rules.make_input(i))
    await asyncio.to_thread(h2.gw.tracing.flush)
    assert collector.spans == []


async def test_a_callers_traceparent_is_the_parent_and_its_sampled_flag_wins(
    collector: Collector, harness_factory: Any, tmp_path: Path
) -> None:
    """Sampled out by ratio 0, yet traced: the caller sampled its trace (parent-based)."""
    h = await harness_factory(make_config(tmp_path, telemetry=_traces(collector.url, 0.0)))
    client = await h.serve()
    trace_id, parent = os.urandom(16).hex(), os.urandom(8).hex()
    resp = await client.post(
        "/v1/tasks/classify",
        json={"input": gw_rules.make_input(1)},
        headers={"traceparent": f"00-{trace_id}-{parent}-01"},
    )
    assert resp.status == 200
    with tracing.incoming({"traceparent": f"00-{os.urandom(16).hex()}-{parent}-00"}):
        await h.gw.run("classify", gw_rules.make_input(2))  # the caller did not sample it
    with tracing.incoming({}):  # no header: the ratio decides (0: not traced)
        await h.gw.run("classify", gw_rules.make_input(3))
    await asyncio.to_thread(h.gw.tracing.flush)
    root = collector.named("apprentice.request")
    assert root.trace_id.hex() == trace_id and root.parent_span_id.hex() == parent
    assert {s.trace_id.hex() for s in collector.spans} == {trace_id}


def test_a_traces_endpoint_that_is_not_a_url_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as caught:
        make_config(tmp_path, telemetry={"traces": {"enabled": True, "endpoint": "collector:4318"}})
    assert "telemetry.traces.endpoint" in str(caught.value)
    assert "http://" in str(caught.value)


_OFF_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
import gw_fakes, gw_rules
from gw_config import make_config
from apprentice.gateway.facade import Apprentice

async def main() -> None:
    app = Apprentice.from_config(make_config(Path(sys.argv[1])),
                                 student_factory=lambda t: gw_fakes.RuleStudent())
    await app.start()
    for i in range(3):
        await app.gateway.run("classify", gw_rules.make_input(i))
    await app.close()
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")
                    or m.startswith("opentelemetry.exporter") or m.endswith("tracing_otel"))
    print(json.dumps({"loaded": loaded, "tracing": app.gateway.tracing is None}))

asyncio.run(main())
"""


async def test_with_tracing_off_nothing_is_sent_and_the_sdk_is_never_imported(
    tmp_path: Path, collector: Collector
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,  # the variable alone turns nothing on
        "GW_TEST_ADMIN_TOKEN": "x",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OFF_SCRIPT, str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    report = json.loads(out.decode().strip().splitlines()[-1])
    assert report == {"loaded": [], "tracing": True}
    assert collector.posts == 0
