"""Our requests and the fakes' responses checked against the official SDKs.

Two independent checks per protocol, so neither our clients nor our fakes can
drift from the real wire format:

1. the request body our teacher sent validates against the SDK's own param
   TypedDict, with nothing dropped (an unknown key anywhere fails), and
2. the official SDK client, pointed at the same fake server and given the same
   call, sends the same body and the same auth headers, and parses the fake's
   response with its own types.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from anthropic.types import message_create_params
from google import genai
from google.genai import types as genai_types
from openai.types.chat import completion_create_params
from pydantic import TypeAdapter
from teacher_support import SECRET

from apprentice.config import TaskConfig
from apprentice.teachers import errors
from fakes.teachers import (
    FakeTeacherServer,
    Reply,
    anthropic_error,
    anthropic_message,
    gemini_response,
    openai_chat,
    openai_error,
)

INPUT = {"text": "refund please"}
GOOD = {"category": "billing", "priority": 1}


def materialize(value: Any) -> Any:
    """Consume pydantic's lazy iterators so every nested item is validated."""
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or hasattr(value, "__next__"):
        return [materialize(v) for v in value]
    return value


def strictly_valid(adapter: TypeAdapter[Any], body: dict[str, Any]) -> None:
    """Valid, and nothing ignored: TypedDict validation drops unknown keys, so compare."""
    assert materialize(adapter.validate_python(body)) == body


async def test_openai_request_matches_sdk(make_teacher: Any, task: TaskConfig) -> None:
    async with FakeTeacherServer("openai", answer=lambda _: dict(GOOD)) as fake:
        await make_teacher("openai", fake.base_url).generate(task, INPUT)
        ours = fake.received[0]
        strictly_valid(TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming),
                       ours.json)  # fmt: skip
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key=SECRET, max_retries=0)
        try:
            parsed = await client.chat.completions.create(**ours.json)
        finally:
            await client.close()
        sdk = fake.received[1]
    assert sdk.json == ours.json
    assert sdk.path == ours.path
    assert sdk.headers["authorization"] == ours.headers["authorization"] == f"Bearer {SECRET}"
    assert parsed.choices[0].message.content is not None
    assert parsed.usage is not None and parsed.usage.prompt_tokens == 120


async def test_anthropic_request_matches_sdk(make_teacher: Any, task: TaskConfig) -> None:
    async with FakeTeacherServer("anthropic", answer=lambda _: dict(GOOD)) as fake:
        await make_teacher("anthropic", fake.base_url).generate(task, INPUT)
        ours = fake.received[0]
        strictly_valid(TypeAdapter(message_create_params.MessageCreateParamsNonStreaming),
                       ours.json)  # fmt: skip
        client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key=SECRET, max_retries=0)
        try:
            parsed = await client.messages.create(**ours.json)
        finally:
            await client.close()
        sdk = fake.received[1]
    assert sdk.json == ours.json
    assert sdk.path == ours.path
    # The SDK of 2026-11 authenticates with a Bearer token and a newer anthropic-version;
    # we send the long-documented x-api-key + 2023-06-01, which the API still accepts.
    sdk_key = sdk.headers.get("x-api-key") or sdk.headers["authorization"].removeprefix("Bearer ")
    assert sdk_key == ours.headers["x-api-key"] == SECRET
    assert sdk.headers["anthropic-version"] and ours.headers["anthropic-version"] == "2023-06-01"
    block = parsed.content[0]
    assert block.type == "tool_use" and block.input == GOOD


