"""Google Gemini ``generateContent``: pure wire mapping.

Structured output is ``generationConfig: {responseMimeType: application/json,
responseSchema}``; ``responseSchema`` is Gemini's OpenAPI subset, so the task's
JSON Schema is translated (upper-case types, ``nullable`` instead of a null
type, ``propertyOrdering`` so fields come in the schema's order, no
``additionalProperties``). Our own validation still checks the full schema.

Gemini bills "thinking" tokens as output: ``thoughtsTokenCount`` is added to
``candidatesTokenCount``. A 429 RESOURCE_EXHAUSTED on a per-day quota (or with
depleted prepaid credit) is :class:`QuotaExhausted`; per-minute ones are
retried after the ``RetryInfo.retryDelay`` Google sends in the body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apprentice.prompts import ChatMessage
from apprentice.teachers.base import Usage
from apprentice.teachers.errors import (
    AuthError,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    TeacherError,
    error_for_status,
)
from apprentice.teachers.http import RateHints, parse_duration
from apprentice.teachers.remote import ChatResult
from apprentice.teachers.transport import Headers

__all__ = [
    "GOOGLE",
    "GoogleAdapter",
    "build_chat_request",
    "build_embed_request",
    "map_error",
    "parse_chat_response",
    "parse_embed_response",
    "to_gemini_schema",
]

_COPIED = ("description", "format", "minimum", "maximum", "minItems", "maxItems", "title")


def to_gemini_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema -> Gemini ``Schema`` (the subset ``responseSchema`` accepts)."""
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            out["nullable"] = True
        kind = next((k for k in kind if k != "null"), None)
    if isinstance(kind, str):
        out["type"] = kind.upper()
    for key in _COPIED:
        if key in schema:
            out[key] = schema[key]
    enum = schema.get("enum")
    if isinstance(enum, list) and all(isinstance(v, str) for v in enum):
        out["enum"] = enum
        out.setdefault("type", "STRING")
    props = schema.get("properties")
    if isinstance(props, dict):
        out["properties"] = {k: to_gemini_schema(v) for k, v in props.items()}
        out["propertyOrdering"] = list(props)
        if schema.get("required"):
            out["required"] = list(schema["required"])
    if isinstance(schema.get("items"), dict):
        out["items"] = to_gemini_schema(schema["items"])
    if isinstance(schema.get("anyOf"), list):
        out["anyOf"] = [to_gemini_schema(s) for s in schema["anyOf"] if isinstance(s, dict)]
    return out


