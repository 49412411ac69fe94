"""Anthropic Messages API: pure wire mapping.

Structured output is a forced tool call: one tool whose ``input_schema`` is the
task's output schema and ``tool_choice: {type: tool, name}``, so the answer
arrives as the ``tool_use`` block's ``input`` object. The system prompt goes in
the top-level ``system`` field (the Messages API has no system role).

Errors: 529 ``overloaded_error`` is retried; a low credit balance or a reached
spend limit is :class:`QuotaExhausted` and is not, whatever status carries it.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apprentice.prompts import ChatMessage, canonical_json
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
from apprentice.teachers.http import RateHints
from apprentice.teachers.remote import ChatResult, tool_name
from apprentice.teachers.transport import Headers

__all__ = [
    "ANTHROPIC",
    "API_VERSION",
    "AnthropicAdapter",
    "build_chat_request",
    "map_error",
    "parse_chat_response",
    "rate_hints",
]

API_VERSION = "2023-06-01"

# Phrases of Anthropic's billing refusals (sent as 400 or 429 depending on the limit).
_QUOTA_PHRASES = ("credit balance", "spend limit", "usage limit", "billing", "plans & billing")


def build_chat_request(
    model: str,
    messages: list[ChatMessage],
    *,
    json_schema: dict[str, Any] | None,
    schema_name: str,
    max_tokens: int,
) -> dict[str, Any]:
    """The ``POST /v1/messages`` body."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [
            {"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"
        ],
    }
    if system:
        body["system"] = system
    if json_schema is not None:
        name = tool_name(schema_name)
        body["tools"] = [
            {
                "name": name,
                "description": "Record the answer as one object matching the input schema.",
                "input_schema": json_schema,
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": name}
    return body


def parse_chat_response(body: Any) -> ChatResult:
    """The tool call's input (as canonical JSON) or the text blocks, and the usage."""
    try:
        blocks = body["content"]
        tool = next((b for b in blocks if b.get("type") == "tool_use"), None)
        if tool is not None:
            text = canonical_json(tool["input"])
        else:
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        usage = body["usage"]
        cached = int(usage.get("cache_creation_input_tokens") or 0) + int(
            usage.get("cache_read_input_tokens") or 0
        )
        return ChatResult(
            text=text,
            usage=Usage(int(usage["input_tokens"]) + cached, int(usage["output_tokens"])),
            model=body.get("model"),
            truncated=body.get("stop_reason") == "max_tokens",
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProviderError(
            f"unexpected Messages API shape ({type(exc).__name__}: {exc}); is base_url the "
            "Anthropic API root (without /v1)?",
            provider="anthropic",
        ) from exc


def map_error(status: int, body: Any) -> TeacherError:
    """``{"type": "error", "error": {"type", "message"}}`` to our taxonomy."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        kind, message = str(err.get("type") or ""), str(err.get("message") or "")
    else:
        kind, message = "", str(body)[:300] if body else ""
    detail = f"{kind}: {message}" if kind else message
    lowered = message.lower()
    if kind == "billing_error" or any(p in lowered for p in _QUOTA_PHRASES):
        return QuotaExhausted(
            f"spend limit or credit exhausted ({detail}); raise the limit or add credits in "
            "the Anthropic console: retrying cannot help",
            provider="anthropic",
            status=status,
        )
    if status == 529 or kind == "overloaded_error":
        return Overloaded(
            f"Anthropic is overloaded ({detail}); retried with backoff",
            provider="anthropic",
            status=status,
        )
    if kind == "rate_limit_error":
        return RateLimited(
            f"rate limited ({detail}); lower rate_limits or raise the workspace's tier",
            provider="anthropic",
            status=status,
        )
    if kind in ("authentication_error", "permission_error"):
        return AuthError(
            f"key rejected ({detail}); check the key in api_key_env / api_key_file",
            provider="anthropic",
            status=status,
        )
    return error_for_status("anthropic", status, detail)


def _reset_s(headers: Headers, name: str) -> float | None:
    """RFC 3339 reset time minus the response's Date: no local clock involved."""
    raw, date = headers.get(name), headers.get("date")
    if not raw or not date:
        return None
    try:
        reset = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        now = email.utils.parsedate_to_datetime(date)
    except (ValueError, TypeError):
        return None
    return max(0.0, (reset - now).total_seconds())


def _int(headers: Headers, name: str) -> int | None:
    raw = headers.get(name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def rate_hints(headers: Headers) -> RateHints:
    """``anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}``."""
    prefix = "anthropic-ratelimit-"
    return RateHints(
        limit_requests=_int(headers, f"{prefix}requests-limit"),
        remaining_requests=_int(headers, f"{prefix}requests-remaining"),
        reset_requests_s=_reset_s(headers, f"{prefix}requests-reset"),
        limit_tokens=_int(headers, f"{prefix}tokens-limit"),
        remaining_tokens=_int(headers, f"{prefix}tokens-remaining"),
        reset_tokens_s=_reset_s(headers, f"{prefix}tokens-reset"),
    )


@dataclass(frozen=True)
class AnthropicAdapter:
    provider: str = "anthropic"
    default_base_url: str = "https://api.anthropic.com"
    default_key_env: str | None = "ANTHROPIC_API_KEY"
    default_embedding_model: str | None = None  # Anthropic has no embeddings API

    def chat_url(self, base_url: str, model: str) -> str:
        return f"{base_url}/v1/messages"

    def embed_url(self, base_url: str, model: str) -> str:
        raise NotImplementedError("Anthropic has no embeddings endpoint")

    def auth_headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

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
        raise NotImplementedError("Anthropic has no embeddings endpoint")

    def embed_response(self, body: Any) -> list[list[float]]:
        raise NotImplementedError("Anthropic has no embeddings endpoint")

    def map_error(self, status: int, body: Any, headers: Headers) -> TeacherError:
        return map_error(status, body)

    def rate_hints(self, headers: Headers) -> RateHints:
        return rate_hints(headers)


ANTHROPIC = AnthropicAdapter()
