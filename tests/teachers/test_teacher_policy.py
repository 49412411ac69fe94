"""The shared HTTP policy: keys, retry-after parsing, backoff, rate limits, no leaks."""

from __future__ import annotations

import asyncio
import logging
import pickle
import random
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from teacher_support import SECRET, FakeClock, provider_config

from apprentice.config import ProviderConfig, RateLimits, TaskConfig
from apprentice.teachers import anthropic, build_teacher, errors, http, keys, openai
from fakes.teachers import FakeTeacherServer, Reply, anthropic_error, openai_chat, openai_error

INPUT = {"text": "hello"}
GOOD = {"category": "x", "priority": 1}

# ------------------------------------------------------------------ keys


def test_key_from_env_file_and_missing(tmp_path: Path) -> None:
    config = ProviderConfig(provider="openai", model="gpt-4o", api_key_env="MY_KEY")
    key = keys.resolve_api_key(config, {"MY_KEY": SECRET}, default_env="OPENAI_API_KEY")
    assert key is not None and key.reveal() == SECRET and key.source == "env:MY_KEY"

    secret_file = tmp_path / "key"
    secret_file.write_text(SECRET + "\n")
    config = ProviderConfig(provider="anthropic", model="claude-sonnet-4-5",
                            api_key_file=str(secret_file))  # fmt: skip
    key = keys.resolve_api_key(config, {}, default_env="ANTHROPIC_API_KEY")
    assert key is not None and key.reveal() == SECRET  # trailing newline of Secret mounts

    with pytest.raises(errors.TeacherConfigError, match="export OPENAI_API_KEY"):
        keys.resolve_api_key(ProviderConfig(provider="openai", model="gpt-4o"), {},
                             default_env="OPENAI_API_KEY")  # fmt: skip
    with pytest.raises(errors.TeacherConfigError, match="cannot read api_key_file"):
        missing = ProviderConfig(provider="openai", model="gpt-4o",
                                 api_key_file=str(tmp_path / "nope"))  # fmt: skip
        keys.resolve_api_key(missing, {}, default_env="OPENAI_API_KEY")
    keyless = ProviderConfig(provider="openai_compatible", model="gpt-4o", base_url="http://x/v1")
    assert keys.resolve_api_key(keyless, {}, default_env=None) is None


async def test_key_never_leaks(
    make_teacher: Any, task: TaskConfig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with FakeTeacherServer("openai", answer=lambda _: dict(GOOD)) as fake:
        teacher = make_teacher("openai", fake.base_url)
        # A retried 500 logs a warning; the 401 echoes the key like OpenAI's real message.
        fake.script(
            Reply(status=500, body={"error": {"message": f"upstream saw {SECRET}"}}),
            openai_error(401, f"Incorrect API key provided: {SECRET}.", code="invalid_api_key"),
        )
        with pytest.raises(errors.AuthError) as info:
            await teacher.generate(task, INPUT)
    assert caplog.records, "the retry should have been logged"
    texts = [repr(teacher), str(teacher), str(info.value), repr(info.value), caplog.text]
    texts += [str(r.args) for r in caplog.records]
    cause = info.value.__cause__
    assert isinstance(cause, http.StatusError)  # raised from the original
    texts.append(str(cause))
    for text in texts:
        assert SECRET not in text
        assert SECRET[:12] not in text
    key = keys.ApiKey(SECRET, "env:X")
    assert SECRET not in repr(key) and SECRET not in str(key) and SECRET not in f"{key}"
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_scrub_removes_key_shapes() -> None:
    assert "sk-proj" not in errors.scrub("bad key sk-proj-abcdef123456")
    assert "AIza" not in errors.scrub("key=AIza" + "Fake-0000000000000000")
    assert "hunter2-secret" not in errors.scrub("got hunter2-secret", "hunter2-secret")


# ------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1", 1.0), ("1.5", 1.5), ("20ms", 0.02), ("6m0s", 360.0), ("1h2m3.5s", 3723.5),
     ("", None), ("soon", None), ("5x", None)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert http.parse_duration(text) == seconds


def test_retry_after_forms() -> None:
    assert http.retry_after_s({"retry-after": "7"}) == 7.0
    assert http.retry_after_s({"retry-after": "7", "retry-after-ms": "250"}) == 0.25
    dated = {
        "retry-after": "Wed, 21 Oct 2026 07:28:30 GMT",
        "date": "Wed, 21 Oct 2026 07:28:00 GMT",
    }
    assert http.retry_after_s(dated) == 30.0
    assert http.retry_after_s({}) is None


def test_full_jitter_bounds_and_retry_after_wins() -> None:
    policy = http.RetryPolicy(base_delay_s=0.5, max_delay_s=4.0)
    rng = random.Random(1)
    for retry in range(8):
        cap = min(4.0, 0.5 * 2**retry)
        delays = [policy.delay_s(retry, None, rng) for _ in range(50)]
        assert all(0 <= d <= cap for d in delays)
        assert max(delays) > cap / 2  # jitter spreads over the range
    assert policy.delay_s(3, 12.0, rng) == 12.0


async def test_retry_after_beyond_the_cap_fails_fast(
    make_teacher: Any, task: TaskConfig, clock: FakeClock
) -> None:
    async with FakeTeacherServer("openai") as fake:
        fake.script(openai_error(429, "slow", code="rate_limit_exceeded",
                                 headers={"retry-after": "3600"}))  # fmt: skip
        with pytest.raises(errors.RateLimited) as info:
            await make_teacher("openai", fake.base_url).generate(task, INPUT)
    assert clock.sleeps == [] and info.value.retry_after_s == 3600.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, errors.BadRequest), (404, errors.BadRequest), (422, errors.BadRequest),
     (403, errors.AuthError), (408, errors.Timeout), (409, errors.ProviderError),
     (502, errors.ProviderError)],
)  # fmt: skip
def test_status_mapping(status: int, kind: type[errors.TeacherError]) -> None:
    error = openai.map_error(status, {"error": {"message": "m", "type": "t"}})
    assert type(error) is kind
    assert error.retryable == (status in (408, 409, 502))


