"""The OpenAPI 3.1 document served at ``/openapi.json``, built from the config.

Request bodies are the JSON Schemas of the pydantic models in
:mod:`apprentice.gateway.bodies`, the same models the handlers parse with, so a
body the document allows is a body the server accepts (and the other way round).
Every status a handler can answer is listed on its operation, 503s with the
``Retry-After`` header they always carry.

Each task gets its own concrete path (``/v1/tasks/classify_ticket``) whose request
and response bodies reference that task's input and output JSON Schemas, so a
client generator produces typed calls per task. The server's templated route
(``/v1/tasks/{task}``) is not documented as such: one schema cannot say which
input each task accepts, and any name but a configured task's is a 404.
OpenAPI 3.1 uses JSON Schema 2020-12, the dialect task schemas are written in, so
they are embedded unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from apprentice import __version__
from apprentice.config import ApprenticeConfig
from apprentice.gateway import (
    bodies,
    errors,
    exports,
    http_feedback,
    http_keys,
    openapi_parts,
)
from apprentice.gateway import reading as _reading  # noqa: F401 - BodyTimeout joins the tree
from apprentice.gateway import settling as _settling  # noqa: F401 - StoreUnavailable too
from apprentice.gateway.openapi_parts import (
    _ADMIN,
    _ADMIN_BODY,
    _ADMIN_PLAIN,
    _MODEL,
    _REF_TEMPLATE,
    _SSE_EVENT,
    _TASK_PARAM,
    _VERSION_PARAM,
    _body,
    _errors,
    _op,
    _ref,
    _request,
)
from apprentice.training.dataset import INIT_ADAPTER_HEADER
from apprentice.vocabulary import VERSION_STATES

_MODELS: tuple[type[BaseModel], ...] = (
    *bodies.MODELS,
    http_keys.CreateKey,
    http_feedback.FeedbackRequest,
)


def _model_schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation") for m in _MODELS],
        ref_template=_REF_TEMPLATE,
    )
    return dict(top.get("$defs", {}))


_RUN = (400, 401, 403, 404, 408, 413, 422, 429, 502, 503)
# With gateway.require_api_keys: no key, a wrong, revoked or other task's key, its rate limit.
_KEYED = (401, 403, 429)
# The run's data also says which examples it holds and the adapter the run starts from.
_RUN_HEADERS = {
    "X-Apprentice-Data-Hash": {
        "description": "SHA-256 of the conversations (the version's data_hash).",
        "required": True,
        "schema": {"type": "string"},
    },
    INIT_ADAPTER_HEADER: {
        "description": "The adapter the run starts from (the active version's, a warm "
        "start; percent-encoded path on the task's volume); absent: train from the base.",
        "schema": {"type": "string"},
    },
}


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
                        "type": {"type": "string", "enum": errors.error_types()},
                        "message": {"type": "string"},
                        "details": {},
                        "docs": {
                            "type": "string",
                            "format": "uri",
                            "description": "The type's entry (cause and fix) in the errors "
                            "reference.",
                        },
                    },
                }
            },
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
                "state": {"enum": list(VERSION_STATES)},
                "heldout_score": {"type": ["number", "null"]},
                "path": {"type": "string"},
                "created_at": {"type": "string"},
                "reason": {"type": ["string", "null"]},
                "metrics": {"type": "object"},
            },
        },
        "ChatCompletion": {"type": "object", "description": "OpenAI ChatCompletion object."},
        "Model": {
            "type": "object",
            "required": ["id", "object", "created", "owned_by"],
            "properties": {
                "id": {"type": "string", "description": "The task name."},
                "object": {"const": "model"},
                "created": {"type": "integer"},
                "owned_by": {"type": "string"},
            },
        },
        "ApiKey": {
            "type": "object",
            "required": ["id", "tasks", "created_at"],
            "properties": {
                "id": {"type": "string", "pattern": http_keys.KEY_ID_PATTERN},
                "name": {"type": ["string", "null"]},
                "tasks": {"type": "array", "items": {"type": "string"}},
                "created_at": {"type": "string"},
                "revoked_at": {"type": ["string", "null"]},
                "rate_per_s": {"type": ["number", "null"]},
                "budget": {
                    "type": ["object", "null"],
                    "properties": {w: {"type": "number"} for w in ("daily", "weekly", "monthly")},
                    "additionalProperties": False,
                    "description": "The key's caps per window (none: no budget).",
                },
                "key": {"type": "string", "description": "The token: only in the 201 answer."},
            },
        },
        **_model_schemas(),
    }
    # A key names configured tasks only (any other is a 400): say which ones exist.
    key_tasks = schemas["CreateKey"]["properties"]["tasks"]
    key_tasks["items"] = {"type": "string", "enum": [t.name for t in cfg.tasks]}
    for task in cfg.tasks:
        schemas[f"{task.name}.input"] = task.input_schema
        schemas[f"{task.name}.output"] = task.output_schema
    return {
        "schemas": schemas,
        "securitySchemes": {
            "adminToken": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key."},
        },
    }


# Statuses by kind of operation; each is a status some handler on it can answer.
def _task_request(task_name: str) -> dict[str, Any]:
    """``TaskRequest`` with ``input`` narrowed to one task's input schema."""
    schema = bodies.TaskRequest.model_json_schema(ref_template=_REF_TEMPLATE)
    schema["properties"] = {**schema["properties"], "input": _ref(f"{task_name}.input")}
    schema.pop("title", None)
    return schema


