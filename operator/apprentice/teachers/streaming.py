"""The providers' streaming protocols as small pure functions: SSE framing, then one reader
per protocol that turns each event into the text it adds and keeps the usage as billed.

No I/O here (the call that feeds them is :mod:`apprentice.teachers.streamed`), so each
is tested from recorded-shaped events.

- **SSE framing** (:class:`SseDecoder`): ``field: value`` lines, a blank line ends an
  event, several ``data:`` lines join with ``\\n``, ``:`` lines are comments. Bytes are
  decoded per whole line, so a UTF-8 character split across network reads is intact.
- **OpenAI chat completions** (also every ``openai_compatible`` server): the body gets
  ``stream: true`` and ``stream_options: {include_usage: true}``; each event is a
  ``chat.completion.chunk`` whose ``choices[0].delta.content`` (or ``.refusal``) is text;
  the last chunk before ``data: [DONE]`` has no choices and the ``usage`` of the call.
  ``[DONE]`` ends it. A ``{"error": ...}`` event is a failure.
- **Anthropic Messages**: ``stream: true``; ``message_start`` carries ``message.usage``
  (input tokens, cache tokens, output so far) and the model; ``content_block_delta``
  carries ``text_delta.text`` or, for the forced tool that holds a structured answer,
  ``input_json_delta.partial_json``; ``message_delta`` carries the ``stop_reason`` and the
  cumulative ``usage`` (it overwrites, never adds); ``message_stop`` ends it; ``ping`` is
  ignored and an ``error`` event is a failure.
- **Gemini**: ``:streamGenerateContent?alt=sse``; every event is a whole
  ``GenerateContentResponse`` whose ``candidates[0].content.parts[].text`` (not thoughts)
  is new text and whose ``usageMetadata`` is cumulative. A ``finishReason`` ends it (or
  a ``promptFeedback.blockReason`` with no candidates: a blocked prompt, empty answer).

A stream that stops before its end marker broke off: :attr:`StreamReader.complete` stays
false and the caller treats it as a dropped connection (the model ran, maybe billed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from apprentice.teachers.base import Usage
from apprentice.teachers.remote import ChatResult

__all__ = [
    "PROTOCOLS",
    "AnthropicReader",
    "GeminiReader",
    "OpenAIReader",
    "SseDecoder",
    "SseEvent",
    "StreamFailure",
    "StreamProtocol",
    "StreamReader",
    "protocol_for",
]


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One Server-Sent Event: its ``event:`` name (``None`` when unnamed) and ``data``."""

    event: str | None
    data: str


class SseDecoder:
    """Bytes in, whole events out (see the module docstring)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        out: list[SseEvent] = []
        for raw in lines:
            line = raw.removesuffix(b"\r").decode("utf-8", errors="replace")
            event = self._line(line)
            if event is not None:
                out.append(event)
        return out

    def close(self) -> list[SseEvent]:
        """Whatever the last line held when the body ended without a blank line."""
        tail = [] if not self._buffer else self.feed(b"\n")
        event = self._line("")
        return tail + ([event] if event is not None else [])

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data and self._event is None:
                return None
            event = SseEvent(self._event, "\n".join(self._data))
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None  # id and retry: not used by any provider here


class StreamFailure(Exception):
    """The provider reported an error inside a stream that had started (HTTP 200)."""

    def __init__(self, body: Any) -> None:
        super().__init__(str(body)[:300])
        self.body = body


class StreamReader(Protocol):
    """Reads one protocol's events: each returns the text it adds to the answer."""

    @property
    def complete(self) -> bool: ...

    def read(self, event: SseEvent) -> str: ...

    def result(self) -> ChatResult: ...


def _json(event: SseEvent) -> dict[str, Any]:
    try:
        value = json.loads(event.data)
    except ValueError:
        raise StreamFailure(
            {"error": {"message": f"stream event is not JSON: {event.data[:200]!r}"}}
        ) from None
    if not isinstance(value, dict):
        raise StreamFailure({"error": {"message": f"stream event is not an object: {value!r}"}})
    if "error" in value:
        raise StreamFailure(value)
    return value


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


@dataclass
class _Text:
    """What every reader accumulates."""

    parts: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None
    truncated: bool = False
    complete: bool = False

    def result(self) -> ChatResult:
        return ChatResult(
            text="".join(self.parts),
            usage=Usage(self.input_tokens, self.output_tokens),
            model=self.model,
            truncated=self.truncated,
        )

    def add(self, text: Any) -> str:
        if isinstance(text, str) and text:
            self.parts.append(text)
            return text
        return ""


