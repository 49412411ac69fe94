"""A remote teacher: one provider :class:`Adapter` (pure wire mapping) + the shared policy.

The split follows LiteLLM: each provider module holds pure functions that build
the request JSON, parse the response JSON and map errors; this module owns the
one HTTP client, the retries, the rate limits, the schema validation with its
single repair request, and the cost.
"""

from __future__ import annotations

import functools
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Protocol

from apprentice import prompts, schema_checks
from apprentice.config import ProviderConfig, TaskConfig
from apprentice.prompts import ChatMessage
from apprentice.schema_checks import SchemaCheck
from apprentice.teachers import billing, pricing
from apprentice.teachers.base import Clock, Completion, Sleep, TeacherAnswer, Usage
from apprentice.teachers.billing import Bill
from apprentice.teachers.errors import EmbeddingsUnsupported, InvalidOutput, TeacherError
from apprentice.teachers.http import (
    HttpPolicy,
    RateHints,
    RateLimiter,
    RetryPolicy,
    response_json,
)
from apprentice.teachers.keys import ApiKey
from apprentice.teachers.templates import ChatBodies, ChatRequest
from apprentice.teachers.transport import Headers, JsonPoster, Response, pool_size

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

    @property
    def chat_request(self) -> ChatRequest:
        """The chat body for ``model`` and ``messages`` (its signature: ``ChatRequest``)."""
        ...

    def chat_response(self, body: Any) -> ChatResult: ...

    def embed_request(self, model: str, texts: list[str]) -> dict[str, Any]: ...

    def embed_response(self, body: Any) -> list[list[float]]: ...

    def map_error(self, status: int, body: Any, headers: Headers) -> TeacherError: ...

    def rate_hints(self, headers: Headers) -> RateHints: ...


@functools.lru_cache(maxsize=1024)
def tool_name(name: str) -> str:
    """A schema/tool name every provider accepts (^[a-zA-Z0-9_-]{1,64}$); a task has one."""
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


def _check(text: str, check: SchemaCheck) -> tuple[dict[str, Any] | None, list[str]]:
    """The parsed answer if it is valid, else what is wrong with it (for the repair request)."""
    try:
        output = prompts.parse_output(text)
    except prompts.OutputParseError as exc:
        return None, [str(exc)]
    if check.is_valid(output):  # the task's validator, compiled once: the only check
        return output, []
    return None, check.problems(output)


