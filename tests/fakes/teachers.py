"""Loopback teacher servers speaking the real OpenAI, Anthropic and Gemini wire formats.

Reusable by any suite (gateway end-to-end, llm_judge, teachers)::

    from fakes.teachers import FakeTeacherServer, openai_error

    async with FakeTeacherServer("anthropic", answer=lambda task_input: {"label": "x"}) as fake:
        cfg = ProviderConfig(provider="anthropic", model="claude-sonnet-4-5",
                             base_url=fake.base_url, api_key_env="ANTHROPIC_API_KEY")
        fake.script(anthropic_error(529, "overloaded_error", "Overloaded"))  # next reply
        ...
        assert fake.received[0].headers["x-api-key"] == "sk-..."

- ``protocol``: ``openai`` (``/v1/chat/completions``, ``/v1/embeddings``; also use it for
  ``openai_compatible``), ``anthropic`` (``/v1/messages``) or ``google``
  (``/v1beta/models/{model}:generateContent`` and ``:batchEmbedContents``).
- ``base_url`` is what a provider block's ``base_url`` takes for that protocol.
- ``answer(task_input) -> dict | str`` makes the default successful reply: a dict
  becomes the structured answer, a str is sent verbatim as the model's text (malformed
  JSON, prose). ``task_input`` is the last user message parsed as JSON (or ``{"text": ...}``).
- ``script(*replies)`` queues exact replies (errors, hangs, odd bodies) used before the
  default; :class:`Reply` with ``hang=True`` never answers (for client timeouts).
- ``received`` records every request: path, lower-cased headers, JSON body.
- A request that asks to stream (``stream: true``, ``:streamGenerateContent``) is answered
  with the protocol's real events (:mod:`fakes.teacher_streams`); ``Reply(events=...)``
  scripts exact ones. With ``hold`` set to an event, the stream stops after its first
  text until the test sets it (``holding`` is set meanwhile).

Every success body this server sends for OpenAI and Anthropic is first parsed by the
official SDK's own response type (``openai.types.chat.ChatCompletion``,
``anthropic.types.Message``), so the fake cannot drift from the real format.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from fakes import teacher_streams
from fakes.teacher_bodies import (
    COMPLETION_TOKENS,
    PROMPT_TOKENS,
    Protocol,
    Reply,
    anthropic_error,
    anthropic_message,
    fake_vector,
    gemini_embeddings,
    gemini_error,
    gemini_response,
    openai_chat,
    openai_embeddings,
    openai_error,
    validate_with_sdk,
)

__all__ = [
    "FakeTeacherServer",
    "Protocol",
    "Received",
    "Reply",
    "anthropic_error",
    "anthropic_message",
    "fake_vector",
    "gemini_embeddings",
    "gemini_error",
    "gemini_response",
    "openai_chat",
    "openai_embeddings",
    "openai_error",
    "validate_with_sdk",
]

Answer = Callable[[dict[str, Any]], "dict[str, Any] | str"]


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    query: dict[str, str]


# ---------------------------------------------------------------- the server


def _task_input(protocol: Protocol, body: dict[str, Any]) -> dict[str, Any]:
    """The last user turn, parsed as JSON when it is (it is, for task prompts)."""
    text = ""
    if protocol == "google":
        users = [c for c in body.get("contents", []) if c.get("role", "user") == "user"]
        if users:
            text = "".join(p.get("text", "") for p in users[-1].get("parts", []))
    else:
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        if users:
            content = users[-1].get("content", "")
            text = content if isinstance(content, str) else json.dumps(content)
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return {"text": text}
    return value if isinstance(value, dict) else {"value": value}


def _streams(path: str, body: Any) -> bool:
    """Whether the request asks for a streamed answer."""
    return path.endswith(":streamGenerateContent") or (
        isinstance(body, dict) and body.get("stream") is True
    )


class FakeTeacherServer:
    """An aiohttp server on 127.0.0.1 speaking one provider protocol."""

    def __init__(
        self,
        protocol: Protocol,
        *,
        answer: Answer | None = None,
        prompt_tokens: int = PROMPT_TOKENS,
        completion_tokens: int = COMPLETION_TOKENS,
    ) -> None:
        self.protocol = protocol
        self.answer: Answer = answer or (lambda task_input: {"ok": True})
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.received: list[Received] = []
        self._queue: deque[Reply] = deque()
        self._release = asyncio.Event()
        self._server: TestServer | None = None
        self.hold: asyncio.Event | None = None
        self.holding = asyncio.Event()

    # -- lifecycle

    async def __aenter__(self) -> FakeTeacherServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/embeddings", self._handle)
        app.router.add_post("/v1/messages", self._handle)
        app.router.add_post("/v1beta/models/{target}", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self.base_url

    async def close(self) -> None:
        self._release.set()  # lets hung handlers finish so shutdown is quick
        if self._server is not None:
            await self._server.close()
            self._server = None

    @property
    def root_url(self) -> str:
        assert self._server is not None, "start the server first"
        return str(self._server.make_url("")).rstrip("/")

    @property
    def base_url(self) -> str:
        """The provider block's ``base_url`` for this protocol."""
        suffix = {"openai": "/v1", "anthropic": "", "google": "/v1beta"}[self.protocol]
        return self.root_url + suffix

    # -- scripting

    def script(self, *replies: Reply | dict[str, Any]) -> None:
        """Queue replies; a dict is a 200 JSON body."""
        for reply in replies:
            self._queue.append(reply if isinstance(reply, Reply) else Reply(body=reply))

    @property
    def bodies(self) -> list[Any]:
        return [r.json for r in self.received]

    # -- handling

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except json.JSONDecodeError:
            body = None
        self.received.append(
            Received(
                method=request.method,
                path=request.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                json=body,
                query=dict(request.query),
            )
        )
        reply = self._queue.popleft() if self._queue else self._default(request.path, body)
        if reply.hang:
            await self._release.wait()
            return web.Response(status=504, text="released at shutdown")
        if reply.raw is not None:
            return web.Response(
                status=reply.status, text=reply.raw, headers=reply.headers,
                content_type="text/html",
            )  # fmt: skip
        if reply.events is not None or (_streams(request.path, body) and reply.status == 200):
            events = reply.events or self.stream_events(request.path, body)
            return await teacher_streams.send(
                request, self.protocol, events, hold=self.hold, holding=self.holding
            )
        if 200 <= reply.status < 300:
            validate_with_sdk(self.protocol, request.path, reply.body)
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    def _default(self, path: str, body: Any) -> Reply:
        body = body if isinstance(body, dict) else {}
        if path.endswith("/embeddings") or path.endswith(":batchEmbedContents"):
            return Reply(body=self._embeddings(body))
        output = self.answer(_task_input(self.protocol, body))
        tokens = {"prompt": self.prompt_tokens, "completion": self.completion_tokens}
        if self.protocol == "openai":
            text = output if isinstance(output, str) else json.dumps(output)
            return Reply(
                body=openai_chat(
                    text,
                    model=str(body.get("model", "gpt-4o")),
                    prompt_tokens=tokens["prompt"],
                    completion_tokens=tokens["completion"],
                )
            )
        if self.protocol == "anthropic":
            choice = body.get("tool_choice") or {}
            forced = choice.get("type") == "tool" and not isinstance(output, str)
            return Reply(
                body=anthropic_message(
                    tool_input=output if forced and isinstance(output, dict) else None,
                    tool_name=str(choice.get("name", "answer")),
                    text=None if forced else (output if isinstance(output, str) else
                                              json.dumps(output)),
                    model=str(body.get("model", "claude-sonnet-4-5-20250929")),
                    input_tokens=tokens["prompt"],
                    output_tokens=tokens["completion"],
                )
            )  # fmt: skip
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        text = output if isinstance(output, str) else json.dumps(output)
        return Reply(
            body=gemini_response(
                text,
                model=model,
                prompt_tokens=tokens["prompt"],
                candidates_tokens=tokens["completion"],
            )
        )

    def stream_events(self, path: str, body: Any) -> list[teacher_streams.SseOut]:
        """The default answer to a request (its ``path`` and JSON body) as the protocol streams it."""
        output = self.answer(_task_input(self.protocol, body))
        text = output if isinstance(output, str) else json.dumps(output)
        done, made = self.completion_tokens, self.prompt_tokens
        if self.protocol == "openai":
            usage = (body.get("stream_options") or {}).get("include_usage") is True
            return teacher_streams.openai_events(
                text, model=str(body.get("model")), prompt_tokens=made, completion_tokens=done,
                include_usage=usage,
            )  # fmt: skip
        if self.protocol == "anthropic":
            choice = body.get("tool_choice") or {}
            forced = choice.get("type") == "tool" and not isinstance(output, str)
            return teacher_streams.anthropic_events(
                text, model=str(body.get("model")), input_tokens=made, output_tokens=done,
                tool_name=str(choice.get("name")) if forced else None,
            )  # fmt: skip
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        return teacher_streams.gemini_events(
            text, model=model, prompt_tokens=made, candidates_tokens=done
        )

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.protocol == "google":
            texts = [
                "".join(p.get("text", "") for p in r.get("content", {}).get("parts", []))
                for r in body.get("requests", [])
            ]
            return gemini_embeddings([fake_vector(t) for t in texts])
        raw = body.get("input", [])
        texts = [raw] if isinstance(raw, str) else list(raw)
        return openai_embeddings([fake_vector(t) for t in texts], model=str(body.get("model", "x")))
