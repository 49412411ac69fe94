"""The providers' stream parsers, fed recorded-shaped events (each checked by the official
SDK's own event type in ``fakes.teacher_streams``) as the bytes a socket would deliver."""

from __future__ import annotations

import json
from typing import Any

import pytest

from apprentice.teachers.streaming import (
    AnthropicReader,
    GeminiReader,
    OpenAIReader,
    SseDecoder,
    SseEvent,
    StreamFailure,
    StreamReader,
    protocol_for,
)
from fakes import teacher_streams as ts

ANSWER = json.dumps({"category": "billing", "priority": 2, "note": "déjà vu ✓"})


def _wire(protocol: ts.Protocol, events: list[ts.SseOut]) -> bytes:
    for event in events:
        ts.validate_event(protocol, event)
    return b"".join(ts.encode(protocol, e) for e in events)


def _read(reader: StreamReader, raw: bytes, step: int) -> str:
    """Feed ``raw`` ``step`` bytes at a time (splitting lines and UTF-8 characters)."""
    decoder, text = SseDecoder(), ""
    for i in range(0, len(raw), step):
        text += "".join(reader.read(e) for e in decoder.feed(raw[i : i + step]))
    return text + "".join(reader.read(e) for e in decoder.close())


def test_sse_framing_survives_any_split() -> None:
    raw = b': keep-alive\n\nevent: a\ndata: {"x":\ndata: 1}\n\ndata: two\r\n\r\ndata:three\n\n'
    expected = [SseEvent("a", '{"x":\n1}'), SseEvent(None, "two"), SseEvent(None, "three")]
    for step in range(1, len(raw) + 1):
        decoder, got = SseDecoder(), []
        for i in range(0, len(raw), step):
            got += decoder.feed(raw[i : i + step])
        assert got + decoder.close() == expected, step
    assert SseDecoder().feed(b"data: cut") == []
    cut = SseDecoder()
    cut.feed(b"data: last")
    assert cut.close() == [SseEvent(None, "last")]  # a body ending without a blank line


@pytest.mark.parametrize("step", [1, 3, 7, 4096])
def test_openai_text_usage_and_done(step: int) -> None:
    events = ts.openai_events(
        ANSWER, model="gpt-4o-2024-08-06", prompt_tokens=120, completion_tokens=30,
        include_usage=True,
    )  # fmt: skip
    reader = OpenAIReader()
    assert _read(reader, _wire("openai", events), step) == ANSWER
    assert reader.complete
    result = reader.result()
    assert (result.text, result.usage.input_tokens, result.usage.output_tokens) == (ANSWER, 120, 30)
    assert result.model == "gpt-4o-2024-08-06" and not result.truncated


def test_openai_refusal_length_cut_and_error() -> None:
    reader = OpenAIReader()
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"refusal": "I can't"}, "finish_reason": "length"}]}  # fmt: skip
    assert reader.read(SseEvent(None, json.dumps(chunk))) == "I can't"
    assert reader.result().truncated and not reader.complete  # no [DONE]: it broke off
    error = {"error": {"message": "The server had an error", "type": "server_error"}}
    with pytest.raises(StreamFailure) as failed:
        OpenAIReader().read(SseEvent(None, json.dumps(error)))
    assert failed.value.body == error
    with pytest.raises(StreamFailure, match="not JSON"):  # garbled: a failure, not a crash
        OpenAIReader().read(SseEvent(None, '{"choices": ['))
    no_usage = ts.openai_events(
        "{}", model="m", prompt_tokens=1, completion_tokens=1, include_usage=False
    )
    reader = OpenAIReader()
    _read(reader, _wire("openai", no_usage), 4096)
    assert reader.complete and reader.result().usage.total_tokens == 0  # billed worst case


