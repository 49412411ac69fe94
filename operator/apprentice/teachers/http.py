"""The HTTP policy every remote teacher shares, written once.

- **Auth**: the key is read by :mod:`apprentice.teachers.keys`; this module only sends it.
- **Retries**: exponential backoff with full jitter for timeouts, transport
  errors, 408/409/429/5xx and 529, honouring ``retry-after`` / ``retry-after-ms``.
  Errors whose ``retryable`` is false (auth, bad request, quota) fail at once:
  retrying them only burns rate limit and hides the fix.
- **Rate limits**: async token buckets per teacher for requests/min and
  tokens/min, tightened by the provider's rate-limit headers and by 429s so
  concurrent callers wait instead of all hitting the limit.

Clock and sleep are injected, so tests assert the delays that were asked for
instead of waiting them.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from urllib.parse import urlsplit

from apprentice.config import RateLimits
from apprentice.teachers.base import Clock, Sleep
from apprentice.teachers.errors import (
    ProviderError,
    RateLimited,
    TeacherError,
)
from apprentice.teachers.errors import Timeout as TeacherTimeout
from apprentice.teachers.transport import (
    ConnectTimeout,
    Headers,
    JsonPoster,
    ReadTimeout,
    Response,
    TransportError,
)

__all__ = [
    "HttpPolicy",
    "RateHints",
    "RateLimiter",
    "RetryPolicy",
    "StatusError",
    "TokenBucket",
    "parse_duration",
    "retry_after_s",
]

log = logging.getLogger("apprentice.teachers")


def parse_duration(text: str) -> float | None:
    """Seconds from ``"1.5"``, ``"20ms"``, ``"6m0s"``, ``"1h2m3.5s"`` (OpenAI reset headers)."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    total, number = 0.0, ""
    i = 0
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    return None if number else total


_DELAY = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _http_date(text: str) -> float | None:
    """An HTTP date (RFC 9110: IMF-fixdate, or the obsolete forms) as a Unix time."""
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": the RFC's HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def retry_after_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait a response asks for, in seconds, or ``None`` when it asks for none.

    ``retry-after-ms`` (OpenAI, Anthropic) wins; then ``retry-after`` in either of its
    two forms, delay-seconds or an HTTP date (measured against the response's own
    ``date`` header when it has a valid one, so a skewed local clock does not
    matter). Anything else (``soon``, a negative number, a garbled date) is treated
    as absent: the caller falls back to its own backoff instead of failing.
    """
    ms = headers.get("retry-after-ms", "").strip()
    if _DELAY.fullmatch(ms):
        return float(ms) / 1000
    raw = headers.get("retry-after", "").strip()
    if not raw:
        return None
    if _DELAY.fullmatch(raw):
        return float(raw)
    when = _http_date(raw)
    if when is None:
        return None
    sent = _http_date(headers.get("date", ""))
    reference = sent if sent is not None else (time.time() if now is None else now)
    return max(0.0, when - reference)


@dataclass(frozen=True)
class RateHints:
    """What a response's headers say about the provider's own rate limits."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


class TokenBucket:
    """``per_minute`` units refilled continuously; a burst of up to one minute's worth."""

    def __init__(self, per_minute: float, clock: Clock) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self._clock = clock
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now

    def wait_s(self, amount: float) -> float:
        """Seconds until ``amount`` is available; more than the capacity waits for a full bucket."""
        self._refill()
        amount = min(amount, self.capacity)
        return max(0.0, (amount - self.level) / self.rate)

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= min(amount, self.capacity)

    def clamp(self, remaining: float) -> None:
        """The provider says only ``remaining`` is left: believe it if it is stricter."""
        self._refill()
        self.level = min(self.level, remaining)


