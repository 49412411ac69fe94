"""``stream=true`` on the chat API: OpenAI chunks read by the official SDK's streaming
client, usage on request, and a client that hangs up mid-stream loses nothing paid."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import gw_rules
import openai

from apprentice.gateway import chat
from apprentice.gateway.request import Result


async def test_the_openai_sdk_streams_the_answer(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    inp = gw_rules.make_input(5)
    messages: Any = [{"role": "user", "content": json.dumps(inp)}]
    stream = await sdk.chat.completions.create(
        model="classify", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    got = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert json.loads(text) == gw_rules.teacher_output(inp)
    assert got[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in got if c.choices][-1] == "stop"
    assert got[-1].choices == [] and got[-1].usage is not None
    assert all(c.usage is None for c in got[:-1])
    assert len({c.id for c in got}) == 1 and got[0].id.startswith("chatcmpl-")
    # Stored and booked once, like a plain completion; usage is the teacher's billed tokens.
    (example,) = h.gw.store.examples("classify")
    assert example.request_id == got[0].id.removeprefix("chatcmpl-")
    assert h.gw.store.request_counts("classify").teacher_calls == 1
    (line,) = [s for s in h.gw.store.spend_entries("classify") if s.kind == "teacher"]
    assert got[-1].usage.prompt_tokens == line.input_tokens > 0
    assert got[-1].usage.completion_tokens == line.output_tokens > 0
    done = await sdk.chat.completions.create(model="classify", messages=messages)
    assert done.usage is not None and done.usage.total_tokens == got[-1].usage.total_tokens

    plain = await sdk.chat.completions.create(model="classify", messages=messages, stream=True)
    chunks = [c async for c in plain]
    assert all(c.choices for c in chunks)  # no usage chunk unless asked
    # Errors before the stream are plain JSON errors with their status.
    bad: Any = [{"role": "user", "content": '{"text": 1}'}]
    try:
        await sdk.chat.completions.create(model="classify", messages=bad, stream=True)
        raise AssertionError("an invalid input must not stream")
    except openai.UnprocessableEntityError as exc:
        assert isinstance(exc.body, dict) and exc.body["type"] == "invalid_input"
    await sdk.close()


async def test_a_client_gone_mid_stream_keeps_its_paid_answer(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    inp = gw_rules.make_input(11)
    body = json.dumps(
        {
            "model": "classify",
            "stream": True,
            "messages": [{"role": "user", "content": json.dumps(inp)}],
        }
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    head = await reader.readuntil(b"data: ")  # the first chunk has started: hang up
    assert b"200 OK" in head and b"text/event-stream" in head
    writer.close()
    await writer.wait_closed()
    (example,) = h.gw.store.examples("classify")
    assert example.output == gw_rules.teacher_output(inp)
    counts = h.gw.store.request_counts("classify")
    assert counts.requests == 1 and counts.teacher_calls == 1
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["spend"]["today"] > 0  # the teacher's call is booked


async def test_the_task_api_streams_one_event_then_done(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    inp = gw_rules.make_input(12)
    resp = await client.post("/v1/tasks/classify", json={"input": inp, "stream": True})
    assert resp.status == 200 and resp.headers["Content-Type"] == "text/event-stream"
    events = [e for e in (await resp.text()).split("\n\n") if e]
    assert len(events) == 2 and events[1] == "data: [DONE]"
    answer = json.loads(events[0].removeprefix("data: "))
    assert answer["output"] == gw_rules.teacher_output(inp)
    assert [e.request_id for e in h.gw.store.examples("classify")] == [answer["request_id"]]
    bad = await client.post("/v1/tasks/classify", json={"input": inp, "stream": "yes"})
    assert bad.status == 400 and "stream" in (await bad.json())["error"]["message"]


def test_chunks_carry_the_answer_in_order() -> None:
    out = {"label": "y" * 100}
    pieces = chat.chunks("t", Result(out, "r1"), include_usage=False)
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in pieces)
    assert json.loads(text) == out
    assert len(pieces) == 2 + -(-len(text) // chat.PIECE_CHARS)