def test_anthropic_spend_limit_is_quota_even_as_429() -> None:
    error = anthropic.map_error(429, {"type": "error", "error": {
        "type": "rate_limit_error",
        "message": "You have reached your specified workspace API usage limits."}})  # fmt: skip
    assert isinstance(error, errors.QuotaExhausted) and not error.retryable


# ------------------------------------------------------------------ rate limits


async def test_requests_per_minute_bucket(clock: FakeClock) -> None:
    limiter = http.RateLimiter(RateLimits(requests_per_minute=60), clock=clock, sleep=clock.sleep)
    for _ in range(60):
        assert await limiter.acquire(10) == 0.0  # a minute's burst
    assert await limiter.acquire(10) == pytest.approx(1.0)  # then one per second
    assert clock.sleeps == [pytest.approx(1.0)]


async def test_tokens_per_minute_bucket(clock: FakeClock) -> None:
    limiter = http.RateLimiter(RateLimits(tokens_per_minute=6000), clock=clock, sleep=clock.sleep)
    await limiter.acquire(6000)
    waited = await limiter.acquire(1000)  # 6000/min = 100/s: 10 s for 1000 tokens
    assert waited == pytest.approx(10.0)


def _headers(values: dict[str, str]) -> CIMultiDictProxy[str]:
    """Response headers as the teacher's poster hands them over (aiohttp's)."""
    return CIMultiDictProxy(CIMultiDict(values))


async def test_limits_adapt_to_openai_headers(clock: FakeClock) -> None:
    limiter = http.RateLimiter(RateLimits(), clock=clock, sleep=clock.sleep)
    hints = openai.rate_hints(_headers({
        "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s", "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29000", "x-ratelimit-reset-tokens": "2ms"}))  # fmt: skip
    assert hints.remaining_requests == 0 and hints.reset_requests_s == 2.0
    limiter.observe(hints)
    assert limiter.requests is not None and limiter.requests.capacity == 500  # learnt
    assert limiter.tokens is not None and limiter.tokens.capacity == 30000
    await limiter.acquire(100)
    assert clock.sleeps[0] == pytest.approx(2.0)  # waited for the provider's reset


def test_anthropic_headers_use_the_response_date() -> None:
    hints = anthropic.rate_hints(_headers({
        "date": "Mon, 23 Nov 2026 16:00:00 GMT",
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "0",
        "anthropic-ratelimit-requests-reset": "2026-11-23T16:00:05Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "39000",
        "anthropic-ratelimit-tokens-reset": "2026-11-23T16:00:01Z"}))  # fmt: skip
    assert hints.limit_requests == 50 and hints.remaining_requests == 0
    assert hints.reset_requests_s == 5.0 and hints.reset_tokens_s == 1.0


async def test_a_429_holds_concurrent_callers(
    env: dict[str, str], clock: FakeClock, task: TaskConfig
) -> None:
    """After one caller's 429 the others wait for the same retry-after, not hammer the API."""
    async with FakeTeacherServer("anthropic", answer=lambda _: dict(GOOD)) as fake:
        teacher = build_teacher(provider_config("anthropic", fake.base_url), env=env,
                                clock=clock, sleep=clock.sleep)  # fmt: skip
        try:
            fake.script(anthropic_error(429, "rate_limit_error", "slow",
                                        headers={"retry-after": "5"}))  # fmt: skip
            await teacher.generate(task, INPUT)
            assert clock.sleeps == [5.0]
            # The pause is over (the fake clock moved 5 s): the next call does not wait.
            await teacher.generate(task, INPUT)
            assert clock.sleeps == [5.0]
            # Headers announce exhaustion: the next call waits for the reset.
            fake.script(Reply(body=anthropic_message_ok(), headers={
                "date": "Mon, 23 Nov 2026 16:00:00 GMT",
                "anthropic-ratelimit-requests-remaining": "0",
                "anthropic-ratelimit-requests-reset": "2026-11-23T16:00:03Z"}))  # fmt: skip
            await teacher.generate(task, INPUT)
            await asyncio.gather(teacher.generate(task, INPUT), teacher.generate(task, INPUT))
            assert clock.sleeps == [5.0, 3.0]
        finally:
            await teacher.aclose()


def anthropic_message_ok() -> dict[str, Any]:
    from fakes.teachers import anthropic_message

    return anthropic_message(tool_input=dict(GOOD), tool_name="classify_ticket")


async def test_openai_refusal_is_repaired(make_teacher: Any, task: TaskConfig) -> None:
    async with FakeTeacherServer("openai", answer=lambda _: dict(GOOD)) as fake:
        fake.script(Reply(body=openai_chat(None, refusal="I can't help with that.")))
        answer = await make_teacher("openai", fake.base_url).generate(task, INPUT)
    assert answer.output == GOOD and answer.attempts == 2