class RateLimiter:
    """Client-side requests/min and tokens/min for one teacher, adapted to the provider."""

    def __init__(self, limits: RateLimits, *, clock: Clock, sleep: Sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        self.requests = TokenBucket(rpm, clock) if rpm else None
        self.tokens = TokenBucket(tpm, clock) if tpm else None
        self.blocked_until = -math.inf
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> float:
        """Wait (via the injected sleep) until one request of ``tokens`` may go; seconds waited."""
        if self.requests is None and self.tokens is None and self.blocked_until <= self._clock():
            return 0.0  # no limit known and no pause: nothing to wait for, nothing to take
        waited = 0.0
        async with self._lock:
            while True:
                wait = self.blocked_until - self._clock()
                if self.requests is not None:
                    wait = max(wait, self.requests.wait_s(1))
                if self.tokens is not None:
                    wait = max(wait, self.tokens.wait_s(tokens))
                if wait <= 0:
                    break
                await self._sleep(wait)
                waited += wait
            if self.requests is not None:
                self.requests.take(1)
            if self.tokens is not None:
                self.tokens.take(tokens)
        return waited

    def pause(self, seconds: float) -> None:
        """Hold every caller of this teacher for ``seconds`` (after a 429)."""
        self.blocked_until = max(self.blocked_until, self._clock() + seconds)

    def observe(self, hints: RateHints) -> None:
        """Tighten the buckets to what the provider reports as remaining."""
        self.requests = self._adapt(
            self.requests, hints.limit_requests, hints.remaining_requests, hints.reset_requests_s
        )
        self.tokens = self._adapt(
            self.tokens, hints.limit_tokens, hints.remaining_tokens, hints.reset_tokens_s
        )

    def _adapt(
        self,
        bucket: TokenBucket | None,
        limit: int | None,
        remaining: int | None,
        reset_s: float | None,
    ) -> TokenBucket | None:
        if bucket is None and limit:
            bucket = TokenBucket(limit, self._clock)  # learn the limit we were not told
        elif bucket is not None and limit and limit < bucket.capacity:
            bucket.capacity, bucket.rate = float(limit), limit / 60.0
        if remaining is not None:
            if bucket is not None:
                bucket.clamp(remaining)
            if remaining <= 0 and reset_s:
                self.pause(reset_s)
        return bucket


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``retry-after`` wins when the provider sends it."""

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay_s(self, retry: int, retry_after: float | None, rng: random.Random) -> float:
        """Delay before retry number ``retry`` (0-based)."""
        if retry_after is not None:
            return retry_after
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2**retry))


ErrorMapper = Callable[[Response], TeacherError]
HintReader = Callable[[Headers], RateHints]


class StatusError(Exception):
    """What a failed attempt with an HTTP answer is chained to: its status and host only."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(f"HTTP {status} from {_host(url)}")
        self.status = status


@dataclass
class HttpPolicy:
    """Sends one JSON POST with the shared limits and retries; knows nothing of any provider."""

    provider: str
    poster: JsonPoster
    retry: RetryPolicy
    limiter: RateLimiter
    clock: Clock
    sleep: Sleep
    rng: random.Random
    timeout_s: float

    async def post_json(
        self,
        url: str,
        body: dict[str, Any] | bytes,
        *,
        headers: Mapping[str, str],
        map_error: ErrorMapper,
        read_hints: HintReader,
        tokens: int,
        failed: Callable[[TeacherError, BaseException | None], None] | None = None,
        before_retry: Callable[[], Awaitable[bool]] | None = None,
    ) -> tuple[Any, int]:
        """The decoded JSON body of the first successful attempt, and the attempts made.

        Cost accounting (see :mod:`apprentice.teachers.billing`): ``failed`` hears
        every failed attempt (it books those the provider may have billed);
        ``before_retry`` must say yes before each retry (the budget covers it).
        """
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.acquire(tokens)
            error, cause = await self._attempt(url, body, headers, map_error, read_hints)
            if error is None:
                return cause, attempt
            if failed is not None:
                failed(error, cause)
            retries_done = attempt - 1
            if not error.retryable or retries_done >= self.retry.max_retries:
                raise error from cause
            if before_retry is not None and not await before_retry():
                raise error from cause
            delay = self.retry.delay_s(retries_done, error.retry_after_s, self.rng)
            if delay > self.retry.max_retry_after_s:
                raise error from cause
            if isinstance(error, RateLimited):
                self.limiter.pause(delay)
            log.warning(
                "teacher %s: %s; retry %d/%d in %.2fs",
                self.provider,
                type(error).__name__,
                retries_done + 1,
                self.retry.max_retries,
                delay,
            )
            await self.sleep(delay)

    async def _attempt(
        self,
        url: str,
        body: dict[str, Any] | bytes,
        headers: Mapping[str, str],
        map_error: ErrorMapper,
        read_hints: HintReader,
    ) -> tuple[TeacherError | None, Any]:
        """(None, json) on success, else (error, the exception it translates)."""
        try:
            response = await self.poster.post(url, body, headers)
        except (ConnectTimeout, ReadTimeout) as exc:
            return TeacherTimeout(
                f"no answer within timeout_s={self.timeout_s:g}s from {_host(url)}; raise "
                "timeout_s or check the endpoint",
                provider=self.provider,
            ), exc
        except TransportError as exc:
            return ProviderError(
                f"cannot reach {_host(url)} ({type(exc).__name__}); check base_url and network",
                provider=self.provider,
                retryable=True,
            ), exc
        self.limiter.observe(read_hints(response.headers))
        if not response.is_success:
            error = map_error(response)
            if error.retry_after_s is None:
                error.retry_after_s = retry_after_s(response.headers)
            return error, StatusError(response.status, url)
        try:
            return None, response.json()
        except ValueError:
            return ProviderError(
                f"HTTP {response.status} from {_host(url)} is not JSON "
                f"({response.headers.get('content-type', 'no content-type')}); a proxy in "
                "the way? check base_url",
                provider=self.provider,
                status=response.status,
                retryable=True,
            ), StatusError(response.status, url)


def _host(url: str) -> str:
    """Scheme and host only: query strings may carry keys on some proxies."""
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")


def response_json(response: Response) -> Any:
    """The error body as JSON, or its text when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text[:500]
