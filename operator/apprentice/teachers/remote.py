"""A remote teacher: one provider :class:`Adapter` (pure wire mapping) + the shared policy.

The split follows LiteLLM: each provider module holds pure functions that build
the request JSON, parse the response JSON and map errors; this module owns the
one HTTP client, the retries, the rate limits, the schema validation with its
single repair request, and the cost.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from apprentice import prompts, schemas
from apprentice.config import ProviderConfig, TaskConfig
from apprentice.prompts import ChatMessage
from apprentice.teachers import pricing
from apprentice.teachers.base import Clock, Completion, Sleep, TeacherAnswer, Usage
from apprentice.teachers.errors import EmbeddingsUnsupported, InvalidOutput, TeacherError
from apprentice.teachers.http import (
    ApiKey,
    HttpPolicy,
    RateHints,
    RateLimiter,
    RetryPolicy,
    response_json,
)

__all__ = [
    "Adapter",
    "ChatResult",
    "RemoteTeacher",
    "estimate_tokens",
    "repair_messages",
    "tool_name",
]

# Per-message framing tokens the providers add around each turn (rounded up).
_MESSAGE_OVERHEAD = 8


@dataclass(frozen=True)
class ChatResult:
    """A provider's answer reduced to what we use: text (JSON for structured calls) and usage."""

    text: str
    usage: Usage
    model: str | None = None
    truncated: bool = False


