"""``http-api.md``: the gateway's endpoints from its own OpenAPI document.

The document is built by :func:`apprentice.gateway.openapi.document` for the repository's
``apprentice.yaml``; the per-task paths (one per configured task, each with its task's
schemas) are shown once, as ``/v1/tasks/{task}``.
"""

from __future__ import annotations

import json
from typing import Any

from apprentice import config
from apprentice.docs_reference import ROOT
from apprentice.docs_reference.markdown import GENERATED, cell, code, table
from apprentice.gateway import openapi

_INTRO = """# HTTP API reference

Every gateway (`apprentice serve`, or the routing sidecar of a task's inference pod in
Kubernetes) serves these routes; `GET /openapi.json` returns the same document for the
tasks it runs, each task with its own path and its input and output JSON Schemas, so a
client generator produces typed calls per task. CI runs schemathesis against it.

- **Task API** and the **OpenAI-compatible API** answer in the same shape whoever
  answered, the teacher or the student.
- **Admin** routes (`/admin/...`) need `Authorization: Bearer <token>`, the value of the
  environment variable named by `gateway.admin_token_env`. They are the seam the
  `LocalOrchestrator` and the Kubernetes operator both drive (see
  [architecture](../architecture.md#the-seam-the-admin-http-api)).
- Errors are JSON `{"error": {"type", "message", "details", "docs"}}`; `docs` links to
  the type's entry in the [errors reference](errors.md). Every 503 carries `Retry-After`.
"""

_GROUPS = (
    ("Task API", ("/v1/tasks", "/v1/feedback")),
    ("OpenAI-compatible API", ("/v1/chat", "/v1/models")),
    ("Admin", ("/admin",)),
    ("Health, metrics and the document", ("/healthz", "/readyz", "/metrics", "/openapi.json")),
)


def document() -> dict[str, Any]:
    cfg = config.load(ROOT / "apprentice.yaml", env={})
    return openapi.document(cfg)


def _task_paths(doc: dict[str, Any]) -> tuple[str, set[str]]:
    """The first task's name, and the concrete task paths to fold into ``{task}``."""
    names = [
        str(n)
        for n in doc["paths"]["/v1/tasks/{task}/state"]["get"]["parameters"][0]["schema"]["enum"]
    ]
    return names[0], {f"/v1/tasks/{n}" for n in names}


def operations(doc: dict[str, Any] | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) with the per-task paths folded, for the page and its tests."""
    doc = doc or document()
    first, concrete = _task_paths(doc)
    out = []
    for path, item in doc["paths"].items():
        if path in concrete and path != f"/v1/tasks/{first}":
            continue
        shown = "/v1/tasks/{task}" if path in concrete else path
        for method, op in item.items():
            if shown != path:  # the summary of a task's path is its description
                op = {**op, "summary": "Run a task (one path per configured task)"}
            out.append((method.upper(), shown, op))
    return out


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        if name.endswith((".input", ".output")):
            return "the task's " + name.rsplit(".", 1)[1] + " schema"
        return f"[{name}](#schema-{name.lower()})"
    props = schema.get("properties") or {}
    if props:
        return "object: " + ", ".join(f"{code(k)} ({_schema_text(v)})" for k, v in props.items())
    if "enum" in schema:
        return "one of " + ", ".join(code(v) for v in schema["enum"])
    if schema.get("description"):
        return str(schema["description"]).replace("``", "`")
    if set(schema) <= {"type", "format"} and "type" in schema:
        kind = schema["type"]
        kind = " or ".join(kind) if isinstance(kind, list) else str(kind)
        return kind + (f" ({schema['format']})" if "format" in schema else "")
    return code(json.dumps(schema, sort_keys=True)) if schema else "any"


def _operation(method: str, path: str, op: dict[str, Any]) -> str:
    parts = [f"\n### `{method} {path}`\n\n{cell(op.get('summary', ''))}.\n\n"]
    if op.get("security"):
        parts.append("Needs the admin token.\n\n")
    params = op.get("parameters") or []
    if params:
        rows = []
        for p in params:
            schema = p.get("schema") or {}
            if p["name"] == "task":
                schema = {"type": "string", "description": "a configured task's name"}
            rows.append(
                [
                    code(p["name"]),
                    p["in"],
                    "yes" if p.get("required") else "no",
                    cell(schema.get("description") or _schema_text(schema)),
                ]
            )
        parts.append(table(["parameter", "in", "required", "schema"], rows) + "\n")
    body = op.get("requestBody")
    if body:
        for ctype, media in body["content"].items():
            parts.append(f"Request body ({code(ctype)}): {_schema_text(media['schema'])}.\n\n")
    rows = []
    for status, resp in op["responses"].items():
        content = resp.get("content") or {}
        shape = "; ".join(
            f"{code(ct)} {_schema_text(m.get('schema') or {})}" for ct, m in content.items()
        )
        headers = ", ".join(code(h) for h in resp.get("headers") or {})
        rows.append([status, cell(resp.get("description", "")), shape, headers])
    parts.append(table(["status", "meaning", "body", "headers"], rows))
    return "".join(parts)


def _schemas(doc: dict[str, Any]) -> str:
    parts = ["\n## Schemas {#schemas}\n"]
    for name, schema in doc["components"]["schemas"].items():
        if name.endswith((".input", ".output")):
            continue
        parts.append(f"\n### {name} {{#schema-{name.lower()}}}\n\n")
        if schema.get("description"):
            parts.append(cell(schema["description"]).replace("``", "`") + "\n\n")
        props = schema.get("properties") or {}
        needed = set(schema.get("required") or [])
        if props:
            rows = [
                [
                    code(k),
                    "yes" if k in needed else "no",
                    cell(v.get("description") or _schema_text(v)).replace("``", "`"),
                ]
                for k, v in props.items()
            ]
            parts.append(table(["property", "required", "schema"], rows))
    return "".join(parts)


def render() -> str:
    doc = document()
    ops = operations(doc)
    parts = [GENERATED.format(source="apprentice/gateway/openapi.py"), _INTRO]
    for title, prefixes in _GROUPS:
        parts.append(f"\n## {title}\n")
        for method, path, op in ops:
            if path.startswith(prefixes):
                parts.append(_operation(method, path, op))
    error = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
    parts.append("\n## Error types {#error-types}\n\n")
    parts.append(
        "The `type` of an error body is one of: "
        + ", ".join(f"[{code(t)}](errors.md#gateway-{t})" for t in error["type"]["enum"])
        + ".\n"
    )
    parts.append(_schemas(doc))
    return "".join(parts)