class RemoteTeacher:
    """A :class:`~apprentice.teachers.base.Teacher` over HTTP."""

    def __init__(
        self,
        config: ProviderConfig,
        adapter: Adapter,
        *,
        api_key: ApiKey | None,
        price: pricing.ModelPrice,
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
        # The key is fixed for the teacher's life: its headers are built once, and are the
        # poster's session's own (each call then merges none into its request).
        self._headers = adapter.auth_headers(api_key.reveal() if api_key else None)
        self._bodies = ChatBodies(adapter.chat_request)
        self._http = HttpPolicy(
            provider=self.provider,
            poster=JsonPoster(config.timeout_s, pool_size(config), headers=self._headers),
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

    async def _post(
        self, url: str, body: dict[str, Any] | bytes, tokens: int, bill: Bill | None = None,
        attempt_worst: float = 0.0,
    ) -> tuple[Any, int]:  # fmt: skip
        headers = self._headers

        def map_error(response: Response) -> TeacherError:
            return self.adapter.map_error(
                response.status, response_json(response), response.headers
            )

        def failed(error: TeacherError, cause: BaseException | None) -> None:
            if bill is not None and billing.may_have_billed(error, cause):
                bill.unknown += attempt_worst  # billed, amount unknown: its worst case

        async def before_retry() -> bool:
            return bill is None or await bill.allow(attempt_worst)

        return await self._http.post_json(
            url,
            body,
            headers=headers,
            map_error=map_error,
            read_hints=self.adapter.rate_hints,
            tokens=tokens,
            failed=failed,
            before_retry=before_retry,
        )

    def _attempt_worst(
        self, messages: list[ChatMessage], max_tokens: int, prompt: int | None = None
    ) -> float:
        """The most one attempt can bill: the (high) prompt estimate plus every output token.
        ``prompt``: :func:`estimate_tokens` of ``messages`` when the caller has it."""
        tokens = estimate_tokens(messages) if prompt is None else prompt
        return pricing.tokens_cost(tokens, max_tokens, self.price)

    async def _chat(
        self,
        messages: list[ChatMessage],
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
        bill: Bill,
    ) -> tuple[ChatResult, int]:
        """One chat call (with its retries); every attempt's cost lands on ``bill``."""
        body = self._bodies.encode(  # the task's bytes, only the user's text encoded
            self.model,
            messages,
            json_schema=json_schema,
            schema_name=schema_name,
            max_tokens=max_tokens,
        )
        prompt = estimate_tokens(messages)  # once: the rate limit's tokens and the worst case
        tokens = prompt + max_tokens
        worst = self._attempt_worst(messages, max_tokens, prompt)
        try:
            raw, attempts = await self._post(
                self.adapter.chat_url(self._base_url, self.model), body, tokens, bill, worst
            )
            result = self.adapter.chat_response(raw)
        except TeacherError as error:
            raise billing.charge(error, bill) from error.__cause__
        bill.attempts += attempts
        odd = billing.check_usage(result.usage, self.provider)
        if odd is not None:  # billed for sure, for how much nobody knows: the worst case
            bill.unknown += worst
            raise billing.odd_usage(self.provider, odd, bill.total)
        if result.usage.total_tokens == 0:  # no usage block: never silently free
            bill.unknown += worst
        else:
            bill.known += pricing.cost(result.usage, self.price)
        return result, attempts

    async def generate(
        self, task: TaskConfig, task_input: dict[str, Any], *, request_id: str | None = None
    ) -> TeacherAnswer:
        started = self._clock()
        messages = prompts.build_messages(task, task_input)
        schema, cap = task.output_schema, self.config.max_output_tokens
        bill = Bill()
        result, attempts = await self._chat(messages, schema, task.name, cap, bill)
        usage = result.usage
        check = schema_checks.for_task(task).output
        output, problems = _check(result.text, check)
        if output is None:
            # One repair: most invalid answers are a missed field or a stray sentence.
            retry = repair_messages(messages, result.text, problems)
            if not await bill.allow(self._attempt_worst(retry, cap)):
                raise billing.charge(
                    InvalidOutput(
                        f"answer for task {task.name!r} is invalid and the budget has no room "
                        f"for a repair request: {'; '.join(problems[:5])}",
                        provider=self.provider,
                    ),
                    bill,
                )
            result, more = await self._chat(retry, schema, task.name, cap, bill)
            usage, attempts = usage + result.usage, attempts + more
            output, problems = _check(result.text, check)
            if output is None:
                error = InvalidOutput(
                    f"answer for task {task.name!r} still invalid after one repair: "
                    f"{'; '.join(problems[:5])}"
                    + (" (truncated: raise max_output_tokens)" if result.truncated else "")
                    + "; simplify output_schema or use a stronger model",
                    provider=self.provider,
                )
                raise billing.charge(error, bill)
        return TeacherAnswer(
            output=output,
            usage=usage,
            cost=bill.total,
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
        bill = Bill()
        result, _ = await self._chat(messages, json_schema, "answer", cap, bill)
        return Completion(
            text=result.text,
            usage=result.usage,
            cost=bill.total,
            provider=self.provider,
            model=result.model or self.model,
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors, _ = await self.embed_billed(texts)
        return vectors

    async def embed_billed(self, texts: list[str]) -> tuple[list[list[float]], float]:
        """Embeddings and what they cost (priced input tokens; worst case when unreported)."""
        if self.embedding_model is None:
            raise EmbeddingsUnsupported(
                f"{self.provider} has no embeddings API; use evaluator_options.embedding: local",
                provider=self.provider,
            )
        if not texts:
            return [], 0.0
        body = self.adapter.embed_request(self.embedding_model, texts)
        tokens = math.ceil(sum(len(t) for t in texts) / 3)
        price = pricing.lookup(self.embedding_model) or self.price
        worst = pricing.cost(Usage(tokens + 8 * len(texts), 0), price)
        bill = Bill()
        try:
            raw, _ = await self._post(
                self.adapter.embed_url(self._base_url, self.embedding_model), body, tokens, bill,
                worst,
            )  # fmt: skip
        except TeacherError as error:
            raise billing.charge(error, bill) from error.__cause__
        # Embedding answers carry no usage we parse: bill the (high) estimate of the input.
        return self.adapter.embed_response(raw), bill.total + worst

    def estimate_embed_cost(self, texts: list[str]) -> float:
        """Worst case of :meth:`embed_billed` without retries."""
        price = pricing.lookup(self.embedding_model or "") or self.price
        tokens = math.ceil(sum(len(t) for t in texts) / 3)
        return pricing.cost(Usage(tokens + 8 * len(texts), 0), price)

    def estimate_cost(self, task: TaskConfig, task_input: dict[str, Any]) -> float:
        """Worst case: the first attempt and the repair request, both at max_output_tokens.

        The repair is counted because the budget must never be overspent: a
        reservation below the settled cost would let concurrent calls cross a cap.
        """
        prompt = estimate_tokens(prompts.build_messages(task, task_input))
        cap = self.config.max_output_tokens
        return pricing.tokens_cost(2 * prompt + cap + 40, 2 * cap, self.price)

    async def aclose(self) -> None:
        await self._http.poster.aclose()
