"""The OpenAI-compatible chat API's shapes: the task input from the messages, and the answer
as one ``chat.completion`` or, with ``stream=true``, as ``chat.completion.chunk`` objects.

How a stream is served (token by token from the teacher, or whole) is
:mod:`apprentice.gateway.streaming`; this module only builds the objects. The chunks of
one answer: a first one with ``delta.role`` ``assistant``, one per piece of text
(``delta.content``), one with ``finish_reason`` ``stop``, and with
``stream_options.include_usage`` a last one with ``usage`` and no choices, as OpenAI
sends (earlier chunks then carry ``usage: null``).
"""

from __future__ import annotations

import time
from typing import Any

from apprentice import prompts
from apprentice.gateway import bodies, errors, reading
from apprentice.gateway.request import Result
from apprentice.teachers.base import Usage

__all__ = [
    "PIECE_CHARS",
    "chat_input",
    "chunk",
    "chunks",
    "closing",
    "completion",
    "head",
    "opening",
    "usage",
]

PIECE_CHARS = 32
"""Characters of the answer per chunk."""


def usage(tokens: Usage | None) -> dict[str, int]:
    """OpenAI's ``usage``: the teacher's billed tokens when its answer was served, the
    student's tokens as its tokenizer counted them; zeros only when nobody reported any
    (a server student that sends no ``usage``)."""
    if tokens is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return {
        "prompt_tokens": tokens.input_tokens,
        "completion_tokens": tokens.output_tokens,
        "total_tokens": tokens.total_tokens,
    }


def chat_input(messages: list[bodies.ChatMessage]) -> dict[str, Any]:
    """The task input is the JSON in the last user message (string or text parts)."""
    users = [(i, m) for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise errors.BadRequest("no user message: the last user message carries the input JSON")
    where, last = users[-1]
    content = last.content
    if isinstance(content, list):
        content = "".join(p.text or "" for p in content if p.type == "text")
    if content is None:
        raise errors.BadRequest(f"messages[{where}].content is empty; it must hold the input JSON")
    value = reading.loads(content, f"messages[{where}].content")
    if not isinstance(value, dict):
        raise errors.BadRequest(
            f"messages[{where}].content must be a JSON object (the task input), "
            f"got {type(value).__name__}"
        )
    return value


def _head(task: str, request_id: str, kind: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": kind,
        "created": int(time.time()),
        "model": task,
    }


def completion(task: str, result: Result) -> dict[str, Any]:
    """One ``chat.completion`` carrying the answer as JSON text."""
    message = {"role": "assistant", "content": prompts.render_output(result.output)}
    return {
        **_head(task, result.request_id, "chat.completion"),
        "choices": [{"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}],
        "usage": usage(result.usage),
    }


def head(task: str, request_id: str) -> dict[str, Any]:
    """What every chunk of one answer shares (its id is the request id's)."""
    return _head(task, request_id, "chat.completion.chunk")


def chunk(
    head: dict[str, Any], delta: dict[str, Any], finish: str | None, include_usage: bool
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with one choice."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    return {**head, "choices": [choice], **({"usage": None} if include_usage else {})}


def opening(head: dict[str, Any], include_usage: bool) -> dict[str, Any]:
    """The first chunk: the role, no text yet."""
    return chunk(head, {"role": "assistant", "content": ""}, None, include_usage)


def closing(head: dict[str, Any], result: Result, include_usage: bool) -> list[dict[str, Any]]:
    """The chunks after the text: ``finish_reason``, then the usage when asked for."""
    out = [chunk(head, {}, "stop", include_usage)]
    if include_usage:
        out.append({**head, "choices": [], "usage": usage(result.usage)})
    return out


def chunks(task: str, result: Result, include_usage: bool) -> list[dict[str, Any]]:
    """The chunks of an answer that was not streamed as it was produced: its JSON text
    cut into :data:`PIECE_CHARS` pieces."""
    first = head(task, result.request_id)
    text = prompts.render_output(result.output)
    pieces = [
        chunk(first, {"content": text[i : i + PIECE_CHARS]}, None, include_usage)
        for i in range(0, len(text), PIECE_CHARS)
    ]
    return [opening(first, include_usage), *pieces, *closing(first, result, include_usage)]
