"""Building blocks of the OpenAPI document, and the operations of issue 13's features.

:mod:`apprentice.gateway.openapi` composes the document; the helpers (references,
bodies, error responses, operations) and the ``/admin/keys`` and ``/spend`` paths live
here so each module stays small.
"""

from __future__ import annotations

from typing import Any

from apprentice.gateway import bodies, http_feedback, http_keys

__all__ = ["feedback_paths", "key_paths", "spend_paths"]

_REF_TEMPLATE = "#/components/schemas/{model}"
# One Server-Sent Event of a stream=true answer: ``data`` is a JSON object, or ``[DONE]``.
_SSE_EVENT = {
    "type": "object",
    "description": (
        "One Server-Sent Event of a stream=true answer (gateway/streaming.py); `data` is JSON "
        "or `[DONE]`. Chat API: `chat.completion.chunk` objects carrying the teacher's text as "
        "it is produced (an answer not streamed by its producer comes in pieces once stored), "
        "a usage chunk with stream_options.include_usage, then `[DONE]`. Task API: "
        '`{"delta": text}` events while the teacher streams, then `{"output", "request_id"}`, '
        'then `[DONE]`. A failure after the stream started ends it with one `{"error": {...}}` '
        "event (the error body) and no `[DONE]`."
    ),
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying (the provider's back-off when known).",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], content: str = "application/json") -> dict[str, Any]:
    return {"content": {content: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {
            "description": "error",
            **_body(_ref("Error")),
            **({"headers": _RETRY_AFTER} if c == 503 else {}),
        }
        for c in codes
    }


def _request(model: type[Any]) -> dict[str, Any]:
    return {"required": True, **_body(_ref(model.__name__))}


def _op(summary: str, ok: dict[str, Any], *codes: int, **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {"200": {"description": "OK", **ok}, **_errors(*codes)},
        **extra,
    }


_ADMIN: dict[str, Any] = {"security": [{"adminToken": []}]}
_TASK_PARAM = {"name": "task", "in": "path", "required": True, "schema": {"type": "string"}}
_MODEL = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION_PARAM = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": bodies.VERSION_PATTERN},
}


# Statuses of admin operations with and without a body.
_ADMIN_BODY = (400, 401, 404, 408, 409, 413)
_ADMIN_PLAIN = (400, 401, 404, 409)


def spend_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    paths["/admin/tasks/{task}/spend"] = {
        "get": _op(
            "Requests and teacher spend grouped by a tag's value",
            _body({"type": "object"}),
            *_ADMIN_PLAIN,
            parameters=[
                _TASK_PARAM,
                {
                    "name": "tag",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                },
                {
                    "name": "since",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
            ],
            **_ADMIN,
        )
    }
    paths["/admin/tasks/{task}/spend/keys"] = {
        "get": _op(
            "Requests and teacher spend per API key (public id; null: no key)",
            _body({"type": "object"}),
            *_ADMIN_PLAIN,
            parameters=[
                _TASK_PARAM,
                {
                    "name": "since",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                },
            ],
            **_ADMIN,
        )
    }
    return paths


def key_paths() -> dict[str, Any]:
    key_param = {
        "name": "key_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": http_keys.KEY_ID_PATTERN},
    }
    keys = {"type": "object", "properties": {"keys": {"type": "array", "items": _ref("ApiKey")}}}
    return {
        "/admin/keys": {
            "get": _op("API keys (never their tokens)", _body(keys), 401, **_ADMIN),
            "post": {
                "summary": "Create an API key; its token is in this answer only",
                "responses": {
                    "201": {"description": "Created", **_body(_ref("ApiKey"))},
                    **_errors(*_ADMIN_BODY),
                },
                "requestBody": _request(http_keys.CreateKey),
                **_ADMIN,
            },
        },
        "/admin/keys/{key_id}/revoke": {
            "post": _op(
                "Revoke an API key",
                _body(_ref("ApiKey")),
                401,
                404,
                parameters=[key_param],
                **_ADMIN,
            )
        },
    }


def feedback_paths() -> dict[str, Any]:
    answer = {
        "type": "object",
        "required": ["id", "request_id", "task", "kind"],
        "properties": {
            "id": {"type": "integer"},
            "request_id": {"type": "string"},
            "task": {"type": "string"},
            "kind": {"enum": ["correction", "score"]},
            "agreement": {
                "type": ["number", "null"],
                "description": "The served answer scored against the correction.",
            },
            "example": {
                "type": ["object", "null"],
                "description": "The human example a correction became (provenance, split).",
            },
        },
    }
    return {
        "/v1/feedback": {
            "post": {
                "summary": "Correct or score an answer (by its request_id)",
                "responses": {
                    "201": {"description": "Stored", **_body(answer)},
                    **_errors(400, 401, 403, 404, 408, 409, 413, 422, 429, 503),
                },
                "requestBody": _request(http_feedback.FeedbackRequest),
            }
        }
    }
