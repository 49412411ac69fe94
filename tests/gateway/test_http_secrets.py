"""No API key ever leaves the process: every key shape through every error path.

Providers echo keys in error bodies ("Incorrect API key provided: gsk_..."). Each
fake provider here does exactly that, with the key it was sent, for each real key
shape (OpenAI project and legacy, Anthropic, Gemini, Groq, xAI, a hex key, an
opaque key no pattern knows). The gateway must scrub by the key's *value*, so
the shapes without a pattern are the real test.

Paths: the teacher (task API and OpenAI-compatible API, for each provider
protocol and error status), the judge (llm_judge), embeddings (semantic
similarity on the teacher's embeddings), the trainer (OpenAI fine-tuning
backend) and the operator's Events. Places searched: response bodies and
headers, every log record, ``/v1/tasks/{task}/state``, ``/metrics``, every file
under the test's directory (the SQLite store and its WAL, the model directory),
the HTML report and the operator's Event messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import string
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from gw_config import make_config

from apprentice.config import TrainingConfig
from apprentice.kube import reconcile
from apprentice.reporting import html, report
from apprentice.store import open_store
from apprentice.training.backends import openai_ft
from apprentice.training.backends.base import TrainingFailed
from apprentice.training.dataset import TrainingDataset
from fakes.teachers import (
    FakeTeacherServer,
    Reply,
    anthropic_error,
    gemini_error,
    openai_chat,
    openai_error,
)


def _key(prefix: str, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    rng = random.Random(prefix + str(n))  # deterministic, and unlike any real key
    return prefix + "".join(rng.choice(alphabet) for _ in range(n))


KEYS = {
    "openai-project": _key("sk-proj-", 120, string.ascii_letters + string.digits + "_-"),
    "openai-legacy": _key("sk-", 48),
    "anthropic": _key("sk-ant-api03-", 93, string.ascii_letters + string.digits + "_-") + "AA",
    "gemini": _key("AIza", 35, string.ascii_letters + string.digits + "_-"),
    "groq": _key("gsk_", 52),
    "xai": _key("xai-", 80),
    "hex": _key("", 64, "0123456789abcdef"),
    "opaque": _key("", 40),  # a self-hosted gateway's token: no pattern knows it
}
PROTOCOLS = {"openai": "openai_compatible", "anthropic": "anthropic", "google": "google"}
MODELS = {"openai": "gpt-4o", "anthropic": "claude-sonnet-4-5", "google": "gemini-2.5-flash"}


def _echo(protocol: str, status: int, key: str) -> Reply:
    """What a provider says when it echoes the key it was sent."""
    text = f"Incorrect API key provided: {key}. You can find your API key in the console."
    if protocol == "anthropic":
        return anthropic_error(status, "authentication_error", text)
    if protocol == "google":
        return gemini_error(status, "INVALID_ARGUMENT", f"API key not valid ({key})")
    return openai_error(status, text, code="invalid_api_key")


class Leaks:
    """Everything a key could end up in, gathered and searched in one place."""

    def __init__(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        self.tmp_path = tmp_path
        self.caplog = caplog
        self.seen: list[str] = []

    def add(self, text: Any) -> None:
        self.seen.append(text if isinstance(text, str) else json.dumps(text, default=str))

    async def response(self, resp: Any) -> Any:
        self.add(await resp.text())
        self.add(dict(resp.headers))
        return resp

    async def gateway(self, h: Any, client: Any) -> dict[str, Any]:
        await h.gw.flush()
        state = await (await client.get("/v1/tasks/classify/state")).json()
        self.add(state)
        self.add(await (await client.get("/metrics")).text())
        self.add(html.render_html(report.build_report(h.gw.store, h.gw.config)))
        # The operator turns the gateway's state into Events.
        self.add(reconcile.events_for({"phase": "exploration", "lastAlarmIndex": -1}, state))
        return dict(state)

    def assert_clean(self, *keys: str) -> None:
        self.add(self.caplog.text)
        self.add([r.getMessage() for r in self.caplog.records])
        files = [p for p in self.tmp_path.rglob("*") if p.is_file()]
        assert any(p.suffix == ".db" for p in files), "the store was not searched"
        for key in keys:
            for text in self.seen:
                assert key not in text, (
                    f"key leaked: ...{text[max(0, text.find(key) - 80) :][:200]}"
                )
            for path in files:
                assert key.encode() not in path.read_bytes(), f"key leaked into {path}"


@pytest.fixture
def leaks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Leaks:
    caplog.set_level(logging.DEBUG)
    return Leaks(tmp_path, caplog)


def _remote(protocol: str, base_url: str) -> dict[str, Any]:
    return {
        "provider": PROTOCOLS[protocol],
        "model": MODELS[protocol],
        "base_url": base_url,
        "api_key_env": "SECRETS_TEST_KEY",
        "max_retries": 0,
        "timeout_s": 5,
    }


@pytest.mark.parametrize("protocol", sorted(PROTOCOLS))
@pytest.mark.parametrize("shape", sorted(KEYS))
async def test_teacher_errors_never_show_the_key(
    harness_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leaks: Leaks,
    shape: str,
    protocol: str,
) -> None:
    key = KEYS[shape]
    monkeypatch.setenv("SECRETS_TEST_KEY", key)
    async with FakeTeacherServer(protocol, answer=gw_rules.teacher_output) as fake:  # type: ignore[arg-type]
        h = await harness_factory(make_config(tmp_path, remote=_remote(protocol, fake.base_url)))
        client = await h.serve()
        statuses = (401, 403, 400, 429, 500)
        fake.script(*(_echo(protocol, status, key) for status in statuses))
        for i, _ in enumerate(statuses):
            resp = await leaks.response(
                await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
            )
            assert resp.status in (502, 503)
        fake.script(_echo(protocol, 401, key))
        chat = {
            "model": "classify",
            "messages": [{"role": "user", "content": json.dumps(gw_rules.make_input(9))}],
        }
        resp = await leaks.response(await client.post("/v1/chat/completions", json=chat))
        assert resp.status == 502
        # The key did reach the provider, and the provider did echo it back.
        assert len(fake.received) == len(statuses) + 1
        assert key in json.dumps(fake.received[0].headers) + json.dumps(fake.received[0].query)
        await leaks.gateway(h, client)
    leaks.assert_clean(key)


def _phase_2(tmp_path: Path, cfg: Any, rule: str = "first_word") -> None:
    """v1 already promoted, so requests are compared (and judged / embedded)."""
    path = gw_fakes.write_adapter(tmp_path / "models" / "classify" / "v1", rule)
    with open_store(cfg.store.url) as store:
        gw_fakes.promote_v1(store, path)


@pytest.mark.parametrize("shape", sorted(KEYS))
async def test_judge_errors_never_show_the_key(
    harness_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leaks: Leaks,
    shape: str,
) -> None:
    key = KEYS[shape]
    monkeypatch.setenv("SECRETS_JUDGE_KEY", key)
    async with FakeTeacherServer("openai") as judge:
        cfg = make_config(
            tmp_path,
            task={
                "evaluator": "llm_judge",
                "evaluator_options": {
                    "judges": [
                        {
                            "provider": "openai_compatible",
                            "model": "gpt-4o",
                            "base_url": judge.base_url,
                            "api_key_env": "SECRETS_JUDGE_KEY",
                            "max_retries": 0,
                        }
                    ]
                },
            },
        )
        _phase_2(tmp_path, cfg)
        h = await harness_factory(cfg)
        client = await h.serve()
        judge.script(*(_echo("openai", s, key) for s in (401, 500, 400)))
        for i in range(3):
            resp = await leaks.response(
                await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
            )
            assert resp.status == 200  # a judge failure never fails the caller
        assert len(judge.received) >= 1, "nothing was judged: the test would prove nothing"
        await leaks.gateway(h, client)
    assert "evaluator failed" in leaks.caplog.text  # the failure was logged, scrubbed
    leaks.assert_clean(key)


@pytest.mark.parametrize("shape", sorted(KEYS))
async def test_embedding_errors_never_show_the_key(
    harness_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    leaks: Leaks,
    shape: str,
) -> None:
    key = KEYS[shape]
    monkeypatch.setenv("SECRETS_TEST_KEY", key)
    async with FakeTeacherServer("openai") as fake:
        cfg = make_config(
            tmp_path,
            remote=_remote("openai", fake.base_url)
            | {"price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            task={
                "evaluator": "semantic_similarity",
                "evaluator_options": {"embedding": "teacher"},
            },
        )
        _phase_2(tmp_path, cfg, "last_word")  # answers that differ must be compared
        h = await harness_factory(cfg)
        client = await h.serve()
        inp = gw_rules.make_input(1)
        # Prose (four words or more) is compared by embedding; a one-word label is not.
        prose = {"label": "the customer was charged twice for one order"}
        answer = openai_chat(json.dumps(prose), model="teacher")
        fake.script(Reply(body=answer), _echo("openai", 401, key), _echo("openai", 500, key))
        resp = await leaks.response(await client.post("/v1/tasks/classify", json={"input": inp}))
        assert resp.status == 200
        assert any(r.path.endswith("/embeddings") for r in fake.received), "nothing embedded"
        await leaks.gateway(h, client)
    leaks.assert_clean(key)


@pytest.mark.parametrize("shape", sorted(KEYS))
async def test_trainer_errors_never_show_the_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path, shape: str
) -> None:
    key = KEYS[shape]
    monkeypatch.setenv("SECRETS_FT_KEY", key)
    sent: list[str] = []

    async def provider(request: web.Request) -> web.Response:
        """OpenAI's files API refusing the key it was sent, and echoing it."""
        await request.read()
        sent.append(request.headers["authorization"].removeprefix("Bearer "))
        message = {"error": {"message": f"Incorrect API key provided: {sent[-1]}."}}
        return web.json_response(message, status=401)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", provider)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    tuner = openai_ft.OpenAIFineTuner(
        base_url=f"http://127.0.0.1:{server.port}/v1", api_key_env="SECRETS_FT_KEY"
    )
    data = TrainingDataset.from_conversations(
        [[{"role": "user", "content": "{}"}, {"role": "assistant", "content": "{}"}]]
    )
    try:
        with pytest.raises(TrainingFailed) as info:
            await asyncio.to_thread(
                tuner.train,
                data,
                base_model="gpt-4o-mini",
                hyper=TrainingConfig(),
                out_dir=tmp_path,
            )
    finally:
        await server.close()
    assert sent == [key]  # the key was sent, and echoed back
    text = f"{info.value!s} {info.value!r} {caplog.text}"
    assert "file upload failed (401)" in text
    assert key not in text
    for content in await asyncio.to_thread(_file_contents, tmp_path):
        assert key.encode() not in content


def _file_contents(directory: Path) -> list[bytes]:
    """Every file under ``directory``, read (on a thread: the test's loop serves meanwhile)."""
    return [path.read_bytes() for path in directory.rglob("*") if path.is_file()]
