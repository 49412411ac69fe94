"""``stream=true``: the teacher's answer goes to the client token by token as it is produced.

The request runs the one request path (:mod:`apprentice.gateway.pipeline`: admit, call,
judge, commit) in a task of its own, with :attr:`~apprentice.gateway.request.Meta.stream`
set. When the teacher serves, it is asked to stream (:mod:`apprentice.teachers.streamed`)
and every text delta it reads is relayed here and written to the client at once. When
the stream ends, the answer is parsed and validated once, then judged, compared,
committed and settled exactly as an unstreamed one: the same steps, run once.

- **Nothing streamed** (a student or the replay teacher answered, a cached answer, or
  the teacher's answer was retried whole): the answer is sent in pieces once it is
  stored (``chat.chunks``), and a failure is the usual JSON error with its status.
- **A failure after text went out** (the teacher's answer is invalid, its stream broke
  off, the store refused): the stream ends with one ``data: {"error": {...}}`` event,
  the contract's error body (the OpenAI SDK raises it as ``APIError``), and no
  ``[DONE]``. What the call may have cost is booked as for an unstreamed request. When
  the request was answered otherwise (a streamed student answer proved invalid and the
  teacher stepped in), the event's type is ``stream_broken``: the text sent is not the
  answer stored.
- **The client hangs up mid-stream**: the request task is not the client's, so the
  teacher's stream is read to its end, the answer stored and its cost booked. Tasks
  still running at shutdown are awaited (:func:`install`).

Two event shapes. The chat API sends OpenAI's ``chat.completion.chunk`` objects
(:mod:`apprentice.gateway.chat`), then ``data: [DONE]``. The task API's native variant
(``{"input": ..., "stream": true}``) sends ``{"delta": "<text>"}`` events while the
teacher streams (none when the answer was not streamed), then one
``{"output": {...}, "request_id": "..."}`` event with the validated answer, then
``data: [DONE]``. The concatenated deltas are the teacher's text as produced: JSON
that parses to ``output``.

The student serves token by token too where its server streams: vLLM and llama.cpp
(OpenAI's chunk events, :mod:`apprentice.students.http`) and Ollama (a JSON line per
piece), on the local-only route (on the compared route the teacher's answer serves).
In-process students (transformers, the tiny model) and the ``openai`` fine-tune answer
whole, so their answers are sent in pieces once stored. A streamed student answer that proves
invalid is replaced by the teacher as usual (stored, booked), but its text is already
out: the stream ends with a ``stream_broken`` event and the client retries.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from aiohttp import web

from apprentice import prompts
from apprentice.gateway import chat, errors
from apprentice.gateway.request import Meta, Result
from apprentice.teachers.base import TextSink

__all__ = ["ChatFormat", "Relay", "TaskFormat", "drain", "install", "serve"]

log = logging.getLogger(__name__)

Event = dict[str, Any]
JOBS: web.AppKey[set[asyncio.Task[Result]]] = web.AppKey("stream_jobs", set)


class Format(Protocol):
    """The events of one API's stream."""

    def opening(self, request_id: str) -> list[Event]: ...

    def delta(self, text: str) -> Event: ...

    def closing(self, result: Result) -> list[Event]: ...

    def whole(self, result: Result) -> list[Event]: ...


class ChatFormat:
    """OpenAI's ``chat.completion.chunk`` events."""

    def __init__(self, task: str, include_usage: bool) -> None:
        self.task = task
        self.include_usage = include_usage
        self._head: dict[str, Any] = {}

    def opening(self, request_id: str) -> list[Event]:
        self._head = chat.head(self.task, request_id)
        return [chat.opening(self._head, self.include_usage)]

    def delta(self, text: str) -> Event:
        return chat.chunk(self._head, {"content": text}, None, self.include_usage)

    def closing(self, result: Result) -> list[Event]:
        return chat.closing(self._head, result, self.include_usage)

    def whole(self, result: Result) -> list[Event]:
        return chat.chunks(self.task, result, self.include_usage)


class TaskFormat:
    """The task API's native events (see the module docstring)."""

    def opening(self, request_id: str) -> list[Event]:
        return []

    def delta(self, text: str) -> Event:
        return {"delta": text}

    def closing(self, result: Result) -> list[Event]:
        return [{"output": result.output, "request_id": result.request_id}]

    def whole(self, result: Result) -> list[Event]:
        return self.closing(result)


