"""Who answers when something fails, and the OpenAI-compatible endpoint via the real SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from gw_config import make_config

from apprentice.store import open_store


class FakeOpenAI:
    """A loopback OpenAI-compatible teacher that fails with a chosen status."""

    def __init__(self) -> None:
        self.status = 200
        self.calls = 0
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        if self.status == 401:
            return web.json_response(
                {
                    "error": {
                        "message": "Incorrect API key provided",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )
        if self.status == 429:
            return web.json_response(
                {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
                status=429,
                headers={"retry-after": "0"},
            )
        task_input = json.loads(body["messages"][-1]["content"])
        content = json.dumps(gw_rules.teacher_output(task_input))
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55},
            }
        )

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/v1"))


@pytest.fixture
async def fake_openai(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    monkeypatch.setenv("FAKE_OPENAI_KEY", "sk-test-secret-key-000")
    fake = FakeOpenAI()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    fake.server = TestServer(app)
    await fake.server.start_server()
    yield fake
    await fake.server.close()


def _remote(fake: FakeOpenAI) -> dict[str, Any]:
    return {
        "provider": "openai_compatible",
        "model": "teacher-1",
        "base_url": fake.url,
        "api_key_env": "FAKE_OPENAI_KEY",
        "max_retries": 0,
        "timeout_s": 5,
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    }


def _promote_before_start(tmp_path: Path, url: str, rule: str) -> None:
    """A store that already serves v1 (as after a restart)."""
    path = gw_fakes.write_adapter(tmp_path / "models" / "classify" / "v1", rule)
    with open_store(url) as store:
        gw_fakes.promote_v1(store, path)


async def test_openai_sdk_gets_the_task_output(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="unused", max_retries=0)
    inp = gw_rules.make_input(7)
    completion = await sdk.chat.completions.create(
        model="classify",
        messages=[
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": json.dumps(inp)},
        ],
    )
    assert json.loads(completion.choices[0].message.content or "") == gw_rules.teacher_output(inp)
    assert completion.model == "classify"
    assert completion.id.startswith("chatcmpl-")
    with pytest.raises(openai.NotFoundError) as info:
        await sdk.chat.completions.create(
            model="nope", messages=[{"role": "user", "content": json.dumps(inp)}]
        )
    assert "no task named 'nope'" in str(info.value)
    with pytest.raises(openai.BadRequestError):
        await sdk.chat.completions.create(
            model="classify", messages=[{"role": "user", "content": "not json"}]
        )
    parts = await sdk.chat.completions.create(
        model="classify",
        messages=[{"role": "user", "content": [{"type": "text", "text": json.dumps(inp)}]}],
    )
    assert json.loads(parts.choices[0].message.content or "") == gw_rules.teacher_output(inp)
    # stream=True is served (tests/gateway/test_http_stream.py).
    with pytest.raises(openai.UnprocessableEntityError):
        await sdk.chat.completions.create(
            model="classify", messages=[{"role": "user", "content": '{"text": 1}'}]
        )
    await sdk.close()


async def test_teacher_auth_error_without_student_is_502(
    harness_factory: Any, fake_openai: FakeOpenAI, tmp_path: Path, caplog: Any
) -> None:
    fake_openai.status = 401
    h = await harness_factory(make_config(tmp_path, remote=_remote(fake_openai)))
    client = await h.serve()
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
    assert resp.status == 502
    body = await resp.json()
    assert body["error"]["type"] == "teacher_unavailable"
    assert body["error"]["details"] == {"reason": "AuthError"}
    assert "sk-test-secret-key-000" not in json.dumps(body)
    assert "sk-test-secret-key-000" not in caplog.text
    assert h.gw.store.spend_entries("classify") == []
    assert h.gw.store.reservations() == []  # the reservation was released (a 4xx)


async def test_teacher_rate_limited_without_student_is_503(
    harness_factory: Any, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.status = 429
    h = await harness_factory(make_config(tmp_path, remote=_remote(fake_openai)))
    client = await h.serve()
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    body = await resp.json()
    assert body["error"]["details"]["reason"] == "RateLimited"


async def test_teacher_failure_with_a_student_is_answered_by_the_student(
    harness_factory: Any, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, remote=_remote(fake_openai))
    _promote_before_start(tmp_path, cfg.store.url, "first_word")
    h = await harness_factory(cfg)
    client = await h.serve()
    assert h.students["classify"].active_version() == "v1"  # reloaded on start
    assert (await (await client.get("/v1/tasks/classify/state")).json())["phase"] == (
        "reinforcement"
    )
    inp = gw_rules.make_input(2)
    resp = await client.post("/v1/tasks/classify", json={"input": inp})
    assert resp.status == 200
    assert (await resp.json())["output"] == gw_rules.teacher_output(inp)  # teacher's (ok)
    fake_openai.status = 401
    inp = gw_rules.make_input(3)
    resp = await client.post("/v1/tasks/classify", json={"input": inp})
    assert resp.status == 200
    assert (await resp.json())["output"] == {"label": inp["text"].split()[0]}
    await h.gw.flush()
    last = h.gw.store.requests("classify")[-1]
    assert last.served_by == "student" and last.cost == 0.0


async def test_invalid_student_output_is_a_disagreement(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    _promote_before_start(tmp_path, cfg.store.url, "invalid")
    h = await harness_factory(cfg)
    client = await h.serve()
    inp = gw_rules.make_input(4)
    resp = await client.post("/v1/tasks/classify", json={"input": inp})
    assert resp.status == 200
    assert (await resp.json())["output"] == gw_rules.teacher_output(inp)
    comparisons = h.gw.store.comparisons("classify")
    assert [c.score for c in comparisons] == [0.0]
    assert h.gw.tasks["classify"].engine.state.confidence.comparisons == 1


async def test_student_down_in_phase_2_teacher_serves_and_readyz_says_so(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    _promote_before_start(tmp_path, cfg.store.url, "first_word")
    h = await harness_factory(cfg, student=lambda: gw_fakes.RuleStudent(fail=True))
    client = await h.serve()
    inp = gw_rules.make_input(5)
    resp = await client.post("/v1/tasks/classify", json={"input": inp})
    assert resp.status == 200
    assert (await resp.json())["output"] == gw_rules.teacher_output(inp)
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["classify"] == "down"
