"""The ``openai`` student: a fine-tuned ``ft:`` model served by OpenAI's chat API, at the wire.

The loopback server's bodies are parsed by the ``openai`` SDK's own types
(``Model``, ``ChatCompletion``) and the student's request body is checked against
the SDK's ``CompletionCreateParamsNonStreaming`` with nothing dropped, as the
teacher wire tests do. Key policy, retries and cost are the teachers' own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types import Model as SDKModel
from openai.types.chat import ChatCompletion, completion_create_params
from pydantic import TypeAdapter, ValidationError

from apprentice import config, prompts
from apprentice.students import build_student, openai_ft
from apprentice.students.base import (
    NoStudent,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from apprentice.training.backends.base import TrainingResult
from fakes.teachers import openai_chat

FT = "ft:gpt-4o-mini-2024-07-18:acme::Bq7x2kLm"
KEY = "sk-test-student-not-a-key"
TASK = config.TaskConfig.model_validate(
    {
        "name": "classify_ticket",
        "input_schema": {"text": "str"},
        "output_schema": {"category": "str", "priority": "int"},
        "evaluator": "structured_match",
        "match_fields": ["category", "priority"],
    }
)
INPUT = {"text": "I was charged twice"}
PARAMS = TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming)


def materialize(value: Any) -> Any:
    """Consume pydantic's lazy iterators so every nested item is validated."""
    if isinstance(value, dict):
        return {k: materialize(v) for k, v in value.items()}
    if isinstance(value, list | tuple) or hasattr(value, "__next__"):
        return [materialize(v) for v in value]
    return value


class OpenAIFake:
    """``GET /v1/models/{id}`` and ``POST /v1/chat/completions`` for the fine-tunes it holds."""

    def __init__(self, models: tuple[str, ...] = (FT,)) -> None:
        self.models = set(models)
        self.received: list[tuple[str, dict[str, str], Any]] = []
        self.script: list[web.Response] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models/{model}", self.model)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    @staticmethod
    def error(status: int, message: str, code: str | None = None) -> web.Response:
        body = {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        }
        return web.json_response(body, status=status)

    def _auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return self.error(401, "Incorrect API key provided", "invalid_api_key")
        return None

    async def model(self, request: web.Request) -> web.Response:
        self.received.append((request.path, dict(request.headers), None))
        name = request.match_info["model"]
        if (denied := self._auth(request)) is not None:
            return denied
        if name not in self.models:
            return self.error(404, f"The model '{name}' does not exist", "model_not_found")
        body = {"id": name, "object": "model", "created": 1_763_900_000, "owned_by": "acme"}
        SDKModel.model_validate(body)
        return web.json_response(body)

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append((request.path, dict(request.headers), body))
        if (denied := self._auth(request)) is not None:
            return denied
        if self.script:
            return self.script.pop(0)
        if body["model"] not in self.models:
            return self.error(404, f"The model '{body['model']}' does not exist", "model_not_found")
        reply = openai_chat(json.dumps({"category": "billing", "priority": 2}), model=body["model"])
        ChatCompletion.model_validate(reply)
        return web.json_response(reply)

    def chats(self) -> list[Any]:
        return [b for p, _, b in self.received if p.endswith("/chat/completions")]


@asynccontextmanager
async def running(fake: OpenAIFake) -> AsyncIterator[str]:
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}/v1"
    finally:
        await server.close()


def local(url: str, **extra: Any) -> config.LocalConfig:
    return config.LocalConfig.model_validate(
        {
            "backend": "openai",
            "fine_tune_backend": "openai",
            "base_model": "gpt-4o-mini-2024-07-18",
            "base_url": url,
            "api_key_env": "STUDENT_OPENAI_KEY",
            **extra,
        }
    )


def version_dir(tmp_path: Path, model: str = FT) -> Path:
    """What the openai fine-tuning backend leaves in a version's directory."""
    out = tmp_path / "v1"
    TrainingResult(
        adapter_dir=model,
        base_model="gpt-4o-mini-2024-07-18",
        examples_used=50,
        data_hash="sha256:0",
        hyper_parameters={},
        loss_curve=[1.0],
        duration_s=1.0,
        metrics={"fine_tuned_model": model, "job_id": "ftjob-1"},
    ).write_metadata(out)
    return out


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDENT_OPENAI_KEY", KEY)


async def test_serves_the_fine_tune_at_its_own_price(tmp_path: Path) -> None:
    fake = OpenAIFake()
    async with running(fake) as url:
        student = build_student(local(url))
        assert isinstance(student, openai_ft.OpenAIStudent)
        with pytest.raises(NoStudent):
            await student.generate(TASK, INPUT)
        await student.load_version(VersionRef("v1", str(version_dir(tmp_path))))
        answer = await student.generate(TASK, INPUT)
        assert answer.output == {"category": "billing", "priority": 2} and answer.version == "v1"
        # 120 prompt + 30 completion tokens at the ft: gpt-4o-mini price (0.30 / 1.20 per 1M)
        assert answer.cost == pytest.approx((120 * 0.30 + 30 * 1.20) / 1e6)
        sent = fake.chats()[-1]
        assert sent["model"] == FT
        assert sent["messages"][-1] == prompts.build_messages(TASK, INPUT)[-1]
        assert materialize(PARAMS.validate_python(sent)) == sent  # nothing dropped
        headers = fake.received[-1][1]
        assert headers["Authorization"] == f"Bearer {KEY}"
        assert (await student.health()).ready
        await student.aclose()


