"""The OpenAPI 3.1 document served at ``/openapi.json``, built from the config.

Each task gets its own concrete path (``/v1/tasks/classify_ticket``) whose request
and response bodies reference that task's input and output JSON Schemas, so a
client generator produces typed calls per task; the templated path documents the
generic form. OpenAPI 3.1 uses JSON Schema 2020-12, the dialect task schemas are
written in, so they are embedded unchanged.
"""

from __future__ import annotations

from typing import Any

from apprentice import __version__
from apprentice.config import ApprenticeConfig

_ERROR_TYPES = [
    "bad_request",
    "unauthorized",
    "not_found",
    "unknown_task",
    "conflict",
    "too_large",
    "invalid_input",
    "budget_exhausted",
    "teacher_unavailable",
    "student_unavailable",
    "overloaded",
    "method_not_allowed",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], content: str = "application/json") -> dict[str, Any]:
    return {"content": {content: {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"description": "error", **_body(_ref("Error"))} for c in codes}


def _op(summary: str, ok: dict[str, Any], *codes: int, **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {"200": {"description": "OK", **ok}, **_errors(*codes)},
        **extra,
    }


_ADMIN: dict[str, Any] = {"security": [{"adminToken": []}]}
_TASK_PARAM = {"name": "task", "in": "path", "required": True, "schema": {"type": "string"}}
_VERSION_PARAM = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}


def _components(cfg: ApprenticeConfig) -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {
                        "type": {"type": "string", "enum": _ERROR_TYPES},
                        "message": {"type": "string"},
                        "details": {},
                    },
                }
            },
        },
        "TaskRequest": {
            "type": "object",
            "required": ["input"],
            "properties": {"input": {"type": "object"}},
        },
        "TaskResponse": {
            "type": "object",
            "required": ["output", "request_id"],
            "properties": {"output": {"type": "object"}, "request_id": {"type": "string"}},
        },
        "TaskStatus": {"type": "object", "description": "The contract's TaskStatus JSON."},
        "Version": {
            "type": "object",
            "properties": {
                "version": {"type": "string"},
                "state": {"enum": ["candidate", "validating", "promoted", "rejected", "retired"]},
                "heldout_score": {"type": ["number", "null"]},
                "path": {"type": "string"},
                "created_at": {"type": "string"},
                "reason": {"type": ["string", "null"]},
                "metrics": {"type": "object"},
            },
        },
        "ChatCompletionRequest": {
            "type": "object",
            "required": ["model", "messages"],
            "properties": {
                "model": {"type": "string", "description": "The task name."},
                "messages": {"type": "array", "items": {"type": "object"}},
            },
        },
        "ChatCompletion": {"type": "object", "description": "OpenAI ChatCompletion object."},
    }
    for task in cfg.tasks:
        schemas[f"{task.name}.input"] = task.input_schema
        schemas[f"{task.name}.output"] = task.output_schema
    return {
        "schemas": schemas,
        "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
    }


def document(cfg: ApprenticeConfig) -> dict[str, Any]:
    """The whole OpenAPI document for ``cfg``."""
    paths: dict[str, Any] = {}
    for task in cfg.tasks:
        request = {
            "type": "object",
            "required": ["input"],
            "properties": {"input": _ref(f"{task.name}.input")},
        }
        response = {
            "type": "object",
            "required": ["output", "request_id"],
            "properties": {"output": _ref(f"{task.name}.output"), "request_id": {"type": "string"}},
        }
        paths[f"/v1/tasks/{task.name}"] = {
            "post": _op(
                task.description or f"Run {task.name}",
                _body(response),
                400,
                413,
                422,
                429,
                502,
                503,
                operationId=f"run_{task.name}",
                requestBody={"required": True, **_body(request)},
            )
        }
    paths.update(
        {
            "/v1/tasks/{task}": {
                "post": _op(
                    "Run any task",
                    _body(_ref("TaskResponse")),
                    400,
                    404,
                    413,
                    422,
                    429,
                    502,
                    503,
                    parameters=[_TASK_PARAM],
                    requestBody={"required": True, **_body(_ref("TaskRequest"))},
                )
            },
            "/v1/chat/completions": {
                "post": _op(
                    "OpenAI-compatible: model = task, last user message = input JSON",
                    _body(_ref("ChatCompletion")),
                    400,
                    404,
                    413,
                    422,
                    429,
                    502,
                    503,
                    requestBody={"required": True, **_body(_ref("ChatCompletionRequest"))},
                )
            },
            "/v1/tasks": {"get": _op("List tasks", _body({"type": "object"}))},
            "/v1/tasks/{task}/state": {
                "get": _op("Task status", _body(_ref("TaskStatus")), 404, parameters=[_TASK_PARAM])
            },
            "/healthz": {"get": _op("Liveness", _body({"type": "object"}))},
            "/readyz": {
                "get": _op(
                    "Readiness: store open and student healthy (or phase 1)",
                    _body({"type": "object"}),
                    503,
                )
            },
            "/metrics": {"get": _op("Prometheus metrics", _body({"type": "string"}, "text/plain"))},
            "/openapi.json": {"get": _op("This document", _body({"type": "object"}))},
            "/admin/tasks/{task}/dataset": {
                "get": _op(
                    "Training data as JSONL",
                    _body({"type": "string"}, "application/x-ndjson"),
                    400,
                    401,
                    404,
                    parameters=[
                        _TASK_PARAM,
                        {"name": "split", "in": "query", "schema": {"enum": ["train", "heldout"]}},
                        {
                            "name": "format",
                            "in": "query",
                            "schema": {"enum": ["chat", "openai", "alpaca"]},
                        },
                    ],
                    **_ADMIN,
                )
            },
            "/admin/tasks/{task}/versions": {
                "get": _op(
                    "Model versions",
                    _body(
                        {
                            "type": "object",
                            "properties": {
                                "versions": {"type": "array", "items": _ref("Version")},
                                "active": {"type": ["string", "null"]},
                            },
                        }
                    ),
                    401,
                    404,
                    parameters=[_TASK_PARAM],
                    **_ADMIN,
                ),
                "post": _op(
                    "Register a candidate version",
                    _body(_ref("Version")),
                    400,
                    401,
                    404,
                    409,
                    parameters=[_TASK_PARAM],
                    **_ADMIN,
                ),
            },
        }
    )
    for action in ("validate", "promote"):
        paths[f"/admin/tasks/{{task}}/versions/{{version}}/{action}"] = {
            "post": _op(
                f"{action.capitalize()} a version",
                _body({"type": "object"}),
                401,
                404,
                409,
                parameters=[_TASK_PARAM, _VERSION_PARAM],
                **_ADMIN,
            )
        }
    for action in ("rollback", "pause", "resume", "training/started", "training/finished"):
        paths[f"/admin/tasks/{{task}}/{action}"] = {
            "post": _op(
                action.replace("/", " "),
                _body({"type": "object"}),
                400,
                401,
                404,
                409,
                parameters=[_TASK_PARAM],
                **_ADMIN,
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Apprentice gateway",
            "version": __version__,
            "description": "One interface in front of a teacher API and a local student.",
        },
        "paths": paths,
        "components": _components(cfg),
    }
