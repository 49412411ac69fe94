"""Token-by-token streaming from a real (loopback) teacher that streams in its provider's
wire format, read by the official ``openai`` SDK's streaming client.

The fake teacher sends its first piece of text, then waits on an event the test sets
only after the client has that piece: the first chunk provably reaches the client
before the teacher has finished. No sleeps: every wait is on an event or a read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gw_rules
import openai
import pytest
from gw_config import make_config

from apprentice.gateway import streaming
from fakes.teachers import FakeTeacherServer, Reply, anthropic_error, gemini_error, openai_error

KEY_ENV = "STREAM_TEST_KEY"
MODELS = {"openai": "teacher-1", "anthropic": "claude-sonnet-4-5", "google": "gemini-2.5-flash"}
PROVIDERS = {"openai": "openai_compatible", "anthropic": "anthropic", "google": "google"}


def _remote(protocol: str, base_url: str) -> dict[str, Any]:
    return {
        "provider": PROVIDERS[protocol],
        "model": MODELS[protocol],
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "max_retries": 0,
        "timeout_s": 5,
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }


@pytest.fixture(params=["openai", "anthropic", "google"])
async def fake(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[FakeTeacherServer]:
    monkeypatch.setenv(KEY_ENV, "k-" + "stream" * 4)
    async with FakeTeacherServer(request.param, answer=gw_rules.teacher_output) as server:
        server.hold = asyncio.Event()
        yield server


async def _serve(harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer) -> Any:
    h = await harness_factory(make_config(tmp_path, remote=_remote(fake.protocol, fake.base_url)))
    return h, await h.serve()


async def test_the_first_chunk_arrives_before_the_teacher_has_finished(
    harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer
) -> None:
    h, client = await _serve(harness_factory, tmp_path, fake)
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    inp = gw_rules.make_input(3)
    messages: Any = [{"role": "user", "content": json.dumps(inp)}]
    stream = await sdk.chat.completions.create(
        model="classify", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    got = []
    async for chunk in stream:
        got.append(chunk)
        if chunk.choices and chunk.choices[0].delta.content:
            break  # the first piece of the answer is here
    # The teacher is still holding the rest of its answer: nothing is stored yet.
    assert fake.holding.is_set() and not fake.hold.is_set()  # type: ignore[union-attr]
    assert h.gw.store.examples("classify") == []
    assert got[0].choices[0].delta.role == "assistant"
    fake.hold.set()  # type: ignore[union-attr]
    got += [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    (example,) = h.gw.store.examples("classify")
    assert json.loads(text) == example.output == gw_rules.teacher_output(inp)
    assert len([c for c in got if c.choices and c.choices[0].delta.content]) > 2  # pieces
    assert example.request_id == got[0].id.removeprefix("chatcmpl-")
    assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "stop"
    # Usage as the teacher's stream reported it, and that is what was booked.
    (line,) = [s for s in h.gw.store.spend_entries("classify") if s.kind == "teacher"]
    usage = got[-1].usage
    assert got[-1].choices == [] and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (line.input_tokens, line.output_tokens)
    assert (line.input_tokens, line.output_tokens) == (fake.prompt_tokens, fake.completion_tokens)
    assert line.amount == pytest.approx((120 * 1.0 + 30 * 2.0) / 1e6)
    sent = fake.received[0]
    assert sent.json.get("stream") is True or sent.path.endswith(":streamGenerateContent")
    await sdk.close()


async def _first_delta_then_hang_up(port: int, body: bytes, path: str) -> bytes:
    """A raw HTTP client that reads until the first piece of text, then closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    head = await reader.readuntil(b'"content":"{')  # the first chunk with text (JSON)
    writer.close()
    await writer.wait_closed()
    return head


async def test_a_client_gone_mid_stream_still_gets_its_answer_stored_and_booked(
    harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer
) -> None:
    h, client = await _serve(harness_factory, tmp_path, fake)
    inp = gw_rules.make_input(4)
    body = {"model": "classify", "stream": True, "messages": [{"role": "user",
            "content": json.dumps(inp)}]}  # fmt: skip
    head = await _first_delta_then_hang_up(
        client.port, json.dumps(body).encode(), "/v1/chat/completions"
    )
    assert b"200 OK" in head and b"text/event-stream" in head
    assert h.gw.store.examples("classify") == []  # the teacher is still answering
    fake.hold.set()  # type: ignore[union-attr]  # it finishes after the client has gone
    await streaming.drain(client.app)
    (example,) = h.gw.store.examples("classify")
    assert example.output == gw_rules.teacher_output(inp)
    counts = h.gw.store.request_counts("classify")
    assert counts.requests == 1 and counts.teacher_calls == 1
    (line,) = [s for s in h.gw.store.spend_entries("classify") if s.kind == "teacher"]
    assert line.amount > 0 and line.output_tokens == fake.completion_tokens
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["spend"]["today"] == pytest.approx(line.amount)


