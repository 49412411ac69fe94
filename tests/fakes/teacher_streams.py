"""The providers' streamed answers, event by event, as the real APIs send them.

Used by :class:`fakes.teachers.FakeTeacherServer` for a request that asks to stream
(``stream: true``; Gemini's ``:streamGenerateContent?alt=sse``), and by the parser tests
as recorded-shaped events. Every event is first parsed by the official SDK's own type
(``openai.types.chat.ChatCompletionChunk``, ``anthropic.types.RawMessageStreamEvent``,
``google.genai.types.GenerateContentResponse``), so the fakes cannot drift from the wire.

- OpenAI: ``data: <chat.completion.chunk>`` events; the role first, the text in pieces,
  ``finish_reason``, the usage chunk (no choices) when ``stream_options.include_usage``,
  then ``data: [DONE]``.
- Anthropic: named events ``message_start`` (usage: input tokens, 1 output token so far),
  ``content_block_start`` (the forced ``tool_use`` block, or a text block), ``ping``,
  ``content_block_delta`` (``input_json_delta`` / ``text_delta``), ``content_block_stop``,
  ``message_delta`` (stop reason, cumulative usage), ``message_stop``.
- Gemini: ``data: <GenerateContentResponse>`` events with CRLF line ends, as Google sends;
  each carries new text and the usage so far; the last has ``finishReason``. No end marker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, Literal

import pydantic
from aiohttp import web
from anthropic.types import RawMessageStreamEvent
from openai.types.chat import ChatCompletionChunk

__all__ = [
    "SseOut",
    "anthropic_events",
    "encode",
    "gemini_events",
    "openai_events",
    "pieces",
    "send",
    "validate_event",
]

SseOut = tuple[str | None, Any]
"""One event to send: its ``event:`` name (``None``: unnamed) and its data (JSON or a str)."""

Protocol = Literal["openai", "anthropic", "google"]
_ANTHROPIC_EVENT: pydantic.TypeAdapter[RawMessageStreamEvent] = pydantic.TypeAdapter(
    RawMessageStreamEvent
)


def pieces(text: str, size: int = 6) -> list[str]:
    """``text`` cut as a model streams it: a few characters at a time."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def openai_events(
    text: str, *, model: str, prompt_tokens: int, completion_tokens: int, include_usage: bool,
    finish_reason: str = "stop",
) -> list[SseOut]:  # fmt: skip
    head = {"id": "chatcmpl-AbC123", "object": "chat.completion.chunk", "created": 1_763_900_000,
            "model": model, "service_tier": "default", "system_fingerprint": "fp_test"}  # fmt: skip
    extra: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None) -> SseOut:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return None, {**head, "choices": [choice], **extra}

    out = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    out += [chunk({"content": piece}, None) for piece in pieces(text)]
    out.append(chunk({}, finish_reason))
    if include_usage:
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}  # fmt: skip
        out.append((None, {**head, "choices": [], "usage": usage}))
    return [*out, (None, "[DONE]")]


def anthropic_events(
    text: str, *, model: str, input_tokens: int, output_tokens: int, tool_name: str | None,
    stop_reason: str | None = None,
) -> list[SseOut]:  # fmt: skip
    """A forced tool's JSON (``tool_name`` given) or plain text, streamed."""
    usage = {"input_tokens": input_tokens, "output_tokens": 1, "cache_creation_input_tokens": 0,
             "cache_read_input_tokens": 0, "service_tier": "standard"}  # fmt: skip
    message = {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
               "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": usage}  # fmt: skip
    if tool_name is not None:
        block = {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": tool_name,
                 "input": {}}  # fmt: skip
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(text)]
    else:
        block = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": p} for p in pieces(text)]
    stop = stop_reason or ("tool_use" if tool_name is not None else "end_turn")
    return [
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
        ("ping", {"type": "ping"}),
        *[("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d})
          for d in deltas],
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip


def gemini_events(
    text: str, *, model: str, prompt_tokens: int, candidates_tokens: int,
    finish_reason: str = "STOP",
) -> list[SseOut]:  # fmt: skip
    parts = pieces(text)
    out: list[SseOut] = []
    for i, piece in enumerate(parts):
        last = i == len(parts) - 1
        so_far = candidates_tokens if last else max(1, candidates_tokens * (i + 1) // len(parts))
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"},
                                     "index": 0}  # fmt: skip
        if last:
            candidate["finishReason"] = finish_reason
        usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": so_far,
                 "totalTokenCount": prompt_tokens + so_far}  # fmt: skip
        out.append((None, {"candidates": [candidate], "usageMetadata": usage,
                           "modelVersion": model, "responseId": "mHsjaLOVJY2Wz7IPlN2R4Qc"}))  # fmt: skip
    return out


def validate_event(protocol: Protocol, event: SseOut) -> None:
    """Parse one event with the official SDK's type (raises if the fake drifted)."""
    name, data = event
    if isinstance(data, str):
        return  # [DONE]
    if protocol == "openai":
        ChatCompletionChunk.model_validate(data, strict=False)
    elif protocol == "anthropic":
        if name != "ping":
            _ANTHROPIC_EVENT.validate_python(data)
    else:
        try:  # google-genai is optional here, as in fakes.teachers.validate_with_sdk
            from google.genai import types as genai_types
        except ImportError:
            return
        genai_types.GenerateContentResponse.model_validate(data)


def encode(protocol: Protocol, event: SseOut) -> bytes:
    """One event as the provider frames it on the wire."""
    name, data = event
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    end = "\r\n" if protocol == "google" else "\n"
    head = f"event: {name}{end}" if name is not None else ""
    return f"{head}data: {payload}{end}{end}".encode()


async def send(
    request: web.Request,
    protocol: Protocol,
    events: Sequence[SseOut],
    *,
    hold: asyncio.Event | None = None,
    holding: asyncio.Event | None = None,
) -> web.StreamResponse:
    """Stream ``events``; with ``hold``, stop after the first one that carries text until
    the test sets it (``holding`` is set while waiting)."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    held = hold is None
    for event in events:
        validate_event(protocol, event)
        await resp.write(encode(protocol, event))
        if not held and _has_text(event):
            held = True
            if holding is not None:
                holding.set()
            assert hold is not None
            await hold.wait()
    await resp.write_eof()
    return resp


def _has_text(event: SseOut) -> bool:
    """Whether the event adds text to the answer (the hold comes after the first such)."""
    data = event[1]
    if not isinstance(data, dict):
        return False
    if data.get("type") == "content_block_delta":
        return True
    choices = data.get("choices") or data.get("candidates") or []
    first = choices[0] if choices else {}
    content = (first.get("delta") or {}).get("content") or first.get("content")
    return bool(content)