async def test_google_request_matches_sdk(make_teacher: Any, task: TaskConfig) -> None:
    async with FakeTeacherServer("google", answer=lambda _: dict(GOOD)) as fake:
        await make_teacher("google", fake.base_url).generate(task, INPUT)
        ours = fake.received[0].json
        generation = ours["generationConfig"]
        client = genai.Client(
            api_key=SECRET,
            http_options=genai_types.HttpOptions(base_url=fake.root_url, api_version="v1beta"),
        )
        parsed = await client.aio.models.generate_content(
            model="gemini-2.5-flash",
            contents=[genai_types.Content.model_validate(c) for c in ours["contents"]],
            config=genai_types.GenerateContentConfig(
                system_instruction=genai_types.Content.model_validate(ours["systemInstruction"]),
                max_output_tokens=generation["maxOutputTokens"],
                response_mime_type=generation["responseMimeType"],
                response_schema=genai_types.Schema.model_validate(generation["responseSchema"]),
            ),
        )
        sdk = fake.received[1]
    assert sdk.path == fake.received[0].path
    assert sdk.headers["x-goog-api-key"] == fake.received[0].headers["x-goog-api-key"] == SECRET
    assert set(sdk.json) == set(ours)
    assert sdk.json["contents"] == ours["contents"]
    assert sdk.json["systemInstruction"]["parts"] == ours["systemInstruction"]["parts"]
    sdk_generation = sdk.json["generationConfig"]
    for key in ("maxOutputTokens", "responseMimeType"):
        assert sdk_generation[key] == generation[key]
    schema = sdk_generation["responseSchema"]
    assert schema["type"] == generation["responseSchema"]["type"]
    assert schema["properties"] == generation["responseSchema"]["properties"]
    assert parsed.text is not None and parsed.usage_metadata is not None
    assert parsed.usage_metadata.prompt_token_count == 120


def test_fixture_bodies_parse_with_sdk_types() -> None:
    chat = openai.types.chat.ChatCompletion.model_validate(openai_chat('{"a": 1}'))
    assert chat.usage is not None and chat.usage.completion_tokens == 30
    message = anthropic.types.Message.model_validate(anthropic_message(tool_input={"a": 1}))
    assert message.usage.input_tokens == 120
    gemini = genai_types.GenerateContentResponse.model_validate(
        gemini_response('{"a": 1}', thoughts_tokens=5)
    )
    assert gemini.usage_metadata is not None and gemini.usage_metadata.thoughts_token_count == 5


@pytest.mark.parametrize(
    ("reply", "sdk_error", "ours"),
    [
        (openai_error(429, "quota", type="insufficient_quota", code="insufficient_quota"),
         openai.RateLimitError, errors.QuotaExhausted),
        (openai_error(401, "bad key", code="invalid_api_key"),
         openai.AuthenticationError, errors.AuthError),
        (openai_error(400, "bad schema"), openai.BadRequestError, errors.BadRequest),
    ],
)  # fmt: skip
async def test_openai_error_fixtures_as_the_sdk_reads_them(
    reply: Reply, sdk_error: type[Exception], ours: type[Exception], make_teacher: Any,
    task: TaskConfig,
) -> None:  # fmt: skip
    async with FakeTeacherServer("openai") as fake:
        fake.script(reply, reply)
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key=SECRET, max_retries=0)
        try:
            with pytest.raises(sdk_error) as sdk_info:
                await client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "x"}]
                )
        finally:
            await client.close()
        with pytest.raises(ours):
            await make_teacher("openai", fake.base_url).generate(task, INPUT)
    body = reply.body["error"]
    assert getattr(sdk_info.value, "code", None) == body["code"]


@pytest.mark.parametrize(
    ("reply", "sdk_error", "ours"),
    [
        (anthropic_error(529, "overloaded_error", "Overloaded"),
         anthropic.InternalServerError, errors.Overloaded),
        (anthropic_error(401, "authentication_error", "invalid x-api-key"),
         anthropic.AuthenticationError, errors.AuthError),
        (anthropic_error(429, "rate_limit_error", "slow down"),
         anthropic.RateLimitError, errors.RateLimited),
    ],
)  # fmt: skip
async def test_anthropic_error_fixtures_as_the_sdk_reads_them(
    reply: Reply, sdk_error: type[Exception], ours: type[Exception], make_teacher: Any,
    task: TaskConfig,
) -> None:  # fmt: skip
    async with FakeTeacherServer("anthropic") as fake:
        fake.script(reply, reply)
        client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key=SECRET, max_retries=0)
        try:
            with pytest.raises(sdk_error) as sdk_info:
                await client.messages.create(
                    model="claude-sonnet-4-6", max_tokens=8,
                    messages=[{"role": "user", "content": "x"}],
                )  # fmt: skip
        finally:
            await client.close()
        with pytest.raises(ours):
            await make_teacher("anthropic", fake.base_url, max_retries=0).generate(task, INPUT)
    sdk_body = getattr(sdk_info.value, "body", None)
    assert isinstance(sdk_body, dict) and sdk_body["error"]["type"] == reply.body["error"]["type"]
