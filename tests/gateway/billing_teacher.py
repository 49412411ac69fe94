"""A loopback OpenAI-compatible teacher that counts what it billed, for the budget tests.

Each request is answered by a *mode* (``ok``, ``invalid``, ``500``, ``hang``,
``no_usage``, ``negative``, ``nul``), scripted per request or by default. The
server bills like a provider: every call the model ran costs its usage at the
configured price (``CALL`` = $0.002 per call), whether or not the answer was
useful, whether or not the client waited (a hung call that the client timed out
on is billed too, as the issue assumes). A 500 bills nothing. ``billed`` is the
provider's invoice; the tests compare it with the store's spend.

``gate``: when set, every request waits on it before answering (calls held in
flight for the SIGKILL test); it is billed when it arrives (the model ran).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from fakes.teachers import openai_chat

PROMPT_TOKENS, COMPLETION_TOKENS = 50, 100
PRICE = {"input_per_mtok": 2.0, "output_per_mtok": 19.0}
CALL = (PROMPT_TOKENS * 2.0 + COMPLETION_TOKENS * 19.0) / 1e6  # $0.002


def provider_block(
    base_url: str, *, timeout_s: float = 10.0, max_retries: int = 0, max_output_tokens: int = 200
) -> dict[str, Any]:
    """The ``remote`` config block aimed at this server."""
    return {
        "provider": "openai_compatible",
        "model": "loopback-1",
        "base_url": base_url,
        "price": PRICE,
        "timeout_s": timeout_s,
        "max_retries": max_retries,
        "max_output_tokens": max_output_tokens,
    }


def _label(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    try:
        text = json.loads(users[0]["content"])["text"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "unknown"
    return str(text).split()[0] if str(text).split() else "empty"


class BillingTeacher:
    """See the module docstring."""

    def __init__(self, default: str = "ok", *, hang_s: float = 2.0) -> None:
        self.default = default
        self.hang_s = hang_s
        self.modes: deque[str] = deque()
        self.choose: Callable[[int], str] | None = None
        self.billed_calls: list[float] = []
        self.requests = 0
        self.answered = 0
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()
        self._server: TestServer | None = None

    @property
    def billed(self) -> float:
        return math.fsum(self.billed_calls)

    def script(self, *modes: str) -> None:
        self.modes.extend(modes)

    async def __aenter__(self) -> BillingTeacher:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_get("/v1/models/{model}", self._model)  # an ``openai`` student checks it
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.gate is not None:
            self.gate.set()
        if self._server is not None:
            await self._server.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/v1"))

    async def _model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        return web.json_response({"id": name, "object": "model", "created": 0, "owned_by": "t"})

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        n = self.requests
        self.requests += 1
        if self.modes:
            mode = self.modes.popleft()
        elif self.choose is not None:
            mode = self.choose(n)
        else:
            mode = self.default
        if mode == "500":
            err = {"error": {"message": "boom", "type": "server_error"}}
            return web.json_response(err, status=500)
        self.billed_calls.append(CALL)  # the model runs: billed, answer or not
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        if mode == "hang":
            await asyncio.sleep(self.hang_s)  # the client gave up long ago
            return web.json_response({}, status=504)
        output: Any = {"label": _label(body)}
        if mode == "invalid":
            output = {"nope": 1}
        elif mode == "nul":
            output = {"label": "a\u0000b"}
        reply = openai_chat(
            json.dumps(output),
            model=str(body.get("model")),
            prompt_tokens=PROMPT_TOKENS,
            completion_tokens=COMPLETION_TOKENS,
        )
        if mode == "no_usage":
            del reply["usage"]
        elif mode == "negative":
            reply["usage"]["completion_tokens"] = -1000
        self.answered += 1
        return web.json_response(reply)
