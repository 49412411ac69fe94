"""Scrubbing: by the value of every loaded key, and by the shapes providers' keys have."""

from __future__ import annotations

import pytest

from apprentice.teachers import errors, keys


def fake_key(prefix: str, length: int) -> str:
    """A key of a provider's shape, built here so no key-like literal sits in the repository."""
    filler = "FakeKey0" * (length // 8 + 1)
    return prefix + filler[:length]


SHAPED = [
    fake_key("sk-proj-", 40),
    fake_key("sk-", 48),
    fake_key("sk-ant-api03-", 34) + "AA",
    fake_key("AIza", 35),
    fake_key("gsk_", 52),
    fake_key("xai-", 36),
    fake_key("hf_", 32),
    "sk-ab***yz",  # the masked form OpenAI echoes
]


@pytest.mark.parametrize("key", SHAPED)
def test_key_shapes_are_scrubbed_by_pattern(key: str) -> None:
    text = f'{{"error": {{"message": "Incorrect API key provided: {key}."}}}}'
    assert key not in errors.scrub(text)
    assert "Incorrect API key provided: [redacted]." in errors.scrub(text)


@pytest.mark.parametrize(
    "text",
    [
        "invalid_api_key: Incorrect API key provided",
        "the task-level budget is exhausted",
        "Bearer realm=api",
        "request 0123456789abcdef0123456789abcdef failed",  # ids are not keys
    ],
)
def test_prose_survives(text: str) -> None:
    assert errors.scrub(text) == text


@pytest.mark.parametrize(
    "secret", ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "Zq9mT2vL8xR4"]
)
def test_a_loaded_key_is_scrubbed_by_value_whatever_its_shape(secret: str) -> None:
    text = f"provider said: unknown key {secret} (check it)"
    assert errors.scrub(text) == text  # no pattern knows it...
    keys.ApiKey(secret, "env:TEST")  # ...until the process loads it as a key
    assert errors.scrub(text) == "provider said: unknown key [redacted] (check it)"
    err = errors.AuthError(text, provider="openai_compatible", status=401)
    assert secret not in str(err) and secret not in repr(err)


def test_short_values_are_not_registered() -> None:
    errors.register_secret("abc")
    assert errors.scrub("abc def abc") == "abc def abc"
