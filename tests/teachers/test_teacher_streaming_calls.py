"""A remote teacher streaming its answer from a loopback server in each provider's real
wire format: text reaches the sink as it arrives, the answer is validated once at the
end, cost comes from the stream's usage, and retries stop at the first streamed byte."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from teacher_support import FakeClock

from apprentice.config import TaskConfig
from apprentice.teachers import errors, pricing
from apprentice.teachers.base import StreamingTeacher, Usage
from fakes import teacher_streams as ts
from fakes.teachers import FakeTeacherServer, Reply, anthropic_error, gemini_error, openai_error

GOOD = {"category": "billing", "priority": 2}
INPUT = {"text": "I was charged twice this month"}
KINDS = {"openai": "openai", "anthropic": "anthropic", "google": "google"}


@pytest.fixture(params=["openai", "anthropic", "google"])
async def fake(request: pytest.FixtureRequest) -> AsyncIterator[FakeTeacherServer]:
    async with FakeTeacherServer(request.param, answer=lambda _: GOOD) as server:
        yield server


def _teacher(make_teacher: Any, fake: FakeTeacherServer) -> StreamingTeacher:
    teacher = make_teacher(KINDS[fake.protocol], fake.base_url)
    assert isinstance(teacher, StreamingTeacher)
    return teacher


def _refusal(protocol: str) -> Reply:
    reply = {
        "openai": openai_error(429, "Rate limit reached", type="rate_limit_error"),
        "anthropic": anthropic_error(429, "rate_limit_error", "Rate limited"),
        "google": gemini_error(429, "RESOURCE_EXHAUSTED", "Rate limited"),
    }[protocol]
    reply.headers["retry-after"] = "2"
    return reply


def _cut(protocol: str) -> Reply:
    """A stream that sends some text, then ends before its end marker."""
    events = {
        "openai": ts.openai_events(json.dumps(GOOD), model="m", prompt_tokens=1,
                                   completion_tokens=1, include_usage=True),
        "anthropic": ts.anthropic_events(json.dumps(GOOD), model="m", input_tokens=1,
                                         output_tokens=1, tool_name="classify_ticket"),
        "google": ts.gemini_events(json.dumps(GOOD), model="m", prompt_tokens=1,
                                   candidates_tokens=1),
    }[protocol]  # fmt: skip
    return Reply(events=events[:4])


async def test_text_reaches_the_sink_as_it_streams_and_usage_prices_it(
    make_teacher: Any, fake: FakeTeacherServer, task: TaskConfig
) -> None:
    teacher = _teacher(make_teacher, fake)
    pieces: list[str] = []
    answer = await teacher.generate_stream(task, INPUT, sink=pieces.append)
    assert answer.output == GOOD and json.loads("".join(pieces)) == GOOD
    assert len(pieces) > 2 and answer.attempts == 1
    assert answer.usage == Usage(fake.prompt_tokens, fake.completion_tokens)
    price = teacher.price  # type: ignore[attr-defined]
    assert answer.cost == pricing.cost(answer.usage, price) > 0
    (sent,) = fake.received
    assert sent.json.get("stream") is True or sent.path.endswith(":streamGenerateContent")
    if fake.protocol == "openai":
        assert sent.json["stream_options"] == {"include_usage": True}
    if fake.protocol == "google":
        assert sent.query == {"alt": "sse"}


async def test_a_refusal_before_the_first_byte_is_retried(
    make_teacher: Any, fake: FakeTeacherServer, task: TaskConfig, clock: FakeClock
) -> None:
    fake.script(_refusal(fake.protocol))
    pieces: list[str] = []
    answer = await _teacher(make_teacher, fake).generate_stream(task, INPUT, sink=pieces.append)
    assert answer.output == GOOD and answer.attempts == 2
    assert json.loads("".join(pieces)) == GOOD  # the refused attempt streamed nothing
    assert clock.sleeps == [2.0] and len(fake.received) == 2


async def test_a_stream_cut_after_its_first_byte_is_not_retried_and_costs_its_worst_case(
    make_teacher: Any, fake: FakeTeacherServer, task: TaskConfig
) -> None:
    fake.script(_cut(fake.protocol))
    teacher = _teacher(make_teacher, fake)
    pieces: list[str] = []
    with pytest.raises(errors.ProviderError) as failed:
        await teacher.generate_stream(task, INPUT, sink=pieces.append)
    assert pieces and len(fake.received) == 1  # part went out: a retry would repeat it
    assert "before its end marker" in str(failed.value)
    assert failed.value.cost is not None and failed.value.cost > 0  # the model ran


async def test_an_invalid_streamed_answer_is_not_repaired(
    make_teacher: Any, fake: FakeTeacherServer, task: TaskConfig
) -> None:
    fake.answer = lambda _: {"category": "billing"}  # priority missing
    pieces: list[str] = []
    with pytest.raises(errors.InvalidOutput) as failed:
        await _teacher(make_teacher, fake).generate_stream(task, INPUT, sink=pieces.append)
    assert "streamed already" in str(failed.value) and "priority" in str(failed.value)
    assert len(fake.received) == 1 and json.loads("".join(pieces)) == {"category": "billing"}
    assert failed.value.cost is not None and failed.value.cost > 0  # billed: booked


async def test_an_empty_stream_gets_its_one_ordinary_repair(
    make_teacher: Any, task: TaskConfig
) -> None:
    async with FakeTeacherServer("openai", answer=lambda _: GOOD) as fake:
        empty = ts.openai_events("", model="m", prompt_tokens=5, completion_tokens=1,
                                 include_usage=True)  # fmt: skip
        fake.script(Reply(events=empty))
        pieces: list[str] = []
        answer = await _teacher(make_teacher, fake).generate_stream(task, INPUT, sink=pieces.append)
        assert answer.output == GOOD and pieces == []  # the repair answered whole
        assert [r.json.get("stream") for r in fake.received] == [True, None]
        assert answer.usage == Usage(5 + fake.prompt_tokens, 1 + fake.completion_tokens)


async def test_a_compatible_server_that_refuses_to_stream_answers_whole(
    make_teacher: Any, task: TaskConfig
) -> None:
    async with FakeTeacherServer("openai", answer=lambda _: GOOD) as fake:
        fake.script(openai_error(400, "Unrecognized request argument: stream_options"))
        teacher = make_teacher("openai_compatible", fake.base_url)
        pieces: list[str] = []
        answer = await teacher.generate_stream(task, INPUT, sink=pieces.append)
        assert answer.output == GOOD and pieces == []  # answered whole, sent in pieces later
        assert [r.json.get("stream") for r in fake.received] == [True, None]
    async with FakeTeacherServer("openai", answer=lambda _: GOOD) as fake:
        fake.script(openai_error(400, "Invalid schema"))
        with pytest.raises(errors.BadRequest):  # OpenAI itself: a 400 is the request's fault
            await make_teacher("openai", fake.base_url).generate_stream(
                task, INPUT, sink=pieces.append
            )
        assert len(fake.received) == 1
