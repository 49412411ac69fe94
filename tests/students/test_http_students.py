"""vLLM, Ollama and llama.cpp students against loopback servers that speak each protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from student_servers import LlamaCppFake, VLLMFake, serve

from apprentice import config, prompts
from apprentice.students import base, build_student, llama_cpp_managed, vllm
from apprentice.students.base import (
    NoStudent,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from apprentice.teachers.base import Usage

TASK = config.TaskConfig.model_validate(
    {
        "name": "classify_ticket",
        "description": "Classify support tickets by category and priority",
        "input_schema": {"text": "str", "metadata": "dict"},
        "output_schema": {"category": "str", "priority": "int", "confidence": "float"},
        "evaluator": "structured_match",
        "match_fields": ["category", "priority"],
    }
)
INPUT = {"text": "I was charged twice", "metadata": {"tier": "pro"}}


def local(backend: str, url: str, **extra: object) -> config.LocalConfig:
    return config.LocalConfig.model_validate(
        {"backend": backend, "base_url": url, "base_model": "llama3.1:8b", **extra}
    )


def adapter_dir(tmp_path: Path, name: str, rank: int = 16) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "adapter_config.json").write_text(json.dumps({"r": rank, "lora_alpha": 32}))
    (path / "adapter_model.safetensors").write_bytes(b"weights-" + name.encode())
    return path


# --- vLLM ---------------------------------------------------------------------------------


async def test_vllm_loads_adapter_at_runtime_and_answers_with_it(tmp_path: Path) -> None:
    fake = VLLMFake()
    async with serve(fake.app()) as url:
        student = build_student(local("vllm", f"{url}/v1"))
        assert isinstance(student, vllm.VLLMStudent)
        with pytest.raises(NoStudent):
            await student.generate(TASK, INPUT)
        path = adapter_dir(tmp_path, "v1")
        await student.load_version(VersionRef("v1", str(path)))
        assert fake.bodies("/v1/load_lora_adapter") == [{"lora_name": "v1", "lora_path": str(path)}]
        answer = await student.generate(TASK, INPUT)
        assert answer.output == {"category": "billing", "confidence": 0.9, "priority": 2}
        assert answer.version == "v1" and answer.error is None and answer.latency_s >= 0
        assert answer.usage == Usage(50, 20)  # the server's own counts, as its usage says
        sent = fake.bodies("/v1/chat/completions")[0]
        assert sent["model"] == "v1"
        assert sent["messages"] == prompts.build_messages(TASK, INPUT)
        assert sent["temperature"] == 0
        assert sent["response_format"]["json_schema"]["schema"] == TASK.output_schema
        assert (await student.health()).ready
        await student.aclose()


async def test_vllm_switches_versions_and_unloads(tmp_path: Path) -> None:
    fake = VLLMFake()
    async with serve(fake.app()) as url:
        student = build_student(local("vllm", url))
        await student.load_version(VersionRef("v1", str(adapter_dir(tmp_path, "v1"))))
        await student.load_version(VersionRef("v2", str(adapter_dir(tmp_path, "v2"))))
        assert student.active_version() == "v2" and set(fake.adapters) == {"v1", "v2"}
        await student.generate(TASK, INPUT)
        assert fake.bodies("/v1/chat/completions")[-1]["model"] == "v2"
        # rollback: v1 is still loaded on the server, so no second load call
        await student.load_version(VersionRef("v1", fake.adapters["v1"]))
        assert student.active_version() == "v1"
        assert len(fake.bodies("/v1/load_lora_adapter")) == 2
        await student.unload_version("v2")
        assert fake.bodies("/v1/unload_lora_adapter") == [{"lora_name": "v2"}]
        assert set(fake.adapters) == {"v1"} and student.active_version() == "v1"
        await student.unload_version("v1")
        assert student.active_version() is None
        await student.aclose()


async def test_vllm_adapter_already_on_server_is_accepted(tmp_path: Path) -> None:
    fake = VLLMFake(adapters={"v1": "/models/v1"})
    async with serve(fake.app()) as url:
        student = build_student(local("vllm", url))
        await student.load_version(VersionRef("v1", "/models/v1"))
        assert student.active_version() == "v1"
        await student.aclose()


async def test_vllm_without_runtime_lora_says_how_to_enable_it(tmp_path: Path) -> None:
    fake = VLLMFake(runtime_lora=False)
    async with serve(fake.app()) as url:
        student = build_student(local("vllm", url))
        with pytest.raises(VersionLoadError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
            await student.load_version(VersionRef("v1", str(adapter_dir(tmp_path, "v1"))))
        assert student.active_version() is None
        await student.aclose()


async def test_vllm_rejects_unsupported_lora_ranks(tmp_path: Path) -> None:
    # In config: a config error naming the key and the ranks vLLM accepts.
    with pytest.raises(ValidationError, match="8/16/32/64/128/256/320/512"):
        local("vllm", "http://127.0.0.1:9", training={"lora_rank": 12})
    # On the wire: an adapter of another rank is refused before vLLM is asked.
    fake = VLLMFake()
    async with serve(fake.app()) as url:
        student = build_student(local("vllm", url))
        with pytest.raises(vllm.LoRARankError, match="rank 24"):
            await student.load_version(VersionRef("v9", str(adapter_dir(tmp_path, "v9", 24))))
        assert fake.bodies("/v1/load_lora_adapter") == []
        await student.aclose()


async def test_invalid_student_json_is_an_answer_not_a_crash(tmp_path: Path) -> None:
    fake = VLLMFake(answer="category: billing")
    async with serve(fake.app()) as url:
        student = build_student(local("vllm", url))
        await student.load_version(VersionRef("v1", str(adapter_dir(tmp_path, "v1"))))
        answer = await student.generate(TASK, INPUT)
        assert answer.output is None and answer.error and "invalid JSON" in answer.error
        assert answer.raw_text == "category: billing"
        fake.answer = '{"category": "billing", "priority": "high", "confidence": 0.5}'
        answer = await student.generate(TASK, INPUT)
        assert answer.output is None and answer.error and "schema-invalid" in answer.error
        await student.aclose()


async def test_student_down_is_unavailable_and_not_ready() -> None:
    fake = VLLMFake()
    async with serve(fake.app()) as url:
        pass  # the server is gone now: the port refuses connections
    student = build_student(local("vllm", url, timeout_s=2))
    health = await student.health()
    assert not health.ready and "unreachable" in health.detail
    assert isinstance(student, vllm.VLLMStudent)
    student._active = "v1"  # as if loaded before the server died
    with pytest.raises(StudentUnavailable, match="unreachable"):
        await student.generate(TASK, INPUT)
    await student.aclose()


# --- llama.cpp ----------------------------------------------------------------------------


async def test_llama_cpp_loading_then_ready_and_adapter_scales(tmp_path: Path) -> None:
    fake = LlamaCppFake(
        adapters=[
            {"id": 0, "path": "/models/classify/v1/adapter.gguf", "scale": 0.0},
            {"id": 1, "path": "/models/classify/v2/adapter.gguf", "scale": 0.0},
        ]
    )
    async with serve(fake.app()) as url:
        student = build_student(local("llama_cpp", url))
        health = await student.health()
        assert not health.ready and "Loading model" in health.detail
        await student.load_version(VersionRef("v2", "/models/classify/v2"))
        with pytest.raises(StudentUnavailable, match="Loading model"):
            await student.generate(TASK, INPUT)
        fake.loading = False
        assert (await student.health()).ready
        assert [a["scale"] for a in fake.adapters] == [0.0, 1.0]
        answer = await student.generate(TASK, INPUT)
        assert answer.output is not None and answer.version == "v2"
        sent = fake.bodies("/v1/chat/completions")[-1]
        assert sent["response_format"]["json_schema"]["schema"] == TASK.output_schema
        await student.load_version(VersionRef("v1", "/models/classify/v1"))
        assert [a["scale"] for a in fake.adapters] == [1.0, 0.0]
        await student.unload_version("v1")
        assert [a["scale"] for a in fake.adapters] == [0.0, 0.0]
        assert student.active_version() is None
        with pytest.raises(VersionLoadError, match="--lora"):
            await student.load_version(VersionRef("v3", "/models/classify/v3"))
        await student.aclose()


async def test_http_backends_need_a_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        build_student(config.LocalConfig(backend=config.StudentBackend.vllm))
    # Since 381f7f9, llama_cpp without a base_url runs its own server (test_llama_cpp_real).
    managed = build_student(config.LocalConfig(backend=config.StudentBackend.llama_cpp))
    assert isinstance(managed, llama_cpp_managed.ManagedLlamaCppStudent)
    await managed.aclose()
    assert base.Student  # the protocol is importable for type checks


async def test_vllm_reloads_its_adapter_after_a_server_restart(tmp_path: Path) -> None:
    fake = VLLMFake()
    async with serve(fake.app()) as url:
        student = build_student(local("vllm", url))
        path = adapter_dir(tmp_path, "v1")
        await student.load_version(VersionRef("v1", str(path)))
        fake.adapters.clear()  # vLLM restarted: runtime adapters are gone
        answer = await student.generate(TASK, INPUT)
        assert answer.ok and answer.version == "v1"
        assert len(fake.bodies("/v1/load_lora_adapter")) == 2 and fake.adapters == {"v1": str(path)}
        await student.aclose()


async def test_down_servers_name_the_backend_and_how_to_start_it() -> None:
    async with serve(VLLMFake().app()) as url:
        pass  # gone: the port refuses connections
    for backend, hint in (("vllm", "vllm serve"), ("llama_cpp", "llama-server")):
        student = build_student(local(backend, url, timeout_s=2))
        health = await student.health()
        assert not health.ready and backend in health.detail and hint in health.detail
        await student.aclose()