def _public_paths(cfg: ApprenticeConfig) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for task in cfg.tasks:
        response = {
            "type": "object",
            "required": ["output", "request_id"],
            "properties": {"output": _ref(f"{task.name}.output"), "request_id": {"type": "string"}},
        }
        paths[f"/v1/tasks/{task.name}"] = {
            "post": _op(
                task.description or f"Run {task.name}",
                {
                    "content": {
                        "application/json": {"schema": response},
                        # stream=true: one event with the answer, then `data: [DONE]`
                        "text/event-stream": {"schema": _SSE_EVENT},
                    }
                },
                *_RUN,
                operationId=f"run_{task.name}",
                requestBody={"required": True, **_body(_task_request(task.name))},
            )
        }
    paths["/v1/chat/completions"] = {
        "post": _op(
            "OpenAI-compatible: model = task, last user message = input JSON",
            {
                "content": {
                    "application/json": {"schema": _ref("ChatCompletion")},
                    # stream=true: chat.completion.chunk events, then `data: [DONE]`
                    "text/event-stream": {"schema": _SSE_EVENT},
                }
            },
            *_RUN,
            requestBody=_request(bodies.ChatCompletionRequest),
        )
    }
    paths["/v1/tasks"] = {"get": _op("List tasks", _body({"type": "object"}), *_KEYED)}
    paths["/v1/tasks/{task}/state"] = {
        "get": _op("Task status", _body(_ref("TaskStatus")), *_KEYED, 404, parameters=[_TASK_PARAM])
    }
    models = {"type": "array", "items": _ref("Model")}
    paths["/v1/models"] = {
        "get": _op(
            "OpenAI-compatible: the tasks as models",
            _body({"type": "object", "properties": {"object": {"const": "list"}, "data": models}}),
            *_KEYED,
        )
    }
    paths["/v1/models/{model}"] = {
        "get": _op("One task as a model", _body(_ref("Model")), *_KEYED, 404, parameters=[_MODEL])
    }
    paths.update(openapi_parts.feedback_paths())
    paths["/healthz"] = {"get": _op("Liveness", _body({"type": "object"}))}
    paths["/readyz"] = {
        "get": _op(
            "Readiness: store open and student healthy (or phase 1)",
            _body({"type": "object"}),
            503,
        )
    }
    paths["/metrics"] = {"get": _op("Prometheus metrics", _body({"type": "string"}, "text/plain"))}
    paths["/openapi.json"] = {"get": _op("This document", _body({"type": "object"}))}
    return paths


def _admin_paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/admin/tasks/{task}/dataset": {
            "get": _op(
                "Training data as JSONL",
                _body({"type": "string"}, "application/x-ndjson"),
                *_ADMIN_PLAIN,
                parameters=[
                    _TASK_PARAM,
                    {"name": "split", "in": "query", "schema": {"enum": ["train", "heldout"]}},
                    {"name": "format", "in": "query", "schema": {"enum": list(exports.FORMATS)}},
                    {
                        "name": "metadata",
                        "in": "query",
                        "description": "Add a metadata object (provenance, split, ids) per line.",
                        "schema": {"enum": ["true", "false", "1", "0"]},
                    },
                ],
                **_ADMIN,
            )
        },
        "/admin/tasks/{task}/training/dataset": {
            "get": _op(
                "The run's training data as the gateway selected it (chat JSONL)",
                {**_body({"type": "string"}, "application/x-ndjson"), "headers": _RUN_HEADERS},
                *_ADMIN_PLAIN,
                parameters=[_TASK_PARAM],
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
                *_ADMIN_PLAIN,
                parameters=[_TASK_PARAM],
                **_ADMIN,
            ),
            "post": {
                "summary": "Register a candidate version",
                "responses": {
                    # Also 201 when the same registration is retried (it is idempotent).
                    "201": {"description": "Registered", **_body(_ref("Version"))},
                    **_errors(*_ADMIN_BODY),
                },
                "parameters": [_TASK_PARAM],
                "requestBody": _request(bodies.RegisterVersion),
                **_ADMIN,
            },
        },
    }
    for action in ("validate", "promote"):
        paths[f"/admin/tasks/{{task}}/versions/{{version}}/{action}"] = {
            "post": _op(
                f"{action.capitalize()} a version",
                _body({"type": "object"}),
                *_ADMIN_PLAIN,
                parameters=[_TASK_PARAM, _VERSION_PARAM],
                **_ADMIN,
            )
        }
    for action in ("rollback", "pause", "resume", "training/started"):
        paths[f"/admin/tasks/{{task}}/{action}"] = {
            "post": _op(
                action.replace("/", " "),
                _body({"type": "object"}),
                *_ADMIN_PLAIN,
                parameters=[_TASK_PARAM],
                **_ADMIN,
            )
        }
    paths["/admin/tasks/{task}/training/finished"] = {
        "post": _op(
            "training finished",
            _body({"type": "object"}),
            *_ADMIN_BODY,
            parameters=[_TASK_PARAM],
            requestBody=_request(bodies.TrainingFinished),
            **_ADMIN,
        )
    }
    return {**paths, **openapi_parts.key_paths(), **openapi_parts.spend_paths()}


def document(cfg: ApprenticeConfig) -> dict[str, Any]:
    """The whole OpenAPI document for ``cfg``."""
    paths = {**_public_paths(cfg), **_admin_paths()}
    # Any other task name is a 404 unknown_task: say which ones exist.
    task_schema = {"type": "string", "enum": [t.name for t in cfg.tasks]}
    for item in paths.values():
        for op in item.values():
            op["parameters"] = [
                {**p, "schema": task_schema} if p["name"] in ("task", "model") else p
                for p in op.get("parameters", [])
            ]
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
