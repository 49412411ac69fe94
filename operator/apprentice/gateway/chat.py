"""The OpenAI-compatible chat API's shapes: the task input from the messages, and the answer
as one ``chat.completion`` or, with ``stream=true``, as Server-Sent Events of
``chat.completion.chunk`` objects ending with ``data: [DONE]``.

An answer is one validated JSON object, so a stream is that answer in pieces: the
request runs its whole path first (teacher and/or student, judging, the one store
transaction, the budget settled), then the pieces go out. A client that hangs up
mid-stream therefore never loses a paid answer: it is stored and booked before the
first byte, and the write error of the hang-up is ignored. Errors before the stream
(bad input, budget, teacher failure) are the usual JSON error with its status.
``stream_options.include_usage`` adds the final chunk with ``usage`` and no choices,
as OpenAI does. The task API's own variant (``{"input": ..., "stream": true}``) sends
one event, ``{"output", "request_id"}``, then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from apprentice import prompts
from apprentice.gateway import bodies, errors, reading
from apprentice.gateway.request import Result
from apprentice.teachers.base import Usage

__all__ = ["PIECE_CHARS", "chat_input", "chunks", "completion", "events", "stream", "usage"]

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


def chunks(task: str, result: Result, include_usage: bool) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of one answer, in order."""
    head = _head(task, result.request_id, "chat.completion.chunk")
    text = prompts.render_output(result.output)
    no_usage: dict[str, Any] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {**head, "choices": [choice], **no_usage}

    out = [chunk({"role": "assistant", "content": ""}, None)]
    out += [
        chunk({"content": text[i : i + PIECE_CHARS]}, None)
        for i in range(0, len(text), PIECE_CHARS)
    ]
    out.append(chunk({}, "stop"))
    if include_usage:
        out.append({**head, "choices": [], "usage": usage(result.usage)})
    return out


async def events(request: web.Request, items: list[dict[str, Any]]) -> web.StreamResponse:
    """Send ``items`` as SSE ``data:`` events, then ``data: [DONE]``; a client gone
    mid-stream is not an error (see the module docstring)."""
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    try:
        for item in items:
            await resp.write(f"data: {json.dumps(item, separators=(',', ':'))}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
    except ConnectionError:
        pass  # the answer is stored and booked already; only the rest of the stream is lost
    return resp


async def stream(
    request: web.Request, task: str, result: Result, include_usage: bool
) -> web.StreamResponse:
    """The chat answer as ``chat.completion.chunk`` events."""
    return await events(request, chunks(task, result, include_usage))
