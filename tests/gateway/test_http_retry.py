"""Retry signals end to end: a loopback OpenAI-format teacher fails, a client sees the truth.

Transient causes (rate limits, provider 5xx, connection refused) are 503 with a
``Retry-After`` that passes on the provider's own back-off when it sent one (in
either of its two forms); permanent ones (a rejected key) are 502. An unreadable
``Retry-After`` is treated as absent, not as a crash.
"""

from __future__ import annotations

import email.utils
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gw_rules
import pytest
from gw_config import make_config

from fakes.teachers import FakeTeacherServer, Reply, openai_error

KEY = "sk-proj-retrytest0000000000000000"


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTeacherServer]:
    monkeypatch.setenv("RETRY_TEST_KEY", KEY)
    async with FakeTeacherServer("openai", answer=gw_rules.teacher_output) as server:
        yield server


def _remote(base_url: str) -> dict[str, Any]:
    return {
        "provider": "openai_compatible",
        "model": "teacher-1",
        "base_url": base_url,
        "api_key_env": "RETRY_TEST_KEY",
        "max_retries": 0,  # the policy's own retries are tested in tests/teachers
        "timeout_s": 5,
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }


async def _ask(harness_factory: Any, tmp_path: Path, base_url: str) -> tuple[int, Any, Any]:
    h = await harness_factory(make_config(tmp_path, remote=_remote(base_url)))
    client = await h.serve()
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
    return resp.status, resp.headers, await resp.json()


def _http_date(offset_s: float, now: float) -> str:
    return email.utils.formatdate(now + offset_s, usegmt=True)


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (openai_error(429, "Rate limit reached", type="rate_limit_error",
                      headers={"Retry-After": "30"}), "30"),
        (openai_error(429, "Rate limit reached", type="rate_limit_error",
                      headers={"Retry-After": "soon"}), "1"),
        (openai_error(429, "Rate limit reached", type="rate_limit_error",
                      headers={"Retry-After": "2.2"}), "3"),
        (openai_error(429, "Rate limit reached", type="rate_limit_error",
                      headers={"Retry-After": _http_date(45, 1_700_000_000),
                               "Date": _http_date(0, 1_700_000_000)}), "45"),
        (openai_error(429, "Rate limit reached", type="rate_limit_error",
                      headers={"Retry-After": "Thu, 99 Foo 2026 99:99:99 GMT"}), "1"),
        (openai_error(500, "The server had an error", type="server_error"), "1"),
        (openai_error(503, "Overloaded", type="server_error",
                      headers={"retry-after-ms": "12500"}), "13"),
        (Reply(status=502, raw="<html>Bad Gateway</html>"), "1"),
    ],
    ids=["429-seconds", "429-soon", "429-fraction", "429-http-date", "429-bad-date",
         "500", "503-retry-after-ms", "502-html"],
)  # fmt: skip
async def test_transient_teacher_failures_are_503_with_the_providers_back_off(
    harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer, reply: Reply, retry_after: str
) -> None:
    fake.script(reply)
    status, headers, body = await _ask(harness_factory, tmp_path, fake.base_url)
    assert status == 503, body
    assert headers["Retry-After"] == retry_after
    assert body["error"]["type"] == "teacher_unavailable"
    assert body["error"]["details"]["reason"] in ("RateLimited", "ProviderError")


async def test_connection_refused_is_503(
    harness_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_TEST_KEY", KEY)
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, headers, body = await _ask(harness_factory, tmp_path, f"http://127.0.0.1:{port}/v1")
    assert status == 503, body
    assert headers["Retry-After"] == "1"
    assert body["error"]["details"] == {"reason": "ProviderError"}
    assert "cannot reach http://127.0.0.1" in body["error"]["message"]


async def test_a_rejected_key_is_502_without_retry_after(
    harness_factory: Any, tmp_path: Path, fake: FakeTeacherServer
) -> None:
    fake.script(openai_error(401, "Incorrect API key provided", code="invalid_api_key"))
    status, headers, body = await _ask(harness_factory, tmp_path, fake.base_url)
    assert status == 502
    assert "Retry-After" not in headers
    assert body["error"]["details"] == {"reason": "AuthError"}
