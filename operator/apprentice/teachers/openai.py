"""OpenAI Chat Completions (and any OpenAI-compatible server): pure wire mapping.

Structured output uses ``response_format: {type: json_schema, json_schema:
{name, schema, strict}}``. ``strict: true`` is sent only when the schema obeys
OpenAI's strict subset (every object closed, every property required, no
unsupported keywords); otherwise the schema is still sent, non-strict, and our
own validation plus the repair request enforce it.

``openai_compatible`` (OpenRouter, Together, Fireworks, Groq, vLLM, Ollama)
speaks the same protocol at a required ``base_url``, may run keyless, and is
sent ``max_tokens`` (older servers do not know ``max_completion_tokens``, which
OpenAI's reasoning models require).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apprentice.prompts import ChatMessage
from apprentice.teachers.base import Usage
from apprentice.teachers.errors import (
    ProviderError,
    QuotaExhausted,
    TeacherError,
    error_for_status,
)
from apprentice.teachers.http import RateHints, parse_duration
from apprentice.teachers.remote import ChatResult, tool_name
from apprentice.teachers.transport import Headers

__all__ = [
    "COMPATIBLE",
    "OPENAI",
    "OpenAIAdapter",
    "build_chat_request",
    "build_embed_request",
    "map_error",
    "parse_chat_response",
    "parse_embed_response",
    "rate_hints",
    "strict_compatible",
]

_STRICT_UNSUPPORTED = frozenset(
    {"minLength", "maxLength", "pattern", "format", "minimum", "maximum", "multipleOf",
     "minItems", "maxItems", "uniqueItems", "patternProperties", "minProperties",
     "maxProperties", "exclusiveMinimum", "exclusiveMaximum", "not", "if", "then", "else",
     "dependentRequired", "dependentSchemas", "unevaluatedProperties"}
)  # fmt: skip


_STRICT: dict[int, tuple[Any, bool]] = {}


def _strict(schema: dict[str, Any]) -> bool:
    """:func:`strict_compatible` once per schema (a task's or a judge's, fixed once loaded):
    keyed by identity, the schema kept beside it so an id is never reused."""
    cached = _STRICT.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    strict = strict_compatible(schema)
    if len(_STRICT) >= 1024:  # many configs loaded (tests, reloads): start over
        _STRICT.clear()
    _STRICT[id(schema)] = (schema, strict)
    return strict


def strict_compatible(schema: Any) -> bool:
    """Whether OpenAI's strict mode accepts ``schema`` unchanged."""
    if isinstance(schema, list):
        return all(strict_compatible(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if _STRICT_UNSUPPORTED & schema.keys():
        return False
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", [])) != set(props):
            return False
    children: list[Any] = []
    for key in ("properties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            children.extend(schema[key].values())
    children.extend(schema[key] for key in ("items", "anyOf", "prefixItems") if key in schema)
    return all(strict_compatible(child) for child in children)


def build_chat_request(
    model: str,
    messages: list[ChatMessage],
    *,
    json_schema: dict[str, Any] | None,
    schema_name: str,
    max_tokens: int,
    max_tokens_field: str = "max_completion_tokens",
) -> dict[str, Any]:
    """The ``POST /chat/completions`` body."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        max_tokens_field: max_tokens,
    }
    if json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": tool_name(schema_name),
                "schema": json_schema,
                "strict": _strict(json_schema),
            },
        }
    return body


def parse_chat_response(body: Any, provider: str = "openai") -> ChatResult:
    """Text and usage of a ``chat.completion`` object."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
        text = message.get("content")
        if text is None:
            # A refusal is an answer that fails validation (and gets its one repair).
            text = message.get("refusal") or ""
        usage = body.get("usage") or {}
        return ChatResult(
            text=str(text),
            usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
            model=body.get("model"),
            truncated=choice.get("finish_reason") == "length",
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ProviderError(
            f"unexpected chat.completion shape ({type(exc).__name__}: {exc}); is base_url an "
            "OpenAI-compatible /v1 endpoint?",
            provider=provider,
        ) from exc


def build_embed_request(model: str, texts: list[str]) -> dict[str, Any]:
    return {"model": model, "input": texts, "encoding_format": "float"}


def parse_embed_response(body: Any, provider: str = "openai") -> list[list[float]]:
    try:
        rows = sorted(body["data"], key=lambda row: row["index"])
        return [[float(x) for x in row["embedding"]] for row in rows]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderError(
            f"unexpected embeddings shape ({type(exc).__name__}: {exc})", provider=provider
        ) from exc


def map_error(status: int, body: Any, provider: str = "openai") -> TeacherError:
    """OpenAI's ``{"error": {message, type, code}}`` to our taxonomy."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or "")
        code = str(err.get("code") or "")
        kind = str(err.get("type") or "")
    else:
        message, code, kind = (str(body)[:300] if body else ""), "", ""
    if "insufficient_quota" in (code, kind) or code == "billing_hard_limit_reached":
        return QuotaExhausted(
            f"quota exhausted ({message}); add credits or raise the project's budget in the "
            "provider's billing settings: retrying cannot help",
            provider=provider,
            status=status,
        )
    detail = f"{code or kind}: {message}" if (code or kind) else message
    return error_for_status(provider, status, detail)


def _int(headers: Headers, name: str) -> int | None:
    raw = headers.get(name)
    try:
        return int(float(raw)) if raw is not None else None
    except ValueError:
        return None


def _secs(headers: Headers, name: str) -> float | None:
    raw = headers.get(name)
    return parse_duration(raw) if raw else None


_RATE_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)
_NO_HINTS = RateHints()


def rate_hints(headers: Headers) -> RateHints:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``.

    Read on every answer: one without any of them (most OpenAI-compatible servers send
    none) shares one empty :class:`RateHints` instead of parsing six absent headers.
    """
    for name in _RATE_HEADERS:
        if name in headers:
            break
    else:
        return _NO_HINTS
    return RateHints(
        limit_requests=_int(headers, "x-ratelimit-limit-requests"),
        remaining_requests=_int(headers, "x-ratelimit-remaining-requests"),
        reset_requests_s=_secs(headers, "x-ratelimit-reset-requests"),
        limit_tokens=_int(headers, "x-ratelimit-limit-tokens"),
        remaining_tokens=_int(headers, "x-ratelimit-remaining-tokens"),
        reset_tokens_s=_secs(headers, "x-ratelimit-reset-tokens"),
    )


@dataclass(frozen=True)
class OpenAIAdapter:
    """The OpenAI protocol for one provider label."""

    provider: str = "openai"
    default_base_url: str = "https://api.openai.com/v1"
    default_key_env: str | None = "OPENAI_API_KEY"
    default_embedding_model: str | None = "text-embedding-3-small"
    max_tokens_field: str = "max_completion_tokens"

    def chat_url(self, base_url: str, model: str) -> str:
        return f"{base_url}/chat/completions"

    def embed_url(self, base_url: str, model: str) -> str:
        return f"{base_url}/embeddings"

    def auth_headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

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
            model,
            messages,
            json_schema=json_schema,
            schema_name=schema_name,
            max_tokens=max_tokens,
            max_tokens_field=self.max_tokens_field,
        )

    def chat_response(self, body: Any) -> ChatResult:
        return parse_chat_response(body, self.provider)

    def embed_request(self, model: str, texts: list[str]) -> dict[str, Any]:
        return build_embed_request(model, texts)

    def embed_response(self, body: Any) -> list[list[float]]:
        return parse_embed_response(body, self.provider)

    def map_error(self, status: int, body: Any, headers: Headers) -> TeacherError:
        return map_error(status, body, self.provider)

    def rate_hints(self, headers: Headers) -> RateHints:
        return rate_hints(headers)


OPENAI = OpenAIAdapter()
COMPATIBLE = OpenAIAdapter(
    provider="openai_compatible",
    default_base_url="",
    default_key_env=None,
    default_embedding_model=None,  # the factory uses the configured model
    max_tokens_field="max_tokens",
)
