"""The providers' whole (unstreamed) response bodies and error envelopes, as they send them.

Re-exported by :mod:`fakes.teachers` (import them from there); kept apart so each file
stays small. :func:`validate_with_sdk` parses a success body with the official SDK's own
type, so the fakes cannot drift from the real format.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from fakes import teacher_streams

Protocol = Literal["openai", "anthropic", "google"]

PROMPT_TOKENS = 120
COMPLETION_TOKENS = 30


@dataclass
class Reply:
    """One scripted HTTP reply."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    raw: str | None = None
    events: list[teacher_streams.SseOut] | None = None  # a streamed reply, event by event


def openai_chat(
    content: str | None,
    *,
    model: str = "gpt-4o-2024-08-06",
    prompt_tokens: int = PROMPT_TOKENS,
    completion_tokens: int = COMPLETION_TOKENS,
    finish_reason: str = "stop",
    refusal: str | None = None,
) -> dict[str, Any]:
    """A ``chat.completion`` object as OpenAI sends it."""
    return {
        "id": "chatcmpl-AbC123",
        "object": "chat.completion",
        "created": 1_763_900_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": refusal,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_test",
    }


def openai_embeddings(
    vectors: list[list[float]], *, model: str = "text-embedding-3-small", prompt_tokens: int = 8
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": vector}
            for i, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def openai_error(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """OpenAI's error envelope, e.g. ``openai_error(429, "...", type="insufficient_quota",
    code="insufficient_quota")``."""
    body = {"error": {"message": message, "type": type, "param": None, "code": code}}
    return Reply(status=status, body=body, headers=headers or {})


def anthropic_message(
    *,
    tool_input: dict[str, Any] | None = None,
    tool_name: str = "answer",
    text: str | None = None,
    model: str = "claude-sonnet-4-5-20250929",
    input_tokens: int = PROMPT_TOKENS,
    output_tokens: int = COMPLETION_TOKENS,
    stop_reason: str | None = None,
) -> dict[str, Any]:
    """A Messages API ``message``: a ``tool_use`` block, a ``text`` block, or both."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool_input is not None:
        content.append(
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": tool_name,
             "input": tool_input}
        )  # fmt: skip
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason or ("tool_use" if tool_input is not None else "end_turn"),
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def anthropic_error(
    status: int, type: str, message: str, *, headers: dict[str, str] | None = None
) -> Reply:
    """Anthropic's error envelope, e.g. ``anthropic_error(529, "overloaded_error", "Overloaded")``."""
    body = {
        "type": "error",
        "error": {"type": type, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    }
    return Reply(status=status, body=body, headers=headers or {})


def gemini_response(
    text: str,
    *,
    model: str = "gemini-2.5-flash",
    prompt_tokens: int = PROMPT_TOKENS,
    candidates_tokens: int = COMPLETION_TOKENS,
    thoughts_tokens: int = 0,
    finish_reason: str = "STOP",
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` as the REST API sends it (camelCase)."""
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": candidates_tokens,
        "totalTokenCount": prompt_tokens + candidates_tokens + thoughts_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }
    if thoughts_tokens:
        usage["thoughtsTokenCount"] = thoughts_tokens
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "mHsjaLOVJY2Wz7IPlN2R4Qc",
    }


def gemini_embeddings(vectors: list[list[float]]) -> dict[str, Any]:
    return {"embeddings": [{"values": vector} for vector in vectors]}


def gemini_error(
    status: int,
    state: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Google's error envelope, e.g. ``gemini_error(429, "RESOURCE_EXHAUSTED", ...)``."""
    body = {"error": {"code": status, "message": message, "status": state}}
    if details:
        body["error"]["details"] = details
    return Reply(status=status, body=body, headers=headers or {})


def fake_vector(text: str, dims: int = 8) -> list[float]:
    """A deterministic pseudo-embedding of ``text``."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [round(b / 255.0 - 0.5, 6) for b in digest[:dims]]


def validate_with_sdk(protocol: Protocol, path: str, body: Any) -> None:
    """Parse a success body with the official SDK's own type (raises if it drifted)."""
    if protocol == "openai" and path.endswith("/chat/completions"):
        from openai.types.chat import ChatCompletion

        ChatCompletion.model_validate(body, strict=False)
    elif protocol == "openai" and path.endswith("/embeddings"):
        from openai.types import CreateEmbeddingResponse

        CreateEmbeddingResponse.model_validate(body)
    elif protocol == "anthropic":
        from anthropic.types import Message

        Message.model_validate(body)
    elif protocol == "google" and path.endswith(":generateContent"):
        try:  # google-genai is optional here; tests/teachers validate with it explicitly
            from google.genai import types as genai_types
        except ImportError:
            return
        genai_types.GenerateContentResponse.model_validate(body)
