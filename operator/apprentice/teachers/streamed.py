"""A remote teacher that streams: the answer's text goes to a sink as the provider sends it.

:meth:`StreamingRemoteTeacher.generate_stream` is :meth:`RemoteTeacher.generate` with the
provider asked to stream (:mod:`apprentice.teachers.streaming` holds the protocols):

- every text delta is passed to ``sink`` the moment it is read, then kept; when the
  stream ends, the whole text is parsed and validated once, as an unstreamed answer;
- retries follow the teacher's :class:`~apprentice.teachers.http.RetryPolicy` and rate
  limiter, but only until the first delta went to the sink: after that, a failure
  (a dropped connection, an ``error`` event, a stream cut before its end marker) ends
  the call, since the caller's client already has part of the answer;
- an invalid answer gets its one repair request only if nothing was streamed yet
  (then the repair is an ordinary call); once text went out it is
  :class:`~apprentice.teachers.errors.InvalidOutput` at once;
- cost is :mod:`apprentice.teachers.billing`'s policy: the usage the stream reports
  (the final usage chunk, ``message_delta``, ``usageMetadata``) priced, or the
  attempt's worst case when it reports none or broke off after the model ran.

The sink is called synchronously and must not block: the stream is read to its end
whatever the client on the other side does (the gateway queues the deltas).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from apprentice import prompts, schema_checks
from apprentice.config import TaskConfig
from apprentice.prompts import ChatMessage
from apprentice.teachers import billing, pricing
from apprentice.teachers.base import TeacherAnswer, TextSink
from apprentice.teachers.billing import Bill
from apprentice.teachers.errors import (
    BadRequest,
    InvalidOutput,
    ProviderError,
    RateLimited,
    TeacherError,
)
from apprentice.teachers.errors import Timeout as TeacherTimeout
from apprentice.teachers.http import retry_after_s
from apprentice.teachers.remote import ChatResult, RemoteTeacher, estimate_tokens, repair_messages
from apprentice.teachers.streaming import (
    SseDecoder,
    StreamFailure,
    StreamProtocol,
    StreamReader,
    protocol_for,
)
from apprentice.teachers.transport import (
    ConnectTimeout,
    Headers,
    ReadError,
    ReadTimeout,
    TransportError,
)

__all__ = ["StreamingRemoteTeacher"]

log = logging.getLogger("apprentice.teachers")


class _Sent:
    """The sink, and whether anything reached it (no retry after that)."""

    def __init__(self, sink: TextSink) -> None:
        self.sink = sink
        self.chars = 0

    def __call__(self, text: str) -> None:
        self.chars += len(text)
        self.sink(text)


@dataclass
class _Attempt:
    """One streamed attempt's outcome: a result, or an error and the exception behind it."""

    result: ChatResult | None = None
    error: TeacherError | None = None
    cause: BaseException | None = None