async def test_transient_errors_are_retried_like_a_teachers(tmp_path: Path) -> None:
    fake = OpenAIFake()
    async with running(fake) as url:
        student = build_student(local(url, max_retries=2))
        await student.load_version(VersionRef("v1", FT))  # a literal ft: name works too
        fake.script = [
            web.json_response(
                {"error": {"message": "Rate limit"}}, status=429, headers={"retry-after": "0"}
            ),
            web.json_response(
                {"error": {"message": "boom"}}, status=500, headers={"retry-after": "0"}
            ),
        ]
        answer = await student.generate(TASK, INPUT)
        assert answer.ok and len(fake.chats()) == 3
        fake.script = [
            web.json_response(
                {"error": {"message": "boom"}}, status=500, headers={"retry-after": "0"}
            )
            for _ in range(3)
        ]
        with pytest.raises(StudentUnavailable, match="openai student ft:"):
            await student.generate(TASK, INPUT)
        await student.aclose()


async def test_failure_modes_name_the_backend_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = OpenAIFake()
    async with running(fake) as url:
        student = build_student(local(url))
        with pytest.raises(VersionLoadError, match=r"OpenAI has no model .*retrain"):
            await student.load_version(VersionRef("v2", "ft:gpt-4o-mini-2024-07-18:acme::gone"))
        plain = tmp_path / "plain"
        TrainingResult("/models/v1", "llama", 1, "sha256:0", {}, [], 0.0).write_metadata(plain)
        with pytest.raises(VersionLoadError, match="fine_tune_backend: openai"):
            await student.load_version(VersionRef("v3", str(plain)))
        monkeypatch.setenv("STUDENT_OPENAI_KEY", "sk-wrong")
        with pytest.raises(VersionLoadError, match="key was refused"):
            await student.load_version(VersionRef("v1", FT))
        monkeypatch.delenv("STUDENT_OPENAI_KEY")
        with pytest.raises(VersionLoadError, match="STUDENT_OPENAI_KEY"):
            await student.load_version(VersionRef("v1", FT))
        assert student.active_version() is None
        await student.aclose()
    down = build_student(local(url, timeout_s=2))  # the server is gone
    monkeypatch.setenv("STUDENT_OPENAI_KEY", KEY)
    with pytest.raises(VersionLoadError, match="unreachable"):
        await down.load_version(VersionRef("v1", FT))
    await down.aclose()


def test_unpriced_bases_and_impossible_pairings_are_config_errors() -> None:
    with pytest.raises(ValueError, match=r"local\.price"):
        build_student(local("http://127.0.0.1:9", base_model="davinci-002"))
    priced = build_student(
        local(
            "http://127.0.0.1:9",
            base_model="davinci-002",
            price={"input_per_mtok": 1, "output_per_mtok": 2},
        )
    )
    assert isinstance(priced, openai_ft.OpenAIStudent)
    with pytest.raises(ValidationError, match=r"local\.backend: openai"):
        config.LocalConfig(backend="ollama", base_model="llama3.1:8b", fine_tune_backend="openai")
    with pytest.raises(ValidationError, match="fine_tune_backend: openai"):
        config.LocalConfig(backend="openai", base_model="gpt-4o-mini", fine_tune_backend="unsloth")
    assert openai_ft.fine_tuned_price("ft:gpt-4.1-mini-2025-04-14:acme::x") == config.Price(
        input_per_mtok=0.80, output_per_mtok=3.20
    )
    assert openai_ft.fine_tuned_price("ft:gpt-4.1-2025-04-14:acme::x") == config.Price(
        input_per_mtok=3.00, output_per_mtok=12.00
    )


async def test_a_fine_tune_is_validated_and_promoted_like_any_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp.test_utils import TestClient

    from apprentice.gateway.facade import Apprentice
    from apprentice.gateway.http import build_app
    from fakes.teachers import FakeTeacherServer

    monkeypatch.setenv("ADMIN_TOKEN_TEST", "admin-token-test")
    monkeypatch.setenv("TEACHER_KEY", "sk-teacher-not-a-key")
    admin = {"Authorization": "Bearer admin-token-test"}
    fake = OpenAIFake()
    async with (
        running(fake) as url,
        FakeTeacherServer("openai", answer=lambda _: {"category": "billing", "priority": 2}) as t,
    ):
        cfg = config.ApprenticeConfig.model_validate(
            {
                "tasks": [TASK.model_dump()],
                "remote": {
                    "provider": "openai",
                    "model": "gpt-4o",
                    "base_url": t.base_url,
                    "api_key_env": "TEACHER_KEY",
                },
                "local": {
                    **local(url).model_dump(exclude_none=True),
                    "model_dir": str(tmp_path / "models"),
                },
                "store": {"url": f"sqlite:///{tmp_path}/apprentice.db"},
                "gateway": {"orchestrator": "operator", "admin_token_env": "ADMIN_TOKEN_TEST"},
            }
        )
        app = Apprentice.from_config(cfg)
        await app.start()
        client = TestClient(TestServer(build_app(app.gateway)))
        await client.start_server()
        try:
            for i in range(40):
                resp = await client.post(
                    "/v1/tasks/classify_ticket", json={"input": {"text": f"ticket {i}"}}
                )
                assert resp.status == 200, await resp.text()
            base = "/admin/tasks/classify_ticket"
            path = str(version_dir(tmp_path))
            resp = await client.post(f"{base}/versions", headers=admin, json={"path": path})
            assert resp.status == 201, await resp.text()
            result = await (await client.post(f"{base}/versions/v1/validate", headers=admin)).json()
            assert result["passed"] is True and result["heldout_score"] == 1.0, result
            resp = await client.post(f"{base}/versions/v1/promote", headers=admin)
            assert (await resp.json()) == {"active": "v1"}
            assert any(b["model"] == FT for b in fake.chats())  # validation asked the fine-tune
            state = await (await client.get("/v1/tasks/classify_ticket/state")).json()
            assert state["active_version"] == "v1"
        finally:
            await client.close()
            await app.close()
