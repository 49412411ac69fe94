"""``POST /v1/feedback``: a person's correction or score for one answer.

The body names the answer by its ``request_id`` and carries exactly one of ``output``
(the answer that should have been given) and ``score`` (in [0, 1]), with an optional
``comment`` (at most :data:`MAX_COMMENT` characters). What happens to it is
:mod:`apprentice.gateway.feedback`'s. Failures name what is wrong: 400 ``bad_request``
naming the field, 404 ``unknown_request``, 422 ``invalid_correction`` naming each path,
409 ``feedback_unavailable`` (a correction on a request recorded before the store kept
its input); with ``gateway.require_api_keys`` the key must be scoped
to the request's task (401/403 as on the task API).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from apprentice.gateway import bodies, errors, reading
from apprentice.gateway.auth import KeyRing
from apprentice.gateway.feedback import Feedback, Given
from apprentice.gateway.service import Gateway

__all__ = ["MAX_COMMENT", "FeedbackRequest", "add_routes"]

MAX_COMMENT = 2000


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback``: exactly one of ``output`` and ``score``."""

    # The document says "exactly one" too, so a generated client (or a fuzzer) sends one.
    model_config = ConfigDict(
        extra="allow",
        strict=True,
        json_schema_extra={"oneOf": [{"required": ["output"]}, {"required": ["score"]}]},
    )

    request_id: str = Field(
        min_length=1,
        max_length=200,
        description="The request_id of the answer (or its chat completion id).",
    )
    output: dict[str, Any] | SkipJsonSchema[None] = Field(
        default=None, description="The correct answer (the task's output schema)."
    )
    score: Annotated[float, Field(ge=0.0, le=1.0)] | SkipJsonSchema[None] = Field(
        default=None, description="How good the answer was, 0 to 1."
    )
    comment: str | None = Field(
        default=None, max_length=MAX_COMMENT, description="Free text, shown in the report."
    )


def _one_of(body: FeedbackRequest) -> None:
    if (body.output is None) == (body.score is None):
        which = "both were sent" if body.output is not None else "neither was sent"
        raise errors.BadRequest(
            f"output, score: send exactly one of output (a correction) and score; {which}",
            details=[
                {"path": "output", "message": "exactly one of output and score"},
                {"path": "score", "message": "exactly one of output and score"},
            ],
        )


def add_routes(app: web.Application, gateway: Gateway, ring: KeyRing) -> None:
    """Wire ``POST /v1/feedback`` into ``app``."""
    feedback = Feedback(gateway)
    cfg = gateway.config.gateway

    async def post(request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        key = await ring.check(header, None)  # 401 before anything about the request
        raw = await reading.read_json(request, cfg.max_body_bytes, cfg.body_timeout_s)
        body = bodies.parse(FeedbackRequest, raw)
        _one_of(body)
        found = await feedback.request(body.request_id)
        if key is not None and found.task not in key.tasks:
            raise errors.ApiKeyWrongTask(
                f"API key {key.id} may call {', '.join(key.tasks)}, not {found.task!r} "
                f"(the task of request {found.id!r})",
                details={"key_id": key.id, "tasks": list(key.tasks), "task": found.task},
            )
        given = Given(
            body.request_id, body.output, body.score, body.comment, None if key is None else key.id
        )
        answer = await feedback.submit(given, found)
        return web.Response(
            body=json.dumps(answer, ensure_ascii=False).encode(),
            status=201,
            content_type="application/json",
        )

    app.router.add_route("POST", "/v1/feedback", post)
