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

Every success body this server sends for OpenAI and Anthropic is first parsed by the
official SDK's own response type (``openai.types.chat.ChatCompletion``,
``anthropic.types.Message``), so the fake cannot drift from the real format.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from aiohttp import web
from aiohttp.test_utils import TestServer

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

Protocol = Literal["openai", "anthropic", "google"]
Answer = Callable[[dict[str, Any]], "dict[str, Any] | str"]

PROMPT_TOKENS = 120
COMPLETION_TOKENS = 30


@dataclass
class Reply:
    """One scripted HTTP reply."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    raw: str | None = None


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    query: dict[str, str]


# ---------------------------------------------------------------- response bodies


def openai_chat(
    content: str | None,
    *,
    model: str = "gpt-4o-2024-08-06",
    prompt_tokens: int = PROMPT_TOKENS,
    completion_tokens: int = COMPLETION_TOKENS,
    finish_reason: str = "stop",
    refusal: str | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object as OpenAI sends it."""
    return {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1_763_900_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": refusal,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_test",
    }


def openai_embeddings(
    vectors: list[list[float]], *, model: str = "text-embedding-3-small", prompt_tokens: int = 8
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """OpenAI's error envelope, e.g. ``openai_error(429, "...", type="insufficient_quota",
    code="insufficient_quota")``."""
    body = {"error": {"message": message, "type": type, "param": None, "code": code}}
    return Reply(status=status, body=body, headers=headers or {})


def anthropic_message(
    *,
    tool_input: dict[str, Any] | None = None,
    tool_name: str = "answer",
    text: str | None = None,
    model: str = "claude-sonnet-4-5-20250929",
    input_tokens: int = PROMPT_TOKENS,
    output_tokens: int = COMPLETION_TOKENS,
    stop_reason: str | None = None,
) -> dict[str, Any]:
    """A Messages API ``message``: a ``tool_use`` block, a ``text`` block, or both."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool_input is not None:
        content.append(
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": tool_name,
             "input": tool_input}
        )  # fmt: skip
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason or ("tool_use" if tool_input is not None else "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def anthropic_error(
    status: int, type: str, message: str, *, headers: dict[str, str] | None = None
) -> Reply:
    """Anthropic's error envelope, e.g. ``anthropic_error(529, "overloaded_error", "Overloaded")``."""
    body = {
        "type": "error",
        "error": {"type": type, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    return Reply(status=status, body=body, headers=headers or {})


def gemini_response(
    text: str,
    *,
    model: str = "gemini-2.5-flash",
    prompt_tokens: int = PROMPT_TOKENS,
    candidates_tokens: int = COMPLETION_TOKENS,
    thoughts_tokens: int = 0,
    finish_reason: str = "STOP",
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` as the REST API sends it (camelCase)."""
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + thoughts_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "mHsjaLOVJY2Wz7IPlN2R4Qc",
    }


def gemini_embeddings(vectors: list[list[float]]) -> dict[str, Any]:
    return {"embeddings": [{"values": vector} for vector in vectors]}


def gemini_error(
    status: int,
    state: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Google's error envelope, e.g. ``gemini_error(429, "RESOURCE_EXHAUSTED", ...)``."""
    body = {"error": {"code": status, "message": message, "status": state}}
    if details:
        body["error"]["details"] = details
    return Reply(status=status, body=body, headers=headers or {})


def fake_vector(text: str, dims: int = 8) -> list[float]:
    """A deterministic pseudo-embedding of ``text``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [round(b / 255.0 - 0.5, 6) for b in digest[:dims]]


def validate_with_sdk(protocol: Protocol, path: str, body: Any) -> None:
    """Parse a success body with the official SDK's own type (raises if it drifted)."""
    if protocol == "openai" and path.endswith("/chat/completions"):
        from openai.types.chat import ChatCompletion

        ChatCompletion.model_validate(body, strict=False)
    elif protocol == "openai" and path.endswith("/embeddings"):
        from openai.types import CreateEmbeddingResponse

        CreateEmbeddingResponse.model_validate(body)
    elif protocol == "anthropic":
        from anthropic.types import Message

        Message.model_validate(body)
    elif protocol == "google" and path.endswith(":generateContent"):
        try:  # google-genai is optional here; tests/teachers validate with it explicitly
            from google.genai import types as genai_types
        except ImportError:
            return
        genai_types.GenerateContentResponse.model_validate(body)


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
