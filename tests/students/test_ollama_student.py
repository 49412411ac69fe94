"""The Ollama student against a loopback Ollama that follows (and refuses like) the real API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from student_servers import serve

from apprentice import config, prompts
from apprentice.students import build_student, ollama
from apprentice.students.base import (
    NoStudent,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from fakes.lora import write_peft_adapter
from fakes.ollama import OllamaModel, OllamaServer

TASK = config.TaskConfig.model_validate(
    {
        "name": "classify_ticket",
        "input_schema": {"text": "str"},
        "output_schema": {"category": "str", "priority": "int", "confidence": "float"},
        "evaluator": "structured_match",
        "match_fields": ["category", "priority"],
    }
)
INPUT = {"text": "I was charged twice"}


def local(url: str, **extra: object) -> config.LocalConfig:
    return config.LocalConfig.model_validate(
        {"backend": "ollama", "base_url": url, "base_model": "llama3.1:8b", **extra}
    )


def student(url: str, **extra: object) -> ollama.OllamaStudent:
    built = build_student(local(url, **extra), task="classify_ticket")
    assert isinstance(built, ollama.OllamaStudent)
    return built


async def test_promotion_uploads_blobs_creates_from_base_and_health_checks(
    tmp_path: Path,
) -> None:
    fake = OllamaServer()
    adapter = write_peft_adapter(tmp_path / "v1")
    async with serve(fake.app()) as url:
        s = student(url)
        with pytest.raises(NoStudent):
            await s.generate(TASK, INPUT)
        await s.load_version(VersionRef("v1", str(adapter)))
        weights = (adapter / "adapter_model.safetensors").read_bytes()
        digest = "sha256:" + hashlib.sha256(weights).hexdigest()
        assert ("HEAD", f"/api/blobs/{digest}") in [(m, p) for m, p, _ in fake.requests]
        assert fake.blobs[digest] == weights
        create = fake.bodies("/api/create")[0]
        assert create["model"] == "apprentice-classify_ticket:v1"
        assert create["from"] == "llama3.1:8b" and create["stream"] is False
        assert set(create["adapters"]) == {"adapter_model.safetensors", "adapter_config.json"}
        # health check before the switch: the new model loads
        assert fake.bodies("/api/chat")[0] == {
            "model": "apprentice-classify_ticket:v1",
            "messages": [],
            "stream": False,
        }
        answer = await s.generate(TASK, INPUT)
        assert answer.output == {"category": "billing", "confidence": 0.9, "priority": 2}
        assert answer.version == "v1" and answer.cost == 0.0
        chat = fake.bodies("/api/chat")[-1]
        assert chat["model"] == "apprentice-classify_ticket:v1"
        assert chat["format"] == TASK.output_schema
        assert chat["messages"] == prompts.build_messages(TASK, INPUT)
        health = await s.health()
        assert health.ready and "apprentice-classify_ticket:v1" in health.detail
        await s.aclose()

        # A second instance (validation) finds the model and uploads nothing again.
        again = student(url)
        posts = len(fake.paths("POST"))
        await again.load_version(VersionRef("v1", str(adapter)))
        assert len(fake.bodies("/api/create")) == 1
        assert len(fake.paths("POST")) == posts + 1  # only the load check
        await again.aclose()


async def test_old_models_are_deleted_after_the_rollback_window(tmp_path: Path) -> None:
    fake = OllamaServer()
    async with serve(fake.app()) as url:
        s = student(url, keep_versions=1)
        for n in (1, 2, 3):
            path = write_peft_adapter(tmp_path / f"v{n}", seed=n)
            await s.load_version(VersionRef(f"v{n}", str(path)))
        assert fake.bodies("/api/delete") == [{"model": "apprentice-classify_ticket:v1"}]
        assert fake.has("apprentice-classify_ticket:v2") and fake.has("llama3.1:8b")
        # Rolling back past the window recreates the model from the adapter on disk.
        await s.load_version(VersionRef("v1", str(tmp_path / "v1")))
        assert s.active_version() == "v1" and fake.has("apprentice-classify_ticket:v1")
        assert fake.bodies("/api/create")[-1]["model"] == "apprentice-classify_ticket:v1"
        # A rejected candidate is deleted, not just unloaded.
        await s.unload_version("v3")
        assert not fake.has("apprentice-classify_ticket:v3")
        await s.aclose()


async def test_a_model_deleted_behind_our_back_is_recreated(tmp_path: Path) -> None:
    fake = OllamaServer()
    async with serve(fake.app()) as url:
        s = student(url)
        await s.load_version(VersionRef("v1", str(write_peft_adapter(tmp_path / "v1"))))
        del fake.models["apprentice-classify_ticket:v1"]  # `ollama rm`
        assert not (await s.health()).ready
        answer = await s.generate(TASK, INPUT)
        assert answer.ok and fake.has("apprentice-classify_ticket:v1")
        await s.aclose()


async def test_gguf_adapter_goes_as_its_one_file(tmp_path: Path) -> None:
    fake = OllamaServer()
    path = tmp_path / "v1"
    path.mkdir()
    (path / "adapter.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 64)
    async with serve(fake.app()) as url:
        s = student(url)
        await s.load_version(VersionRef("v1", str(path)))
        assert list(fake.bodies("/api/create")[0]["adapters"]) == ["adapter.gguf"]
        (path / "other.gguf").write_bytes(b"GGUF")
        with pytest.raises(VersionLoadError, match="one adapter file"):
            await s.load_version(VersionRef("v2", str(path)))
        await s.aclose()


# --- failure modes: each names the backend and the fix -------------------------------------


async def test_server_down_names_ollama_and_how_to_start_it(tmp_path: Path) -> None:
    async with serve(OllamaServer().app()) as url:
        pass  # gone: the port refuses connections
    s = student(url, timeout_s=2)
    health = await s.health()
    assert not health.ready and "ollama serve" in health.detail
    with pytest.raises(StudentUnavailable, match=r"ollama .* unreachable.*ollama serve"):
        await s.load_version(VersionRef("v1", str(write_peft_adapter(tmp_path / "v1"))))
    await s.aclose()


async def test_missing_base_model_says_pull_it(tmp_path: Path) -> None:
    fake = OllamaServer(models={"mistral:latest": OllamaModel("llama")})
    async with serve(fake.app()) as url:
        s = student(url)
        with pytest.raises(VersionLoadError, match=r"ollama pull llama3\.1:8b"):
            await s.load_version(VersionRef("v1", str(write_peft_adapter(tmp_path / "v1"))))
        assert fake.bodies("/api/create") == [] and s.active_version() is None
        await s.aclose()


async def test_adapter_refused_for_an_unsupported_architecture(tmp_path: Path) -> None:
    fake = OllamaServer(models={"my-qwen:latest": OllamaModel("qwen2")})
    async with serve(fake.app()) as url:
        s = student(url, serve_base="my-qwen", train_base="Qwen/Qwen2.5-7B-Instruct")
        with pytest.raises(
            VersionLoadError, match=r"unsupported architecture.*local\.backend: vllm"
        ):
            await s.load_version(VersionRef("v1", str(write_peft_adapter(tmp_path / "v1"))))
        assert s.active_version() is None
        await s.aclose()


async def test_a_model_that_cannot_load_never_goes_live(tmp_path: Path) -> None:
    fake = OllamaServer(unloadable={"apprentice-classify_ticket:v2"})
    async with serve(fake.app()) as url:
        s = student(url)
        await s.load_version(VersionRef("v1", str(write_peft_adapter(tmp_path / "v1"))))
        with pytest.raises(VersionLoadError, match=r"cannot load it.*may not match llama3\.1:8b"):
            await s.load_version(VersionRef("v2", str(write_peft_adapter(tmp_path / "v2"))))
        assert s.active_version() == "v1"  # the old version keeps serving
        assert (await s.generate(TASK, INPUT)).ok
        await s.aclose()


async def test_unreadable_adapters_are_explained(tmp_path: Path) -> None:
    fake = OllamaServer()
    pickled = tmp_path / "v1"
    pickled.mkdir()
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    async with serve(fake.app()) as url:
        s = student(url)
        with pytest.raises(VersionLoadError, match="safe_serialization=True"):
            await s.load_version(VersionRef("v1", str(pickled)))
        with pytest.raises(VersionLoadError, match="mount the model volume"):
            await s.load_version(VersionRef("v2", str(tmp_path / "absent")))
        empty = tmp_path / "v3"
        empty.mkdir()
        with pytest.raises(VersionLoadError, match="was the version trained"):
            await s.load_version(VersionRef("v3", str(empty)))
        await s.aclose()


# --- the loopback server refuses what real Ollama refuses ----------------------------------


async def test_fake_ollama_refuses_like_real_ollama(tmp_path: Path) -> None:
    fake = OllamaServer()
    adapter = write_peft_adapter(tmp_path / "v1")
    weights = (adapter / "adapter_model.safetensors").read_bytes()
    good = "sha256:" + hashlib.sha256(weights).hexdigest()
    async with serve(fake.app()) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.head(f"/api/blobs/{good}")).status_code == 404
        bad = await http.post(f"/api/blobs/sha256:{'0' * 64}", content=weights)
        assert bad.status_code == 400 and "digest mismatch" in bad.json()["error"]
        assert (await http.post("/api/blobs/md5:abc", content=weights)).status_code == 400
        # as real Ollama does, the mismatched bytes were kept under their true digest
        assert (await http.head(f"/api/blobs/{good}")).status_code == 200
        assert (await http.post(f"/api/blobs/{good}", content=weights)).status_code == 200
        config_bytes = (adapter / "adapter_config.json").read_bytes()
        config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        created = await http.post(f"/api/blobs/{config_digest}", content=config_bytes)
        assert created.status_code == 201

        async def create(body: object) -> httpx.Response:
            return await http.post("/api/create", content=json.dumps(body))

        r = await create({"model": "x", "adapters": {"adapter_model.safetensors": good}})
        assert r.status_code == 400 and "neither 'from' or 'files'" in r.json()["error"]
        r = await create(
            {
                "model": "x",
                "from": "llama3.1:8b",
                "stream": False,
                "adapters": {"adapter_model.safetensors": good},
            }
        )
        assert r.status_code == 400
        assert r.json()["error"] == "open adapter_config.json: no such file or directory"
        unknown = "sha256:" + "a" * 64
        r = await create(
            {
                "model": "x",
                "from": "llama3.1:8b",
                "stream": False,
                "adapters": {"adapter_model.safetensors": good, "adapter_config.json": unknown},
            }
        )
        assert r.status_code == 400 and "no such file" in r.json()["error"]
        r = await create({"model": "x", "from": "gemma9:1b", "stream": False})
        assert r.status_code == 500 and "pull model manifest" in r.json()["error"]
        r = await create({"model": "x", "from": "llama3.1:8b", "adapters": {"a.gguf": ""}})
        assert r.status_code == 400 and "invalid digest" in r.json()["error"]
        r = await http.request("DELETE", "/api/delete", content=json.dumps({"model": "nope"}))
        assert r.status_code == 404
        r = await http.post("/api/chat", json={"model": "nope", "messages": []})
        assert r.status_code == 404
    assert fake.bodies("/api/create")  # every refusal above went through the handler


def test_default_address_follows_ollama_host() -> None:
    assert ollama.default_base_url({}) == "http://localhost:11434"
    assert ollama.default_base_url({"OLLAMA_HOST": "0.0.0.0"}) == "http://127.0.0.1:11434"
    assert ollama.default_base_url({"OLLAMA_HOST": "10.0.0.5:9999"}) == "http://10.0.0.5:9999"
    assert ollama.default_base_url({"OLLAMA_HOST": "https://ollama.internal"}) == (
        "https://ollama.internal:11434"
    )


def test_ollama_needs_no_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    built = build_student(config.LocalConfig(backend=config.StudentBackend.ollama))
    assert isinstance(built, ollama.OllamaStudent)
    assert built.base_url == "http://localhost:11434"


async def test_health_is_not_ready_when_the_model_list_fails(tmp_path: Path) -> None:
    fake = OllamaServer()
    app = fake.app()
    async with serve(app) as url:
        s = student(url)
        await s.load_version(VersionRef("v1", str(write_peft_adapter(tmp_path / "v1"))))
    broken = web.Application()
    broken.router.add_get("/api/version", fake.get_version)
    broken.router.add_get("/api/tags", _internal_error)
    async with serve(broken) as url:
        s.base_url = url  # the same student, its server now failing
        health = await s.health()
        assert not health.ready and "500" in health.detail
    await s.aclose()


async def _internal_error(_request: web.Request) -> web.Response:
    return web.json_response({"error": "boom"}, status=500)