def _contents(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    return [
        {"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m["content"]}]}
        for m in messages
        if m["role"] != "system"
    ]


def build_chat_request(
    model: str,
    messages: list[ChatMessage],
    *,
    json_schema: dict[str, Any] | None,
    schema_name: str,
    max_tokens: int,
) -> dict[str, Any]:
    """The ``POST /models/{model}:generateContent`` body (the model is in the URL)."""
    generation: dict[str, Any] = {"maxOutputTokens": max_tokens}
    if json_schema is not None:
        generation["responseMimeType"] = "application/json"
        generation["responseSchema"] = to_gemini_schema(json_schema)
    body: dict[str, Any] = {"contents": _contents(messages), "generationConfig": generation}
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    return body


def parse_chat_response(body: Any) -> ChatResult:
    """First candidate's text and ``usageMetadata``."""
    try:
        meta = body.get("usageMetadata") or {}
        usage = Usage(
            int(meta.get("promptTokenCount", 0)),
            int(meta.get("candidatesTokenCount", 0)) + int(meta.get("thoughtsTokenCount", 0)),
        )
        candidates = body.get("candidates") or []
        if not candidates:
            # Blocked prompt: an empty answer that fails validation and gets its repair.
            return ChatResult(text="", usage=usage, model=body.get("modelVersion"))
        first = candidates[0]
        parts = (first.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
        return ChatResult(
            text=text,
            usage=usage,
            model=body.get("modelVersion"),
            truncated=first.get("finishReason") == "MAX_TOKENS",
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProviderError(
            f"unexpected generateContent shape ({type(exc).__name__}: {exc}); is base_url the "
            "Gemini API root ending in /v1beta?",
            provider="google",
        ) from exc


def build_embed_request(model: str, texts: list[str]) -> dict[str, Any]:
    return {
        "requests": [
            {"model": f"models/{model}", "content": {"parts": [{"text": text}]}} for text in texts
        ]
    }


def parse_embed_response(body: Any) -> list[list[float]]:
    try:
        return [[float(x) for x in row["values"]] for row in body["embeddings"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderError(
            f"unexpected batchEmbedContents shape ({type(exc).__name__}: {exc})",
            provider="google",
        ) from exc


def _details(err: dict[str, Any], suffix: str) -> list[dict[str, Any]]:
    return [
        d
        for d in err.get("details") or []
        if isinstance(d, dict) and str(d.get("@type", "")).endswith(suffix)
    ]


def map_error(status: int, body: Any) -> TeacherError:
    """``{"error": {code, message, status, details}}`` to our taxonomy."""
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        return error_for_status("google", status, str(body)[:300] if body else "")
    message, state = str(err.get("message") or ""), str(err.get("status") or "")
    detail = f"{state}: {message}" if state else message
    reasons = {str(d.get("reason")) for d in _details(err, "ErrorInfo")}
    if "API_KEY_INVALID" in reasons or status in (401, 403) or state == "PERMISSION_DENIED":
        return AuthError(
            f"key rejected ({detail}); check the key in api_key_env / api_key_file",
            provider="google",
            status=status,
        )
    if status == 429 or state == "RESOURCE_EXHAUSTED":
        quota_ids = [
            str(v.get("quotaId", ""))
            for d in _details(err, "QuotaFailure")
            for v in d.get("violations") or []
        ]
        if any("PerDay" in q for q in quota_ids) or "credits are depleted" in message.lower():
            return QuotaExhausted(
                f"quota exhausted ({detail}); wait for the daily reset or raise the quota / "
                "billing in Google AI Studio: retrying cannot help before the reset",
                provider="google",
                status=status,
            )
        delay = next(
            (parse_duration(str(d.get("retryDelay", ""))) for d in _details(err, "RetryInfo")),
            None,
        )
        return RateLimited(
            f"rate limited ({detail}); lower rate_limits or raise the quota",
            provider="google",
            status=status,
            retry_after_s=delay,
        )
    if status == 503 or state == "UNAVAILABLE":
        return Overloaded(
            f"Gemini is overloaded ({detail}); retried with backoff",
            provider="google",
            status=status,
        )
    return error_for_status("google", status, detail)


@dataclass(frozen=True)
class GoogleAdapter:
    provider: str = "google"
    default_base_url: str = "https://generativelanguage.googleapis.com/v1beta"
    default_key_env: str | None = "GEMINI_API_KEY"
    default_embedding_model: str | None = "gemini-embedding-001"

    def chat_url(self, base_url: str, model: str) -> str:
        return f"{base_url}/models/{model.removeprefix('models/')}:generateContent"

    def embed_url(self, base_url: str, model: str) -> str:
        return f"{base_url}/models/{model.removeprefix('models/')}:batchEmbedContents"

    def auth_headers(self, key: str | None) -> dict[str, str]:
        # A header, not ?key=: URLs end up in proxy and access logs.
        return {"x-goog-api-key": key} if key else {}

    def chat_request(
        self,
        model: str,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> dict[str, Any]:
        return build_chat_request(
            model, messages, json_schema=json_schema, schema_name=schema_name, max_tokens=max_tokens
        )

    def chat_response(self, body: Any) -> ChatResult:
        return parse_chat_response(body)

    def embed_request(self, model: str, texts: list[str]) -> dict[str, Any]:
        return build_embed_request(model, texts)

    def embed_response(self, body: Any) -> list[list[float]]:
        return parse_embed_response(body)

    def map_error(self, status: int, body: Any, headers: Headers) -> TeacherError:
        return map_error(status, body)

    def rate_hints(self, headers: Headers) -> RateHints:
        return RateHints()  # Gemini sends no rate-limit headers; 429 bodies carry RetryInfo


GOOGLE = GoogleAdapter()
