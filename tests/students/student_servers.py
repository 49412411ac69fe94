"""Loopback servers that speak the student backends' protocols (vLLM, llama.cpp).

Ollama's is ``fakes.ollama`` (shared with the gateway's lifecycle test).

Each records what it received, so tests assert on the wire, and its answers are
the real JSON shapes (the OpenAI-compatible ones are checked with the ``openai``
SDK's own response type). Asked to stream, the OpenAI-compatible ones answer in OpenAI's
chunk events (``fakes.teacher_streams``), as vLLM and llama-server do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletion

from fakes import teacher_streams

ANSWER = '{"category":"billing","confidence":0.9,"priority":2}'


def chat_completion(model: str, content: str) -> dict[str, Any]:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
    }
    ChatCompletion.model_validate(body)  # our fake cannot drift from the real shape
    return body


@dataclasses.dataclass
class Recorder:
    requests: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    answer: str = ANSWER
    hold: asyncio.Event | None = None  # a streamed answer stops after its first text until set
    holding: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def reply(self, request: web.Request, body: Any, model: str) -> web.StreamResponse:
        """The answer, streamed in OpenAI's chunk events when the request asks."""
        if not body.get("stream"):
            return web.json_response(chat_completion(model, self.answer))
        usage = (body.get("stream_options") or {}).get("include_usage") is True
        events = teacher_streams.openai_events(
            self.answer, model=model, prompt_tokens=50, completion_tokens=20, include_usage=usage
        )
        return await teacher_streams.send(
            request, "openai", events, hold=self.hold, holding=self.holding
        )

    def bodies(self, path: str) -> list[Any]:
        return [body for _, p, body in self.requests if p == path]


async def _record(rec: Recorder, request: web.Request) -> Any:
    body: Any = None
    if request.can_read_body:
        raw = await request.read()
        try:
            body = await request.json()
        except ValueError:
            body = raw
    rec.requests.append((request.method, request.path, body))
    return body


@dataclasses.dataclass
class VLLMFake(Recorder):
    runtime_lora: bool = True
    adapters: dict[str, str] = dataclasses.field(default_factory=dict)
    base_model: str = "meta-llama/Llama-3.1-8B-Instruct"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_post("/v1/chat/completions", self.chat)
        if self.runtime_lora:
            app.router.add_post("/v1/load_lora_adapter", self.load)
            app.router.add_post("/v1/unload_lora_adapter", self.unload)
        return app

    async def health(self, request: web.Request) -> web.Response:
        await _record(self, request)
        return web.Response(status=200)

    async def load(self, request: web.Request) -> web.Response:
        body = await _record(self, request)
        name = body["lora_name"]
        if name in self.adapters:
            return web.json_response(
                {
                    "object": "error",
                    "message": f"The lora adapter '{name}' has already been loaded.",
                    "type": "InvalidUserInput",
                    "code": 400,
                },
                status=400,
            )
        self.adapters[name] = body["lora_path"]
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def unload(self, request: web.Request) -> web.Response:
        body = await _record(self, request)
        name = body["lora_name"]
        if name not in self.adapters:
            return web.json_response(
                {
                    "object": "error",
                    "message": f"The lora adapter '{name}' cannot be found.",
                    "type": "NotFoundError",
                    "code": 404,
                },
                status=404,
            )
        del self.adapters[name]
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await _record(self, request)
        model = body["model"]
        if model != self.base_model and model not in self.adapters:
            return web.json_response(
                {
                    "object": "error",
                    "message": f"The model `{model}` does not exist.",
                    "type": "NotFoundError",
                    "code": 404,
                },
                status=404,
            )
        return await self.reply(request, body, model)


@dataclasses.dataclass
class LlamaCppFake(Recorder):
    loading: bool = True
    adapters: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/lora-adapters", self.get_adapters)
        app.router.add_post("/lora-adapters", self.set_adapters)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def _loading(self) -> web.Response:
        return web.json_response(
            {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}},
            status=503,
        )

    async def health(self, request: web.Request) -> web.Response:
        await _record(self, request)
        return self._loading() if self.loading else web.json_response({"status": "ok"})

    async def get_adapters(self, request: web.Request) -> web.Response:
        await _record(self, request)
        return web.json_response(self.adapters)

    async def set_adapters(self, request: web.Request) -> web.Response:
        body = await _record(self, request)
        scales = {entry["id"]: entry["scale"] for entry in body}
        for adapter in self.adapters:
            adapter["scale"] = scales.get(adapter["id"], 0.0)
        return web.json_response({"success": True})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await _record(self, request)
        if self.loading:
            return self._loading()
        return await self.reply(request, body, "student.gguf")


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