class OpenAIReader(_Text):
    """``chat.completion.chunk`` events, ``[DONE]`` at the end."""

    def read(self, event: SseEvent) -> str:
        if event.data.strip() == "[DONE]":
            self.complete = True
            return ""
        chunk = _json(event)
        self.model = chunk.get("model") or self.model
        usage = chunk.get("usage")
        if isinstance(usage, dict):  # the last chunk, with include_usage
            self.input_tokens = _int(usage.get("prompt_tokens"))
            self.output_tokens = _int(usage.get("completion_tokens"))
        added = ""
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            added += self.add(delta.get("content")) + self.add(delta.get("refusal"))
            if choice.get("finish_reason") == "length":
                self.truncated = True
        return added


@dataclass
class AnthropicReader(_Text):
    """``message_start`` ... ``message_stop``; with a forced tool only its JSON is the answer
    (text blocks beside it are kept apart, as the non-streaming parser drops them)."""

    forced_tool: bool = False
    _tool: list[str] = field(default_factory=list)

    def read(self, event: SseEvent) -> str:
        if event.event == "ping" or not event.data:
            return ""
        body = _json(event)
        kind = body.get("type") or event.event
        if kind == "message_start":
            message = body.get("message") or {}
            self.model = message.get("model") or self.model
            self._usage(message.get("usage") or {})
        elif kind == "content_block_delta":
            delta = body.get("delta") or {}
            if delta.get("type") == "input_json_delta":
                json_text = delta.get("partial_json")
                if isinstance(json_text, str) and json_text:
                    self._tool.append(json_text)
                    return json_text
            elif delta.get("type") == "text_delta":
                text = self.add(delta.get("text"))
                return "" if self.forced_tool else text
        elif kind == "message_delta":
            if (body.get("delta") or {}).get("stop_reason") == "max_tokens":
                self.truncated = True
            self._usage(body.get("usage") or {})
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            raise StreamFailure(body)
        return ""

    def _usage(self, usage: dict[str, Any]) -> None:
        """Cumulative counts: each one present overwrites (absent ones keep their value)."""
        if usage.get("input_tokens") is not None:
            cached = _int(usage.get("cache_creation_input_tokens")) + _int(
                usage.get("cache_read_input_tokens")
            )
            self.input_tokens = _int(usage["input_tokens"]) + cached
        if usage.get("output_tokens") is not None:
            self.output_tokens = _int(usage["output_tokens"])

    def result(self) -> ChatResult:
        if not self._tool:
            return super().result()
        text = "".join(self._tool)
        return ChatResult(
            text, Usage(self.input_tokens, self.output_tokens), self.model, self.truncated
        )


class GeminiReader(_Text):
    """Whole ``GenerateContentResponse`` objects; ``finishReason`` at the end."""

    def read(self, event: SseEvent) -> str:
        body = _json(event)
        self.model = body.get("modelVersion") or self.model
        meta = body.get("usageMetadata")
        if isinstance(meta, dict):
            self.input_tokens = _int(meta.get("promptTokenCount"))
            self.output_tokens = _int(meta.get("candidatesTokenCount")) + _int(
                meta.get("thoughtsTokenCount")
            )
        candidates = body.get("candidates") or []
        if not candidates:
            if (body.get("promptFeedback") or {}).get("blockReason"):
                self.complete = True  # a blocked prompt: an empty answer, as unstreamed
            return ""
        first = candidates[0]
        parts = (first.get("content") or {}).get("parts") or []
        added = "".join(self.add(p.get("text")) for p in parts if not p.get("thought"))
        reason = first.get("finishReason")
        if reason:
            self.complete = True
            self.truncated = self.truncated or reason == "MAX_TOKENS"
        return added


@dataclass(frozen=True)
class StreamProtocol:
    """How one provider is asked to stream, and the reader of its answer."""

    name: str

    def url(self, url: str) -> str:
        if self.name == "google":
            return url.replace(":generateContent", ":streamGenerateContent") + "?alt=sse"
        return url

    def body(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.name == "openai":
            return {**body, "stream": True, "stream_options": {"include_usage": True}}
        if self.name == "anthropic":
            return {**body, "stream": True}
        return body

    def reader(self, body: dict[str, Any]) -> StreamReader:
        if self.name == "anthropic":
            choice = body.get("tool_choice") or {}
            return AnthropicReader(forced_tool=choice.get("type") == "tool")
        return GeminiReader() if self.name == "google" else OpenAIReader()


PROTOCOLS = {
    "openai": StreamProtocol("openai"),
    "openai_compatible": StreamProtocol("openai"),
    "anthropic": StreamProtocol("anthropic"),
    "google": StreamProtocol("google"),
}
"""The streaming protocol of each HTTP provider (``provider`` label -> protocol)."""


def protocol_for(provider: str) -> StreamProtocol | None:
    """The provider's streaming protocol, or ``None`` for one that cannot stream."""
    return PROTOCOLS.get(provider)
