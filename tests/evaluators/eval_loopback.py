"""A loopback server speaking OpenAI Chat Completions and Embeddings, for judge tests.

Each model name is a judge whose behaviour the test sets: a score (a proper
JSON grade), a raw text (a reply that is not a grade), or an HTTP status (an
API error in OpenAI's error shape). Every response body is parsed by the
official ``openai`` SDK's own types before it is sent, so the fake cannot drift
from the real wire format; every request body is kept for assertions.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from apprentice.config import ProviderConfig
from apprentice.prompts import ChatMessage
from apprentice.teachers.base import Completion, Teacher, Usage
from apprentice.teachers.errors import ProviderError

PROMPT_TOKENS = 1000
COMPLETION_TOKENS = 50
PRICE_IN, PRICE_OUT = 2.0, 8.0  # per million tokens
CALL_COST = (PROMPT_TOKENS * PRICE_IN + COMPLETION_TOKENS * PRICE_OUT) / 1e6


class OpenAIWireTeacher:
    """Minimal OpenAI-protocol teacher client used until apprentice.teachers builds one."""

    provider = "openai_compatible"

    def __init__(self, config: ProviderConfig) -> None:
        assert config.base_url and config.model
        self.model = config.model
        self.name = f"openai_compatible:{config.model}"
        self._client = httpx.AsyncClient(base_url=config.base_url, timeout=10)

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        body: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "grade", "schema": json_schema},
            }
        response = await self._client.post("/chat/completions", json=body)
        if response.status_code != 200:
            raise ProviderError(f"HTTP {response.status_code}", provider=self.provider)
        data = response.json()
        usage = Usage(data["usage"]["prompt_tokens"], data["usage"]["completion_tokens"])
        cost = (usage.input_tokens * PRICE_IN + usage.output_tokens * PRICE_OUT) / 1e6
        text = data["choices"][0]["message"]["content"]
        return Completion(text, usage, cost, self.provider, self.model)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        response = await self._client.post(
            "/embeddings", json={"model": self.model, "input": texts}
        )
        return [row["embedding"] for row in response.json()["data"]]

    async def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def estimate_cost(self, *args: Any) -> float:
        return CALL_COST

    async def aclose(self) -> None:
        await self._client.aclose()


def wire_factory(config: ProviderConfig) -> Teacher:
    teacher: Teacher = OpenAIWireTeacher(config)  # type: ignore[assignment]
    return teacher


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