async def test_an_invalid_streamed_answer_ends_the_stream_with_an_error_and_is_booked(
    harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer
) -> None:
    fake.answer = lambda task_input: {"label": 5}  # breaks output_schema (label: str)
    fake.hold = None
    h, client = await _serve(harness_factory, tmp_path, fake)
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    messages: Any = [{"role": "user", "content": json.dumps(gw_rules.make_input(5))}]
    stream = await sdk.chat.completions.create(model="classify", messages=messages, stream=True)
    got: list[Any] = []
    with pytest.raises(openai.APIError) as raised:
        async for chunk in stream:
            got.append(chunk)
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert json.loads(text) == {"label": 5}  # it went out as it came, then the verdict
    body = raised.value.body
    assert isinstance(body, dict) and body["type"] == "teacher_unavailable"
    assert body["details"] == {"reason": "InvalidOutput"}
    assert "streamed already" in body["message"] and "label" in body["message"]
    assert len(fake.received) == 1  # no repair request: the client has the answer already
    # Booked as an unstreamed invalid answer is: its priced usage, the request failed.
    assert h.gw.store.examples("classify") == []
    (line,) = [s for s in h.gw.store.spend_entries("classify") if s.kind == "teacher"]
    assert line.amount == pytest.approx((120 * 1.0 + 30 * 2.0) / 1e6)
    (row,) = h.gw.store.requests("classify")
    assert row.error == "InvalidOutput" and row.cost == pytest.approx(line.amount)
    await sdk.close()


async def test_the_task_api_streams_delta_events_then_the_answer(
    harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer
) -> None:
    h, client = await _serve(harness_factory, tmp_path, fake)
    inp = gw_rules.make_input(6)
    resp = await client.post("/v1/tasks/classify", json={"input": inp, "stream": True})
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    first = await resp.content.readuntil(b"\n\n")
    assert json.loads(first.removeprefix(b"data: "))["delta"]  # while the teacher holds
    assert h.gw.store.examples("classify") == []
    fake.hold.set()  # type: ignore[union-attr]
    rest = (await resp.text()).split("\n\n")
    events = [json.loads(first.removeprefix(b"data: "))] + [
        json.loads(e.removeprefix("data: ")) for e in rest if e and e != "data: [DONE]"
    ]
    assert rest[-2:] == ["data: [DONE]", ""]
    *deltas, answer = events
    assert all(set(d) == {"delta"} for d in deltas)
    assert json.loads("".join(d["delta"] for d in deltas)) == answer["output"]
    assert answer["output"] == gw_rules.teacher_output(inp)
    assert [e.request_id for e in h.gw.store.examples("classify")] == [answer["request_id"]]


async def test_a_teacher_refusing_before_its_stream_is_a_plain_json_error(
    harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer
) -> None:
    refusal = {
        "openai": openai_error(429, "Rate limit reached", type="rate_limit_error"),
        "anthropic": anthropic_error(429, "rate_limit_error", "Rate limited"),
        "google": gemini_error(429, "RESOURCE_EXHAUSTED", "Rate limited"),
    }[fake.protocol]
    fake.script(refusal)
    h, client = await _serve(harness_factory, tmp_path, fake)
    body = {"model": "classify", "stream": True,
            "messages": [{"role": "user", "content": json.dumps(gw_rules.make_input(7))}]}  # fmt: skip
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 503 and resp.headers["Content-Type"].startswith("application/json")
    assert (await resp.json())["error"]["details"] == {"reason": "RateLimited"}
    assert [s.amount for s in h.gw.store.spend_entries("classify")] in ([], [0.0])


async def test_a_stream_cut_mid_answer_ends_in_an_error_and_books_the_worst_case(
    harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer
) -> None:
    whole = fake.stream_events("/v1beta/models/gemini-2.5-flash:streamGenerateContent", {
        "model": MODELS[fake.protocol], "stream_options": {"include_usage": True},
        "tool_choice": {"type": "tool", "name": "classify"},
        "messages": [{"role": "user", "content": json.dumps(gw_rules.make_input(8))}],
        "contents": [{"role": "user", "parts": [{"text": json.dumps(gw_rules.make_input(8))}]}],
    })  # fmt: skip
    cut = 1 if fake.protocol == "google" else 4  # some text, then the stream ends early
    fake.script(Reply(events=whole[:cut]))
    fake.hold = None
    h, client = await _serve(harness_factory, tmp_path, fake)
    body = {"model": "classify", "stream": True,
            "messages": [{"role": "user", "content": json.dumps(gw_rules.make_input(8))}]}  # fmt: skip
    resp = await client.post("/v1/chat/completions", json=body)
    events = [e.removeprefix("data: ") for e in (await resp.text()).split("\n\n") if e]
    assert resp.status == 200 and "[DONE]" not in events
    error = json.loads(events[-1])["error"]
    assert error["details"] == {"reason": "ProviderError"}
    assert "before its end marker" in error["message"]
    assert len(fake.received) == 1  # text went out: no retry
    (line,) = [s for s in h.gw.store.spend_entries("classify") if s.kind == "teacher"]
    assert line.amount > 0 and h.gw.store.examples("classify") == []  # maybe billed: booked
