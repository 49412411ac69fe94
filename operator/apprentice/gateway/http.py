"""The HTTP gateway (aiohttp): the task API, the OpenAI-compatible API, admin, health, metrics.

Handlers are thin: parse, call :class:`~apprentice.gateway.service.Gateway`, render.
Every failure leaves as the contract's JSON error body via one middleware, so a
client never sees an HTML error page.

Limits (from ``gateway`` in the config):

- ``max_body_bytes``: a larger body is refused with 413 ``too_large`` before it is
  read (Content-Length) or while it is read (chunked uploads).
- ``max_concurrency``: task requests in flight. Past it the gateway answers at once
  with 503 ``overloaded`` and ``Retry-After: 1`` instead of queueing: a queue in
  front of a slow teacher only turns overload into timeouts, and callers (the
  OpenAI SDK included) already retry 503 with backoff. Health, metrics and admin
  requests are not counted, so probes keep answering under load.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from apprentice import prompts
from apprentice.gateway import errors, openapi
from apprentice.gateway.service import Gateway

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)
GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
_JSON = "application/json"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        content_type=_JSON,
        headers=headers,
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.GatewayError as exc:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return _json(exc.body(), exc.status, headers)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[GATEWAY_KEY].config.gateway.max_body_bytes
        err = errors.TooLarge(
            f"request body is larger than gateway.max_body_bytes ({limit} bytes)",
            details={"max_body_bytes": limit},
        )
        return _json(err.body(), err.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "bad_request")
        body = {
            "error": {
                "type": kind,
                "message": f"{exc.reason}: {request.method} {request.path}",
                "details": None,
            }
        }
        return _json(body, exc.status)
    except Exception:
        # A bug, not the caller's fault: log it with the traceback, answer JSON anyway.
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = {
            "error": {
                "type": "internal_error",
                "message": "internal error; see the gateway log",
                "details": None,
            }
        }
        return _json(body, 500)


async def _read_json(request: web.Request, limit: int) -> dict[str, Any]:
    length = request.content_length
    if length is not None and length > limit:
        raise errors.TooLarge(
            f"request body is {length} bytes; gateway.max_body_bytes is {limit}",
            details={"max_body_bytes": limit, "content_length": length},
        )
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise errors.BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    return body


class Routes:
    """Handlers bound to one gateway; ``build_app`` wires them."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        cfg = gateway.config.gateway
        self.limit = cfg.max_body_bytes
        self.max_inflight = cfg.max_concurrency
        self.inflight = 0
        self.token_env = cfg.admin_token_env

    # -- limits ------------------------------------------------------------------------

    async def _limited(self, task: str, task_input: Any) -> Any:
        if self.inflight >= self.max_inflight:
            raise errors.Overloaded(
                f"{self.inflight} requests in flight (gateway.max_concurrency); retry shortly",
                details={"max_concurrency": self.max_inflight},
            )
        self.inflight += 1
        try:
            return await self.gw.run(task, task_input)
        finally:
            self.inflight -= 1

    def _admin(self, request: web.Request) -> None:
        expected = os.environ.get(self.token_env, "")
        if not expected:
            raise errors.Unauthorized(
                f"the admin API is disabled: set the environment variable {self.token_env}"
            )
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        # compare_digest keeps the check constant-time; the token is never echoed.
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), expected.encode()
        )
        if not ok:
            raise errors.Unauthorized("missing or wrong admin token (Authorization: Bearer ...)")

    def _task(self, request: web.Request) -> str:
        name = request.match_info["task"]
        self.gw.check_task(name)
        return name

    # -- public --------------------------------------------------------------------------

    async def run_task(self, request: web.Request) -> web.Response:
        task = self._task(request)
        body = await _read_json(request, self.limit)
        if "input" not in body:
            raise errors.BadRequest(
                'request body must be {"input": {...}}', details={"keys": sorted(body)}
            )
        result = await self._limited(task, body["input"])
        return _json({"output": result.output, "request_id": result.request_id})

    async def chat_completions(self, request: web.Request) -> web.Response:
        body = await _read_json(request, self.limit)
        task = body.get("model")
        if not isinstance(task, str):
            raise errors.BadRequest('"model" must be the task name, e.g. "classify_ticket"')
        self.gw.check_task(task)
        if body.get("stream"):
            raise errors.BadRequest(
                "stream: true is not supported: a task answer is one validated JSON object; "
                "call without streaming"
            )
        task_input = _chat_input(body.get("messages"))
        result = await self._limited(task, task_input)
        content = prompts.render_output(result.output)
        return _json(
            {
                "id": f"chatcmpl-{result.request_id}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": task,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            }
        )

    async def list_tasks(self, request: web.Request) -> web.Response:
        return _json({"tasks": self.gw.task_summaries()})

    async def task_state(self, request: web.Request) -> web.Response:
        return _json(await self.gw.status(self._task(request)))

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ready, details = await self.gw.readiness()
        return _json({"ready": ready, **details}, 200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        payload, content_type = self.gw.metrics_exposition()
        resp = web.Response(body=payload)
        resp.headers["Content-Type"] = content_type
        return resp

    async def openapi_doc(self, request: web.Request) -> web.Response:
        return _json(openapi.document(self.gw.config))

    # -- admin ---------------------------------------------------------------------------

    async def dataset(self, request: web.Request) -> web.StreamResponse:
        self._admin(request)
        task = self._task(request)
        split = request.query.get("split", "train")
        fmt = request.query.get("format", "chat")
        lines = await self.gw.export_dataset(task, split, fmt)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for line in lines:
            await resp.write(line.encode() + b"\n")
        await resp.write_eof()
        return resp

    async def versions(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        found, active = await self.gw.versions(task)
        return _json({"versions": [v.to_json() for v in found], "active": active})

    async def register_version(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        body = await _read_json(request, self.limit)
        path = body.get("path")
        if not isinstance(path, str) or not path:
            raise errors.BadRequest('"path" (the adapter directory) is required')
        metrics = body.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise errors.BadRequest('"metrics" must be an object')
        version = body.get("version")
        if version is not None and not isinstance(version, str):
            raise errors.BadRequest('"version" must be a string such as "v4"')
        info = await self.gw.register_version(task, path, metrics, version)
        return _json(info.to_json(), 201)

    async def validate_version(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        result = await self.gw.validate_version(task, request.match_info["version"])
        return _json(result.to_json())

    async def promote(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        return _json({"active": await self.gw.promote(task, request.match_info["version"])})

    async def rollback(self, request: web.Request) -> web.Response:
        self._admin(request)
        return _json({"active": await self.gw.rollback(self._task(request))})

    async def pause(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        await self.gw.set_paused(task, True)
        return _json({"task": task, "paused": True})

    async def resume(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        await self.gw.set_paused(task, False)
        return _json({"task": task, "paused": False})

    async def training_started(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        await self.gw.training_started(task)
        return _json({"task": task, "training_in_progress": True})

    async def training_finished(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        body = await _read_json(request, self.limit)
        ok = body.get("ok")
        if not isinstance(ok, bool):
            raise errors.BadRequest('body must be {"ok": true|false, "reason"?: "..."}')
        reason = body.get("reason")
        await self.gw.training_finished(task, ok, reason if isinstance(reason, str) else None)
        return _json({"task": task, "training_in_progress": False})


def _chat_input(messages: Any) -> dict[str, Any]:
    """The task input is the JSON in the last user message (string or text parts)."""
    if not isinstance(messages, list) or not messages:
        raise errors.BadRequest('"messages" must be a non-empty list')
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise errors.BadRequest("no user message: the last user message carries the input JSON")
    content = users[-1].get("content")
    if isinstance(content, list):
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    if not isinstance(content, str):
        raise errors.BadRequest("the last user message's content must be text holding JSON")
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        raise errors.BadRequest(
            f"the last user message must be the task input as a JSON object: {exc.msg}"
        ) from None
    if not isinstance(value, dict):
        raise errors.BadRequest("the last user message must be a JSON object (the task input)")
    return value


def build_app(gateway: Gateway) -> web.Application:
    """The aiohttp application for ``gateway`` (not started)."""
    # client_max_size makes aiohttp itself refuse oversized chunked bodies.
    app = web.Application(
        middlewares=[_errors], client_max_size=gateway.config.gateway.max_body_bytes
    )
    app[GATEWAY_KEY] = gateway
    r = Routes(gateway)
    add = app.router.add_route
    add("POST", "/v1/tasks/{task}", r.run_task)
    add("POST", "/v1/chat/completions", r.chat_completions)
    add("GET", "/v1/tasks", r.list_tasks)
    add("GET", "/v1/tasks/{task}/state", r.task_state)
    add("GET", "/healthz", r.healthz)
    add("GET", "/readyz", r.readyz)
    add("GET", "/metrics", r.metrics)
    add("GET", "/openapi.json", r.openapi_doc)
    admin = "/admin/tasks/{task}"
    add("GET", f"{admin}/dataset", r.dataset)
    add("GET", f"{admin}/versions", r.versions)
    add("POST", f"{admin}/versions", r.register_version)
    add("POST", f"{admin}/versions/{{version}}/validate", r.validate_version)
    add("POST", f"{admin}/versions/{{version}}/promote", r.promote)
    add("POST", f"{admin}/rollback", r.rollback)
    add("POST", f"{admin}/pause", r.pause)
    add("POST", f"{admin}/resume", r.resume)
    add("POST", f"{admin}/training/started", r.training_started)
    add("POST", f"{admin}/training/finished", r.training_finished)
    return app
