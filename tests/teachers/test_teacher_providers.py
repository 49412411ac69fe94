"""Every provider against a loopback server speaking its real protocol.

Each scenario asserts what the server received (headers, body) as well as what the
client returned, and the delays the retry policy asked of the injected sleep.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from teacher_support import SECRET, FakeClock

from apprentice import prompts
from apprentice.config import TaskConfig
from apprentice.teachers import errors
from fakes.teachers import (
    FakeTeacherServer,
    Reply,
    anthropic_error,
    anthropic_message,
    fake_vector,
    gemini_error,
    gemini_response,
    openai_chat,
    openai_error,
)

GOOD = {"category": "billing", "priority": 2}
INPUT = {"text": "I was charged twice this month"}


@dataclass(frozen=True)
class Case:
    kind: str
    protocol: str
    price: tuple[float, float]  # USD per 1M input / output tokens
    good: Callable[[dict[str, Any]], Reply]
    malformed: Reply
    rate_limited: Callable[[float], Reply]
    overloaded: Reply
    unauthorized: Reply
    quota: Reply
    overloaded_type: type[errors.TeacherError]


def _openai_good(output: dict[str, Any]) -> Reply:
    return Reply(body=openai_chat(json.dumps(output)))


def _openai_case(kind: str) -> Case:
    return Case(
        kind=kind,
        protocol="openai",
        price=(2.50, 10.00),
        good=_openai_good,
        malformed=Reply(body=openai_chat("Sure! The category is billing, priority two.")),
        rate_limited=lambda s: openai_error(
            429,
            "Rate limit reached for gpt-4o on requests per min (RPM): Limit 500, Used 500.",
            type="requests",
            code="rate_limit_exceeded",
            headers={"retry-after": f"{s:g}"},
        ),
        overloaded=openai_error(503, "The server is overloaded.", type="server_error"),
        unauthorized=openai_error(
            401,
            f"Incorrect API key provided: {SECRET}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        ),
        quota=openai_error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
            code="insufficient_quota",
        ),
        overloaded_type=errors.ProviderError,
    )


CASES = {
    "anthropic": Case(
        kind="anthropic",
        protocol="anthropic",
        price=(3.00, 15.00),
        good=lambda output: Reply(
            body=anthropic_message(tool_input=output, tool_name="classify_ticket")
        ),
        malformed=Reply(
            body=anthropic_message(tool_input={"category": 7}, tool_name="classify_ticket")
        ),
        rate_limited=lambda s: anthropic_error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            headers={"retry-after": f"{s:g}"},
        ),
        overloaded=anthropic_error(529, "overloaded_error", "Overloaded"),
        unauthorized=anthropic_error(401, "authentication_error", "invalid x-api-key"),
        quota=anthropic_error(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API. Please go to "
            "Plans & Billing to upgrade or purchase credits.",
        ),
        overloaded_type=errors.Overloaded,
    ),
    "openai": _openai_case("openai"),
    "openai_compatible": _openai_case("openai_compatible"),
    "google": Case(
        kind="google",
        protocol="google",
        price=(0.30, 2.50),
        good=lambda output: Reply(body=gemini_response(json.dumps(output))),
        malformed=Reply(body=gemini_response('{"category": "billing", "priority": ')),
        rate_limited=lambda s: gemini_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/"
                            "generate_content_free_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{s:g}s"},
            ],
        ),
        overloaded=gemini_error(503, "UNAVAILABLE", "The model is overloaded."),
        # Gemini answers a wrong key with 400 INVALID_ARGUMENT + reason API_KEY_INVALID.
        unauthorized=gemini_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ],
        ),
        quota=gemini_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}
                    ],
                }
            ],
        ),
        overloaded_type=errors.Overloaded,
    ),
}

KINDS = list(CASES)


def _auth_header(kind: str, headers: dict[str, str]) -> str | None:
    if kind == "anthropic":
        return headers.get("x-api-key")
    if kind == "google":
        return headers.get("x-goog-api-key")
    return headers.get("authorization", "").removeprefix("Bearer ") or None


def _expected_cost(case: Case, input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * case.price[0] + output_tokens * case.price[1]) / 1e6


@pytest.fixture(params=KINDS)
async def setup(
    request: pytest.FixtureRequest, make_teacher: Any
) -> Any:  # (case, fake, teacher-factory)
    case = CASES[request.param]
    async with FakeTeacherServer(case.protocol, answer=lambda _: dict(GOOD)) as fake:  # type: ignore[arg-type]

        def teacher(**extra: Any) -> Any:
            return make_teacher(case.kind, fake.base_url, **extra)

        yield case, fake, teacher


async def test_success_usage_cost_and_wire(setup: Any, task: TaskConfig) -> None:
    case, fake, teacher = setup
    answer = await teacher().generate(task, INPUT, request_id="r1")

    assert answer.output == GOOD
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (120, 30)
    assert answer.cost == pytest.approx(_expected_cost(case, 120, 30), abs=1e-9)
    assert answer.provider == case.kind and answer.attempts == 1
    assert answer.model  # provenance for the example

    [seen] = fake.received
    assert _auth_header(case.kind, seen.headers) == SECRET
    assert "key" not in seen.query  # never in the URL (proxy logs)
    body, system = seen.json, prompts.system_prompt(task)
    user = prompts.user_prompt(INPUT)
    if case.kind == "anthropic":
        assert seen.path == "/v1/messages"
        assert seen.headers["anthropic-version"] == "2023-06-01"
        assert body["system"] == system
        assert body["messages"] == [{"role": "user", "content": user}]
        assert body["max_tokens"] == 1024
        assert body["tools"][0]["input_schema"] == task.output_schema
        assert body["tool_choice"] == {"type": "tool", "name": body["tools"][0]["name"]}
    elif case.kind == "google":
        assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
        assert body["systemInstruction"] == {"parts": [{"text": system}]}
        assert body["contents"] == [{"role": "user", "parts": [{"text": user}]}]
        generation = body["generationConfig"]
        assert generation["responseMimeType"] == "application/json"
        assert generation["maxOutputTokens"] == 1024
        assert generation["responseSchema"]["type"] == "OBJECT"
        assert generation["responseSchema"]["properties"]["priority"] == {"type": "INTEGER"}
        assert generation["responseSchema"]["required"] == ["category", "priority"]
    else:
        assert seen.path == "/v1/chat/completions"
        assert body["messages"] == [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        cap_field = "max_tokens" if case.kind == "openai_compatible" else "max_completion_tokens"
        assert body[cap_field] == 1024
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        assert fmt["json_schema"]["schema"] == task.output_schema
        assert fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["name"] == "classify_ticket"


async def test_429_retry_after_is_honoured(setup: Any, task: TaskConfig, clock: FakeClock) -> None:
    case, fake, teacher = setup
    fake.script(case.rate_limited(7))
    answer = await teacher().generate(task, INPUT)
    assert answer.output == GOOD and answer.attempts == 2
    assert clock.sleeps == [7.0]
    assert len(fake.received) == 2
    assert fake.received[0].json == fake.received[1].json  # the same request, resent


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_retry_after_ms_wins(
    kind: str, make_teacher: Any, task: TaskConfig, clock: FakeClock
) -> None:
    async with FakeTeacherServer(CASES[kind].protocol, answer=lambda _: dict(GOOD)) as fake:  # type: ignore[arg-type]
        reply = CASES[kind].rate_limited(9)
        reply.headers["retry-after-ms"] = "1500"
        fake.script(reply)
        await make_teacher(kind, fake.base_url).generate(task, INPUT)
    assert clock.sleeps == [1.5]


async def test_5xx_and_overload_retried_then_success(
    setup: Any, task: TaskConfig, clock: FakeClock
) -> None:
    case, fake, teacher = setup
    fake.script(case.overloaded, Reply(status=500, body={"error": {"message": "internal"}}))
    answer = await teacher().generate(task, INPUT)
    assert answer.output == GOOD and answer.attempts == 3
    assert len(fake.received) == 3
    # Full jitter: retry n waits uniform(0, 0.5 * 2**n).
    assert len(clock.sleeps) == 2
    assert 0 <= clock.sleeps[0] <= 0.5 and 0 <= clock.sleeps[1] <= 1.0


async def test_overload_error_type_when_retries_run_out(setup: Any, task: TaskConfig) -> None:
    case, fake, teacher = setup
    fake.script(case.overloaded, case.overloaded)
    with pytest.raises(case.overloaded_type) as info:
        await teacher(max_retries=1).generate(task, INPUT)
    assert info.value.retryable and len(fake.received) == 2


async def test_auth_error_not_retried(setup: Any, task: TaskConfig, clock: FakeClock) -> None:
    case, fake, teacher = setup
    fake.script(case.unauthorized)
    with pytest.raises(errors.AuthError) as info:
        await teacher().generate(task, INPUT)
    assert len(fake.received) == 1 and clock.sleeps == []
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert "api_key_env" in str(info.value)  # says what to do


async def test_quota_exhaustion_not_retried(setup: Any, task: TaskConfig, clock: FakeClock) -> None:
    case, fake, teacher = setup
    fake.script(case.quota)
    with pytest.raises(errors.QuotaExhausted) as info:
        await teacher().generate(task, INPUT)
    assert len(fake.received) == 1 and clock.sleeps == []
    assert "retrying cannot help" in str(info.value)


async def test_malformed_answer_gets_one_repair(setup: Any, task: TaskConfig) -> None:
    case, fake, teacher = setup
    fake.script(case.malformed)
    answer = await teacher().generate(task, INPUT)
    assert answer.output == GOOD and answer.attempts == 2
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (240, 60)
    assert answer.cost == pytest.approx(_expected_cost(case, 240, 60), abs=1e-9)
    first, repair = (r.json for r in fake.received)
    if case.kind == "google":
        turns = [(c["role"], c["parts"][0]["text"]) for c in repair["contents"]]
        assert [role for role, _ in turns] == ["user", "model", "user"]
    else:
        turns = [(m["role"], m["content"]) for m in repair["messages"] if m["role"] != "system"]
        assert [role for role, _ in turns] == ["user", "assistant", "user"]
    assert "not valid" in turns[-1][1]
    assert len(json.dumps(repair)) > len(json.dumps(first))


async def test_malformed_twice_is_invalid_output(setup: Any, task: TaskConfig) -> None:
    case, fake, teacher = setup
    fake.script(case.malformed, case.malformed)
    with pytest.raises(errors.InvalidOutput) as info:
        await teacher().generate(task, INPUT)
    assert len(fake.received) == 2  # one repair, no more
    assert info.value.cost == pytest.approx(_expected_cost(case, 240, 60), abs=1e-9)
    assert "classify_ticket" in str(info.value)


async def test_timeout_retried_then_typed_error(
    setup: Any, task: TaskConfig, clock: FakeClock
) -> None:
    _case, fake, teacher = setup
    fake.script(Reply(hang=True), Reply(hang=True))
    with pytest.raises(errors.Timeout) as info:
        await teacher(timeout_s=0.2, max_retries=1).generate(task, INPUT)
    assert len(fake.received) == 2 and len(clock.sleeps) == 1
    assert "timeout_s=0.2" in str(info.value)


async def test_timeout_then_success(setup: Any, task: TaskConfig) -> None:
    _case, fake, teacher = setup
    fake.script(Reply(hang=True))
    answer = await teacher(timeout_s=0.2).generate(task, INPUT)
    assert answer.output == GOOD and answer.attempts == 2


async def test_non_json_body_from_a_proxy(setup: Any, task: TaskConfig) -> None:
    _case, fake, teacher = setup
    fake.script(Reply(status=200, raw="<html>captive portal</html>"))
    answer = await teacher().generate(task, INPUT)
    assert answer.attempts == 2


async def test_complete_for_judges(setup: Any) -> None:
    case, fake, teacher = setup
    schema = {
        "type": "object",
        "properties": {"score": {"type": "number"}},
        "required": ["score"],
        "additionalProperties": False,
    }
    fake.answer = lambda _: {"score": 0.75}
    done = await teacher().complete(
        [{"role": "user", "content": "grade this"}], json_schema=schema, max_tokens=64
    )
    assert json.loads(done.text) == {"score": 0.75}
    assert done.cost == pytest.approx(_expected_cost(case, 120, 30), abs=1e-9)
    body = fake.received[0].json
    cap = {
        "anthropic": ("max_tokens",),
        "google": ("generationConfig", "maxOutputTokens"),
        "openai": ("max_completion_tokens",),
        "openai_compatible": ("max_tokens",),
    }[case.kind]
    value: Any = body
    for key in cap:
        value = value[key]
    assert value == 64


async def test_embeddings(setup: Any) -> None:
    case, fake, teacher = setup
    texts = ["a paraphrase", "something else"]
    if case.kind == "anthropic":
        with pytest.raises(errors.EmbeddingsUnsupported):
            await teacher().embed(texts)
        assert fake.received == []
        return
    vectors = await teacher().embed(texts)
    assert vectors == [fake_vector(t) for t in texts]
    [seen] = fake.received
    if case.kind == "google":
        assert seen.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
        assert seen.json["requests"][0]["model"] == "models/gemini-embedding-001"
    else:
        assert seen.path == "/v1/embeddings" and seen.json["input"] == texts
        expected = "text-embedding-3-small" if case.kind == "openai" else "gpt-4o"
        assert seen.json["model"] == expected