class Adapter(Protocol):
    """Pure wire mapping of one provider; no I/O, so each is unit-testable from JSON."""

    @property
    def provider(self) -> str: ...

    @property
    def default_base_url(self) -> str: ...

    @property
    def default_key_env(self) -> str | None: ...

    @property
    def default_embedding_model(self) -> str | None: ...

    def chat_url(self, base_url: str, model: str) -> str: ...

    def embed_url(self, base_url: str, model: str) -> str: ...

    def auth_headers(self, key: str | None) -> dict[str, str]: ...

    def chat_request(
        self,
        model: str,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> dict[str, Any]: ...

    def chat_response(self, body: Any) -> ChatResult: ...

    def embed_request(self, model: str, texts: list[str]) -> dict[str, Any]: ...

    def embed_response(self, body: Any) -> list[list[float]]: ...

    def map_error(self, status: int, body: Any, headers: httpx.Headers) -> TeacherError: ...

    def rate_hints(self, headers: httpx.Headers) -> RateHints: ...


def tool_name(name: str) -> str:
    """A schema/tool name every provider accepts (^[a-zA-Z0-9_-]{1,64}$)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"


def estimate_tokens(messages: list[ChatMessage]) -> int:
    """A deliberately high token estimate (3 chars/token) used for reservations and limits."""
    chars = sum(len(m["content"]) for m in messages)
    return math.ceil(chars / 3) + _MESSAGE_OVERHEAD * len(messages)


def repair_messages(
    messages: list[ChatMessage], answer: str, problems: list[str]
) -> list[ChatMessage]:
    """The conversation plus the invalid answer and what was wrong with it."""
    listed = "; ".join(problems[:10])
    return [
        *messages,
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": (
                f"That answer is not valid: {listed}. Reply again with only one JSON object "
                "that matches the JSON Schema exactly."
            ),
        },
    ]


def _check(text: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        output = prompts.parse_output(text)
    except prompts.OutputParseError as exc:
        return None, [str(exc)]
    problems = schemas.validation_errors(schema, output)
    return (output, []) if not problems else (None, problems)


class RemoteTeacher:
    """A :class:`~apprentice.teachers.base.Teacher` over HTTP."""

    def __init__(
        self,
        config: ProviderConfig,
        adapter: Adapter,
        *,
        api_key: ApiKey | None,
        price: pricing.ModelPrice,
        transport: httpx.AsyncBaseTransport | None,
        clock: Clock,
        sleep: Sleep,
        rng: random.Random,
        embedding_model: str | None = None,
    ) -> None:
        self.config = config
        self.adapter = adapter
        self.provider = config.provider.value
        self.model = config.model or ""
        self.name = f"{self.provider}:{self.model}"
        self.price = price
        self.embedding_model = embedding_model or adapter.default_embedding_model
        self._key = api_key
        self._clock = clock
        self._base_url = (config.base_url or adapter.default_base_url).rstrip("/")
        client = httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(config.timeout_s), follow_redirects=False
        )
        self._http = HttpPolicy(
            provider=self.provider,
            client=client,
            retry=RetryPolicy(max_retries=config.max_retries),
            limiter=RateLimiter(config.rate_limits, clock=clock, sleep=sleep),
            clock=clock,
            sleep=sleep,
            rng=rng,
            timeout_s=config.timeout_s,
        )

    def __repr__(self) -> str:
        return f"RemoteTeacher(name={self.name!r}, base_url={self._base_url!r}, key={self._key!r})"

    @property
    def policy(self) -> HttpPolicy:
        return self._http

    async def _post(self, url: str, body: dict[str, Any], tokens: int) -> tuple[Any, int]:
        secret = self._key.reveal() if self._key else None
        headers = self.adapter.auth_headers(secret)

        def map_error(response: httpx.Response) -> TeacherError:
            return self.adapter.map_error(
                response.status_code, response_json(response), response.headers
            )

        return await self._http.post_json(
            url,
            body,
            headers=headers,
            map_error=map_error,
            read_hints=self.adapter.rate_hints,
            tokens=tokens,
        )

    async def _chat(
        self,
        messages: list[ChatMessage],
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> tuple[ChatResult, int]:
        body = self.adapter.chat_request(
            self.model,
            messages,
            json_schema=json_schema,
            schema_name=schema_name,
            max_tokens=max_tokens,
        )
        tokens = estimate_tokens(messages) + max_tokens
        raw, attempts = await self._post(
            self.adapter.chat_url(self._base_url, self.model), body, tokens
        )
        return self.adapter.chat_response(raw), attempts

    async def generate(
        self, task: TaskConfig, task_input: dict[str, Any], *, request_id: str | None = None
    ) -> TeacherAnswer:
        started = self._clock()
        messages = prompts.build_messages(task, task_input)
        schema, cap = task.output_schema, self.config.max_output_tokens
        result, attempts = await self._chat(messages, schema, task.name, cap)
        usage = result.usage
        output, problems = _check(result.text, schema)
        if output is None:
            # One repair: most invalid answers are a missed field or a stray sentence.
            retry = repair_messages(messages, result.text, problems)
            result, more = await self._chat(retry, schema, task.name, cap)
            usage, attempts = usage + result.usage, attempts + more
            output, problems = _check(result.text, schema)
            if output is None:
                error = InvalidOutput(
                    f"answer for task {task.name!r} still invalid after one repair: "
                    f"{'; '.join(problems[:5])}"
                    + (" (truncated: raise max_output_tokens)" if result.truncated else "")
                    + "; simplify output_schema or use a stronger model",
                    provider=self.provider,
                )
                error.cost = pricing.cost(usage, self.price)
                raise error
        return TeacherAnswer(
            output=output,
            usage=usage,
            cost=pricing.cost(usage, self.price),
            provider=self.provider,
            model=result.model or self.model,
            latency_s=self._clock() - started,
            attempts=attempts,
        )

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        cap = max_tokens or self.config.max_output_tokens
        result, _ = await self._chat(messages, json_schema, "answer", cap)
        return Completion(
            text=result.text,
            usage=result.usage,
            cost=pricing.cost(result.usage, self.price),
            provider=self.provider,
            model=result.model or self.model,
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if self.embedding_model is None:
            raise EmbeddingsUnsupported(
                f"{self.provider} has no embeddings API; use evaluator_options.embedding: local",
                provider=self.provider,
            )
        if not texts:
            return []
        body = self.adapter.embed_request(self.embedding_model, texts)
        tokens = math.ceil(sum(len(t) for t in texts) / 3)
        raw, _ = await self._post(
            self.adapter.embed_url(self._base_url, self.embedding_model), body, tokens
        )
        return self.adapter.embed_response(raw)

    def estimate_cost(self, task: TaskConfig, task_input: dict[str, Any]) -> float:
        """Worst case: the first attempt and the repair request, both at max_output_tokens.

        The repair is counted because the budget must never be overspent: a
        reservation below the settled cost would let concurrent calls cross a cap.
        """
        prompt = estimate_tokens(prompts.build_messages(task, task_input))
        cap = self.config.max_output_tokens
        worst = Usage(input_tokens=2 * prompt + cap + 40, output_tokens=2 * cap)
        return pricing.cost(worst, self.price)

    async def aclose(self) -> None:
        await self._http.client.aclose()
