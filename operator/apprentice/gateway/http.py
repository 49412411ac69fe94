"""The HTTP gateway (aiohttp): the task API, the OpenAI-compatible API, admin, health, metrics.

Handlers are thin: parse, call :class:`~apprentice.gateway.service.Gateway`, render.
Every failure leaves as the contract's JSON error body via one middleware, so a
client never sees an HTML error page.

Limits (from ``gateway`` in the config; the slow-client ones, ``header_timeout_s``,
``body_timeout_s`` and ``max_connections``, are in :mod:`apprentice.gateway.server`
and :mod:`apprentice.gateway.reading`):

- ``max_body_bytes``: a larger body is refused with 413 ``too_large`` before it is
  read (Content-Length) or while it is read (chunked uploads).
- ``max_concurrency``: task requests in flight. Past it the gateway answers at once
  with 503 ``overloaded`` and ``Retry-After: 1`` instead of queueing: a queue in
  front of a slow teacher only turns overload into timeouts, and callers (the
  OpenAI SDK included) already retry 503 with backoff. Health, metrics and admin
  requests are not counted, so probes keep answering under load.

Request bodies are parsed with the pydantic models of :mod:`apprentice.gateway.bodies`,
the same ones ``/openapi.json`` publishes. A method a path does not serve is 405
with ``Allow``.

Who may call is :mod:`apprentice.gateway.auth`'s decision: ``/admin`` needs the admin
token; with ``gateway.require_api_keys`` the task API, the OpenAI-compatible API
(``/v1/chat/completions``, ``/v1/models``) and ``/v1/tasks/{task}/state`` (which shows
spend) need an API key for the task, or the admin token. Without it (the laptop
default) they answer anyone who can reach the socket: bind to loopback (the default)
or put the gateway behind a network policy. Keys are managed under ``/admin/keys``
(:mod:`apprentice.gateway.http_keys`).

``POST /v1/feedback`` (:mod:`apprentice.gateway.http_feedback`) corrects or scores an
answer by its request id; the request's row in the store holds its input and answer.

``stream=true`` (chat and task API) answers Server-Sent Events, token by token as the
teacher or a server student produces them (:mod:`apprentice.gateway.streaming`).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from apprentice.config.errors import docs_url
from apprentice.gateway import (
    auth,
    bodies,
    chat,
    errors,
    exports,
    http_feedback,
    http_keys,
    http_spend,
    openapi,
    reading,
    streaming,
    tags,
    tracing,
    training_data,
)
from apprentice.gateway.request import Meta, Result, request_meta
from apprentice.gateway.service import Gateway
from apprentice.json_types import JsonObject

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)
GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)
_JSON = "application/json"


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=reading.dumps(body).encode(),
        status=status,
        content_type=_JSON,
        headers=headers,
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except reading.HangUp as exc:
        # Answer, then hang up (see reading.HangUp).
        resp = _json(exc.body(), exc.status, {"Connection": "close"})
        await resp.prepare(request)
        await resp.write_eof()
        request.protocol.force_close()
        return resp
    except errors.GatewayError as exc:
        headers = None
        if exc.status == 503 or isinstance(exc, errors.RateLimited):
            after = exc.retry_after_s
            headers = {"Retry-After": str(max(1, math.ceil(after)) if after else 1)}
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
        kind = {404: errors.NotFound.type, 405: errors.MethodNotAllowed.type}.get(
            exc.status, errors.BadRequest.type
        )
        details = None
        headers = None
        if isinstance(exc, web.HTTPMethodNotAllowed):
            allowed = sorted(exc.allowed_methods)
            details = {"allowed": allowed}
            headers = {"Allow": ", ".join(allowed)}
        body = {
            "error": {
                "type": kind,
                "message": f"{exc.reason}: {request.method} {request.path}",
                "details": details,
                "docs": docs_url("gateway", kind),
            }
        }
        return _json(body, exc.status, headers)
    except Exception:
        # A bug, not the caller's fault: log it with the traceback, answer JSON anyway.
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = {
            "error": {
                "type": "internal_error",
                "message": "internal error; see the gateway log",
                "details": None,
                "docs": docs_url("gateway", "internal_error"),
            }
        }
        return _json(body, 500)


class Routes:
    """Handlers bound to one gateway; ``build_app`` wires them."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        cfg = gateway.config.gateway
        self.limit = cfg.max_body_bytes
        self.body_timeout_s = cfg.body_timeout_s
        self.max_inflight = cfg.max_concurrency
        self.inflight = 0
        self.started = int(time.time())
        self.keys = auth.KeyRing(
            lambda: gateway.store,
            required=cfg.require_api_keys,
            admin_token_env=cfg.admin_token_env,
        )

    # -- limits ------------------------------------------------------------------------

    async def _limited(
        self, task: str, task_input: JsonObject, meta: Meta, headers: Mapping[str, str]
    ) -> Result:
        if self.inflight >= self.max_inflight:
            raise errors.Overloaded(
                f"{self.inflight} requests in flight (gateway.max_concurrency); retry shortly",
                details={"max_concurrency": self.max_inflight},
            )
        self.inflight += 1
        try:
            with tracing.incoming(headers):  # a caller's traceparent; a no-op when off
                return await self.gw.run(task, task_input, meta)
        finally:
            self.inflight -= 1

    def _admin(self, request: web.Request) -> None:
        self.keys.admin(request.headers.get("Authorization", ""))

    async def _caller(self, request: web.Request, task: str | None) -> tuple[str, ...] | None:
        """The tasks the caller may see (``None``: all); 401/403/429 per ``gateway.auth``."""
        key = await self.keys.check(request.headers.get("Authorization", ""), task)
        return None if key is None else key.tasks

    async def _key(self, request: web.Request, task: str) -> str | None:
        """The calling key's public id (per-key accounting), after ``gateway.auth``'s check."""
        if not self.keys.required:  # the laptop default: no check to make, no coroutine
            return None
        header = request.headers.get("Authorization", "")  # remembered: no coroutine either
        key = self.keys.known(header, task) or await self.keys.check(header, task)
        return None if key is None else key.id

    def _meta(self, request: web.Request, caller: str | None, metadata: bodies.Tags | None) -> Meta:
        """The caller and tags: ``metadata`` (its body model checked it) and the tags header."""
        header = request.headers.get(tags.HEADER)  # with metadata: merged, checked (400)
        return request_meta(caller, metadata if header is None else tags.parse(metadata, header))

    def _task(self, request: web.Request) -> str:
        name = request.match_info["task"]
        self.gw.check_task(name)
        return name

    # -- public --------------------------------------------------------------------------

    async def _body(self, request: web.Request, model: type[bodies.M]) -> bodies.M:
        raw = await reading.read_json(request, self.limit, self.body_timeout_s)
        return bodies.parse(model, raw)

    async def run_task(self, request: web.Request) -> web.StreamResponse:
        task = self._task(request)
        caller = await self._key(request, task)
        raw = await reading.read_json(request, self.limit, self.body_timeout_s)
        task_input, metadata, stream = bodies.task_request(raw)
        meta = self._meta(request, caller, metadata)
        if stream:  # token by token from the teacher (gateway/streaming.py)
            run = functools.partial(self._limited, task, task_input, headers=request.headers)
            return await streaming.serve(request, run, meta, streaming.TaskFormat())
        result = await self._limited(task, task_input, meta, request.headers)
        return _json({"output": result.output, "request_id": result.request_id})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request, bodies.ChatCompletionRequest)
        task = body.model
        self.gw.check_task(task)
        meta = self._meta(request, await self._key(request, task), body.metadata)
        task_input = chat.chat_input(body.messages)
        if body.stream:  # token by token from the teacher (gateway/streaming.py)
            usage = body.stream_options is not None and bool(body.stream_options.include_usage)
            run = functools.partial(self._limited, task, task_input, headers=request.headers)
            return await streaming.serve(request, run, meta, streaming.ChatFormat(task, usage))
        result = await self._limited(task, task_input, meta, request.headers)
        return _json(chat.completion(task, result))

    async def list_tasks(self, request: web.Request) -> web.Response:
        allowed = await self._caller(request, None)
        found = self.gw.task_summaries()
        return _json({"tasks": [t for t in found if allowed is None or t["name"] in allowed]})

    def _model(self, task: str) -> JsonObject:
        return {"id": task, "object": "model", "created": self.started, "owned_by": "apprentice"}

    async def list_models(self, request: web.Request) -> web.Response:
        """OpenAI's list-models shape: each task is a model (``model`` of a chat completion)."""
        allowed = await self._caller(request, None)
        names = [t.name for t in self.gw.config.tasks if allowed is None or t.name in allowed]
        return _json({"object": "list", "data": [self._model(n) for n in names]})

    async def get_model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        self.gw.check_task(name)
        await self._caller(request, name)
        return _json(self._model(name))

    async def task_state(self, request: web.Request) -> web.Response:
        task = self._task(request)
        await self._caller(request, task)
        return _json(await self.gw.status(task))

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
        meta = request.query.get("metadata")
        if exports.wants_own_path(fmt, meta):
            lines = await exports.dataset_lines(self.gw, task, split, fmt, meta)
        else:
            lines = await self.gw.export_dataset(task, split, fmt)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for line in lines:
            await resp.write(line.encode() + b"\n")
        await resp.write_eof()
        return resp

    async def training_dataset(self, request: web.Request) -> web.Response:
        """The run's data as the gateway selected it (the trainer Job's input): chat JSONL,
        coaching and recency repeats included (see apprentice.gateway.training_data)."""
        self._admin(request)
        data = await self.gw.training_data(self._task(request))
        return web.Response(
            text=data.selection.dataset.to_jsonl_text(),
            content_type="application/x-ndjson",
            headers=training_data.response_headers(data),
        )

    async def versions(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        found, active = await self.gw.versions(task)
        return _json({"versions": [v.to_json() for v in found], "active": active})

    async def register_version(self, request: web.Request) -> web.Response:
        self._admin(request)
        task = self._task(request)
        body = await self._body(request, bodies.RegisterVersion)
        info = await self.gw.register_version(task, body.path, body.metrics or {}, body.version)
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
        body = await self._body(request, bodies.TrainingFinished)
        await self.gw.training_finished(task, body.ok, body.reason)
        return _json({"task": task, "training_in_progress": False})


def build_app(gateway: Gateway) -> web.Application:
    """The aiohttp application for ``gateway`` (not started)."""
    # client_max_size makes aiohttp itself refuse oversized chunked bodies.
    app = web.Application(
        middlewares=[_errors], client_max_size=gateway.config.gateway.max_body_bytes
    )
    app[GATEWAY_KEY] = gateway
    streaming.install(app)  # streamed requests outlive their clients; awaited at shutdown
    r = Routes(gateway)
    add = app.router.add_route
    add("POST", "/v1/tasks/{task}", r.run_task)
    add("POST", "/v1/chat/completions", r.chat_completions)
    add("GET", "/v1/tasks", r.list_tasks)
    add("GET", "/v1/models", r.list_models)
    add("GET", "/v1/models/{model}", r.get_model)
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
    add("GET", f"{admin}/training/dataset", r.training_dataset)
    http_spend.add_routes(app, lambda: gateway.store, gateway.check_task, r._admin, gateway.flush)
    http_feedback.add_routes(app, gateway, r.keys)
    http_keys.add_routes(
        app, r.keys, [t.name for t in gateway.config.tasks], r._admin, gateway.config.gateway
    )
    return app