class StreamingRemoteTeacher(RemoteTeacher):
    """A :class:`RemoteTeacher` that can also stream its answer (see the module docstring)."""

    async def generate_stream(
        self,
        task: TaskConfig,
        task_input: dict[str, Any],
        *,
        sink: TextSink,
        request_id: str | None = None,
    ) -> TeacherAnswer:
        protocol = protocol_for(self.provider)
        if protocol is None:
            return await self.generate(task, task_input, request_id=request_id)
        started = self._clock()
        messages = prompts.build_messages(task, task_input)
        bill, sent = Bill(), _Sent(sink)
        try:
            result, attempts = await self._stream_chat(protocol, messages, task, bill, sent)
        except BadRequest as refused:  # before any byte; a 4xx is never billed
            if sent.chars or self.provider != "openai_compatible":
                raise
            # An OpenAI-compatible server that does not know stream or stream_options.
            log.warning("teacher %s refused to stream (%s); answering whole", self.name, refused)
            return await self.generate(task, task_input, request_id=request_id)
        check = schema_checks.for_task(task).output
        output, problems = _check(result.text, check)
        if output is None and sent.chars:
            error = InvalidOutput(
                f"answer for task {task.name!r} is invalid and was streamed already, so it "
                f"cannot be repaired: {'; '.join(problems[:5])}"
                + (" (truncated: raise max_output_tokens)" if result.truncated else ""),
                provider=self.provider,
            )
            raise billing.charge(error, bill)
        if output is None:  # nothing went out: the ordinary repair, as generate() does
            output, result, more = await self._repair(task, messages, result, problems, bill)
            attempts += more
        return TeacherAnswer(
            output=output, usage=result.usage, cost=bill.total, provider=self.provider,
            model=result.model or self.model, latency_s=self._clock() - started,
            attempts=attempts,
        )  # fmt: skip

    async def _repair(
        self,
        task: TaskConfig,
        messages: list[ChatMessage],
        result: ChatResult,
        problems: list[str],
        bill: Bill,
    ) -> tuple[dict[str, Any], ChatResult, int]:
        """The one repair request of an invalid answer nobody has seen yet (unstreamed)."""
        cap, check = self.config.max_output_tokens, schema_checks.for_task(task).output
        retry = repair_messages(messages, result.text, problems)
        if not await bill.allow(self._attempt_worst(retry, cap)):
            raise billing.charge(
                InvalidOutput(f"answer for task {task.name!r} is invalid and the budget "
                              "has no room for a repair request", provider=self.provider),
                bill,
            )  # fmt: skip
        repaired, more = await self._chat(retry, task.output_schema, task.name, cap, bill)
        output, problems = _check(repaired.text, check)
        if output is None:
            error = InvalidOutput(
                f"answer for task {task.name!r} still invalid after one repair: "
                f"{'; '.join(problems[:5])}", provider=self.provider,
            )  # fmt: skip
            raise billing.charge(error, bill)
        return (
            output,
            ChatResult(repaired.text, result.usage + repaired.usage, repaired.model),
            more,
        )

    async def _stream_chat(
        self,
        protocol: StreamProtocol,
        messages: list[ChatMessage],
        task: TaskConfig,
        bill: Bill,
        sent: _Sent,
    ) -> tuple[ChatResult, int]:
        """One streamed chat call with its retries (only before the first delta)."""
        cap = self.config.max_output_tokens
        raw = self.adapter.chat_request(
            self.model, messages, json_schema=task.output_schema, schema_name=task.name,
            max_tokens=cap,
        )  # fmt: skip
        body = protocol.body(raw)
        url = protocol.url(self.adapter.chat_url(self._base_url, self.model))
        tokens, worst = estimate_tokens(messages) + cap, self._attempt_worst(messages, cap)
        policy, attempt = self.policy, 0
        while True:
            attempt += 1
            await policy.limiter.acquire(tokens)
            got = await self._attempt(url, body, protocol.reader(body), sent)
            if got.result is not None:
                bill.attempts += attempt
                self._book(got.result, bill, worst)
                return got.result, attempt
            error = got.error
            assert error is not None
            if billing.may_have_billed(error, got.cause):
                bill.unknown += worst
            retries = attempt - 1
            if sent.chars or not error.retryable or retries >= policy.retry.max_retries:
                raise billing.charge(error, bill) from got.cause
            if not await bill.allow(worst):
                raise billing.charge(error, bill) from got.cause
            delay = policy.retry.delay_s(retries, error.retry_after_s, policy.rng)
            if delay > policy.retry.max_retry_after_s:
                raise billing.charge(error, bill) from got.cause
            if isinstance(error, RateLimited):  # every caller of this teacher waits, as unstreamed
                policy.limiter.pause(delay)
            log.warning("teacher %s: %s before its stream; retry %d/%d in %.2fs", self.provider,
                        type(error).__name__, attempt, policy.retry.max_retries, delay)  # fmt: skip
            await policy.sleep(delay)

    def _book(self, result: ChatResult, bill: Bill, worst: float) -> None:
        """The stream's reported usage priced; the worst case when it reported none."""
        odd = billing.check_usage(result.usage, self.provider)
        if odd is not None:
            bill.unknown += worst
            raise billing.odd_usage(self.provider, odd, bill.total)
        if result.usage.total_tokens == 0:
            bill.unknown += worst
        else:
            bill.known += pricing.cost(result.usage, self.price)

    async def _attempt(
        self, url: str, body: dict[str, Any], reader: StreamReader, sent: _Sent
    ) -> _Attempt:
        try:
            async with self.policy.poster.post_stream(url, body, self._headers) as response:
                self.policy.limiter.observe(self.adapter.rate_hints(response.headers))
                if response.status >= 300:
                    return self._refused(response.status, await response.read(), response.headers)
                return await _read(response.chunks(), reader, sent, self.provider)
        except StreamFailure as failure:
            error = self.adapter.map_error(500, failure.body, {})
            return _Attempt(error=error, cause=ReadError(f"error event: {failure}"))
        except TransportError as exc:
            return _transport_error(exc, url, self.provider, self.config.timeout_s)

    def _refused(self, status: int, raw: bytes, headers: Headers) -> _Attempt:
        """An HTTP error before any byte of the answer: mapped as an unstreamed one is."""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")[:500]
        error = self.adapter.map_error(status, body, headers)
        if error.retry_after_s is None:
            error.retry_after_s = retry_after_s(headers)
        return _Attempt(error=error, cause=None)


async def _read(
    chunks: AsyncIterator[bytes], reader: StreamReader, sent: _Sent, provider: str
) -> _Attempt:
    """Feed the body to ``reader``, text to the sink as it comes; a result once complete."""
    decoder = SseDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            text = reader.read(event)
            if text:
                sent(text)
    for event in decoder.close():
        text = reader.read(event)
        if text:
            sent(text)
    if reader.complete:
        return _Attempt(result=reader.result())
    error = ProviderError(
        "the answer's stream ended before its end marker (the connection dropped or the "
        "provider stopped); retried only if nothing was streamed yet",
        provider=provider,
        retryable=True,
    )
    return _Attempt(error=error, cause=ReadError("the stream ended before its end marker"))


def _transport_error(exc: TransportError, url: str, provider: str, timeout_s: float) -> _Attempt:
    """The failure as the unstreamed path words it; its type tells billing if it reached."""
    host = urlsplit(url).netloc
    if isinstance(exc, ConnectTimeout | ReadTimeout):
        error: TeacherError = TeacherTimeout(
            f"no answer within timeout_s={timeout_s:g}s from {host}; raise timeout_s or "
            "check the endpoint", provider=provider,
        )  # fmt: skip
    else:
        error = ProviderError(
            f"cannot reach {host} or the stream failed ({type(exc).__name__}); check base_url "
            "and network", provider=provider, retryable=True,
        )  # fmt: skip
    return _Attempt(error=error, cause=exc)


def _check(text: str, check: schema_checks.SchemaCheck) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        output = prompts.parse_output(text)
    except prompts.OutputParseError as exc:
        return None, [str(exc)]
    if check.is_valid(output):
        return output, []
    return None, check.problems(output)