def test_anthropic_forced_tool_json_and_cumulative_usage() -> None:
    events = ts.anthropic_events(
        ANSWER, model="claude-sonnet-4-5-20250929", input_tokens=120, output_tokens=30,
        tool_name="classify_ticket",
    )  # fmt: skip
    # A text block beside the forced tool is not the answer (as unstreamed parsing drops it).
    text_delta = {"type": "content_block_delta", "index": 1,
                  "delta": {"type": "text_delta", "text": "Here you go"}}  # fmt: skip
    events.insert(-2, ("content_block_delta", text_delta))
    reader = AnthropicReader(forced_tool=True)
    assert _read(reader, _wire("anthropic", events), 5) == ANSWER
    result = reader.result()
    assert reader.complete and result.text == ANSWER
    assert (result.usage.input_tokens, result.usage.output_tokens) == (120, 30)
    assert result.model == "claude-sonnet-4-5-20250929"


def test_anthropic_text_cache_tokens_max_tokens_ping_and_error() -> None:
    events = ts.anthropic_events(
        ANSWER, model="claude-haiku-4-5", input_tokens=10, output_tokens=7, tool_name=None,
        stop_reason="max_tokens",
    )  # fmt: skip
    start: dict[str, Any] = events[0][1]
    start["message"]["usage"].update(cache_creation_input_tokens=5, cache_read_input_tokens=3)
    final: dict[str, Any] = events[-2][1]
    final["usage"].update(input_tokens=11)  # a later cumulative count overwrites
    reader = AnthropicReader()
    assert _read(reader, _wire("anthropic", events), 9) == ANSWER
    result = reader.result()
    assert (result.usage.input_tokens, result.usage.output_tokens) == (11, 7)
    assert result.truncated
    cached = AnthropicReader()
    cached.read(SseEvent("message_start", json.dumps(start)))
    assert cached.result().usage.input_tokens == 10 + 5 + 3
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(StreamFailure) as failed:
        AnthropicReader().read(SseEvent("error", json.dumps(overloaded)))
    assert failed.value.body == overloaded


def test_gemini_pieces_usage_thoughts_max_tokens_and_blocked() -> None:
    events = ts.gemini_events(
        ANSWER, model="gemini-2.5-flash", prompt_tokens=120, candidates_tokens=30,
        finish_reason="MAX_TOKENS",
    )  # fmt: skip
    last: dict[str, Any] = events[-1][1]
    last["usageMetadata"]["thoughtsTokenCount"] = 12
    thought = {"text": "thinking...", "thought": True}
    last["candidates"][0]["content"]["parts"].insert(0, thought)
    reader = GeminiReader()
    assert _read(reader, _wire("google", events), 11) == ANSWER
    result = reader.result()
    assert reader.complete and result.truncated
    assert (result.usage.input_tokens, result.usage.output_tokens) == (120, 30 + 12)
    assert result.model == "gemini-2.5-flash"
    blocked = GeminiReader()
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 9}}
    assert blocked.read(SseEvent(None, json.dumps(body))) == ""
    assert blocked.complete and blocked.result().text == ""
    unfinished = GeminiReader()
    unfinished.read(SseEvent(None, json.dumps(events[0][1])))
    assert not unfinished.complete
    with pytest.raises(StreamFailure):
        GeminiReader().read(SseEvent(None, '{"error": {"code": 500, "status": "INTERNAL"}}'))


def test_each_provider_is_asked_to_stream_its_own_way() -> None:
    openai, anthropic, google = (protocol_for(p) for p in ("openai", "anthropic", "google"))
    assert openai is not None and anthropic is not None and google is not None
    assert protocol_for("openai_compatible") == openai and protocol_for("replay") is None
    assert openai.body({"model": "m"}) == {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert anthropic.body({"model": "m"}) == {"model": "m", "stream": True}
    url = "https://g/v1beta/models/gemini-2.5-flash:generateContent"
    assert (
        google.url(url) == "https://g/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert google.body({"contents": []}) == {"contents": []}
    forced = anthropic.reader({"tool_choice": {"type": "tool", "name": "x"}})
    assert isinstance(forced, AnthropicReader) and forced.forced_tool
    assert isinstance(google.reader({}), GeminiReader)
