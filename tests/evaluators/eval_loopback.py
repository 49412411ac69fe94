"""A loopback server speaking OpenAI Chat Completions and Embeddings, for judge tests.

Each model name is a judge whose behaviour the test sets: a score (a proper
JSON grade), a raw text (a reply that is not a grade), or an HTTP status (an
API error in OpenAI's error shape). The judges are the real teacher clients
(``apprentice.teachers.build_teacher``, ``openai_compatible`` at the loopback
``base_url``), so the whole path from evaluator to wire is exercised. Every response body is parsed by the
official ``openai`` SDK's own types before it is sent, so the fake cannot drift
from the real wire format; every request body is kept for assertions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from apprentice.config import ProviderConfig
from apprentice.teachers import build_teacher
from apprentice.teachers.base import Teacher

PROMPT_TOKENS = 1000
COMPLETION_TOKENS = 50
PRICE_IN, PRICE_OUT = 2.0, 8.0  # per million tokens
CALL_COST = (PROMPT_TOKENS * PRICE_IN + COMPLETION_TOKENS * PRICE_OUT) / 1e6


async def no_sleep(seconds: float) -> None:
    """Retries back off in virtual time: the tests never wait real seconds."""
    SLEPT.append(seconds)


SLEPT: list[float] = []


def wire_factory(config: ProviderConfig) -> Teacher:
    """The real teacher client (``apprentice.teachers.build_teacher``) aimed at the loopback."""
    return build_teacher(config, env={}, sleep=no_sleep)


@dataclass
class JudgeServer:
    """Judge behaviours by model name, and what the server received."""

    behaviours: dict[str, float | str | int] = field(default_factory=dict)
    vectors: dict[str, list[float]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""

    def asked(self, model: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("model") == model]

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        model = body["model"]
        behaviour = self.behaviours[model]
        if isinstance(behaviour, int):
            error = {"error": {"message": "boom", "type": "server_error", "code": None}}
            if behaviour == 400:
                error = {"error": {"message": "bad", "type": "invalid_request_error"}}
            return web.json_response(error, status=behaviour)
        if isinstance(behaviour, float):
            content = json.dumps({"score": behaviour, "reason": f"{model} says {behaviour}"})
        else:
            content = behaviour
        reply = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": COMPLETION_TOKENS,
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            },
        }
        ChatCompletion.model_validate(reply)  # the SDK accepts what we send
        return web.json_response(reply)

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        texts = body["input"]
        reply = {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": self.vectors[text]}
                for i, text in enumerate(texts)
            ],
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }
        CreateEmbeddingResponse.model_validate(reply)
        return web.json_response(reply)


@asynccontextmanager
async def judge_server() -> AsyncIterator[JudgeServer]:
    state = JudgeServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", state.chat)
    app.router.add_post("/v1/embeddings", state.embeddings)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.base_url = str(server.make_url("/v1"))
    try:
        yield state
    finally:
        await server.close()


def judge_config(server: JudgeServer, model: str) -> dict[str, Any]:
    """A judge's provider block pointing at the loopback server, with a fixed price."""
    return {
        "provider": "openai_compatible",
        "model": model,
        "base_url": server.base_url,
        "price": {"input_per_mtok": PRICE_IN, "output_per_mtok": PRICE_OUT},
    }