class Relay:
    """The teacher's text on its way to the client: put by the teacher, taken by the writer."""

    def __init__(self) -> None:
        self.request_id = ""
        self.pending: list[str] = []
        self.sent: list[str] = []
        self.wake = asyncio.Event()

    def open(self, request_id: str) -> TextSink:
        """``Meta.stream``: the sink of the text of the answer that serves. A second
        producer (the teacher after a streamed student answer proved invalid) is not
        relayed: the client has the first one's text, and gets an error event at the end."""
        if self.pending or self.sent:
            return _ignore
        self.request_id = request_id
        return self.put

    def put(self, text: str) -> None:
        self.pending.append(text)
        self.wake.set()

    def take(self) -> list[str]:
        out, self.pending = self.pending, []
        self.sent += out
        return out

    async def until(self, job: asyncio.Task[Result]) -> None:
        """Until there is text to send or the request is done."""
        while not self.pending and not job.done():
            self.wake.clear()
            if self.pending or job.done():
                return
            await self.wake.wait()


def _ignore(text: str) -> None:
    """The sink of a producer whose text cannot be relayed (see :meth:`Relay.open`)."""


class _Out:
    """The SSE response; a client gone mid-stream turns every later write into a no-op."""

    def __init__(self) -> None:
        self.resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        self.gone = False

    @classmethod
    async def opened(cls, request: web.Request) -> _Out:
        """The headers sent (a client gone before its first byte is gone, not an error)."""
        out = cls()
        try:
            await out.resp.prepare(request)
        except ConnectionError:
            out.gone = True
        return out

    async def send(self, events: list[Event], done: bool = False) -> None:
        if self.gone or (not events and not done):
            return
        data = b"".join(_sse(e) for e in events) + (b"data: [DONE]\n\n" if done else b"")
        try:
            await self.resp.write(data)
            if done:
                await self.resp.write_eof()
        except ConnectionError:  # the request runs on: its answer is stored and booked
            self.gone = True


def _sse(event: Event) -> bytes:
    return f"data: {json.dumps(event, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


async def serve(
    request: web.Request,
    run: Callable[[Meta], Coroutine[Any, Any, Result]],
    meta: Meta,
    fmt: Format,
) -> web.StreamResponse:
    """Run the request with a relay and stream its answer (see the module docstring)."""
    relay = Relay()
    job = _detach(request.app, run(dataclasses.replace(meta, stream=relay.open)))
    job.add_done_callback(lambda _: relay.wake.set())
    await relay.until(job)
    if not relay.pending:  # answered whole (or failed before any text: a JSON error)
        events = fmt.whole(await job)
        out = await _Out.opened(request)
        await out.send(events, done=True)
        return out.resp
    out = await _Out.opened(request)
    await out.send(fmt.opening(relay.request_id))
    while True:
        await out.send([fmt.delta(text) for text in relay.take()])
        if job.done() and not relay.pending:
            break
        await relay.until(job)
    await out.send(*_ending(job, relay, fmt))
    return out.resp


def _ending(job: asyncio.Task[Result], relay: Relay, fmt: Format) -> tuple[list[Event], bool]:
    """The last events of a stream that sent text, and whether ``[DONE]`` follows."""
    try:
        result = job.result()
    except errors.GatewayError as exc:
        return [exc.body()], False
    except Exception:
        log.exception("streamed request %s failed", relay.request_id)
        return [errors.GatewayError("internal error; see the gateway log").body()], False
    if _parses_to("".join(relay.sent), result.output):
        return fmt.closing(result), True
    return [errors.StreamBroken(result.request_id).body()], False


def _parses_to(text: str, output: object) -> bool:
    try:
        return prompts.parse_output(text) == output
    except prompts.OutputParseError:
        return False


def _detach(app: web.Application, call: Coroutine[Any, Any, Result]) -> asyncio.Task[Result]:
    """The request as a task of its own: a client that hangs up does not cut it off."""
    job = asyncio.get_running_loop().create_task(call)
    jobs = app.get(JOBS)
    if jobs is not None:
        jobs.add(job)
        job.add_done_callback(jobs.discard)
    return job


def install(app: web.Application) -> None:
    """Keep the app's streamed requests, and await them at shutdown (paid answers)."""
    app[JOBS] = set()

    async def on_shutdown(app: web.Application) -> None:
        await drain(app)

    app.on_shutdown.append(on_shutdown)


async def drain(app: web.Application) -> None:
    """Until every streamed request of ``app`` is done (stored and booked)."""
    jobs = list(app.get(JOBS, ()))
    if jobs:
        await asyncio.gather(*jobs, return_exceptions=True)
