"""The student registry: one factory per backend, and no fall-through for a missing one."""

from __future__ import annotations

import pytest

from apprentice import config, students
from apprentice.students import llama_cpp, ollama, vllm


def test_every_backend_has_a_factory() -> None:
    assert set(students.REGISTRY) == set(config.StudentBackend)


def test_each_http_factory_builds_its_backend() -> None:
    """(The openai and transformers factories are proven by their own test files.)"""
    url = "http://127.0.0.1:9/v1"
    built = {
        backend: students.build_student(config.LocalConfig(backend=backend, base_url=url))
        for backend in (
            config.StudentBackend.vllm,
            config.StudentBackend.llama_cpp,
            config.StudentBackend.ollama,
        )
    }
    assert isinstance(built[config.StudentBackend.vllm], vllm.VLLMStudent)
    assert isinstance(built[config.StudentBackend.llama_cpp], llama_cpp.LlamaCppStudent)
    assert isinstance(built[config.StudentBackend.ollama], ollama.OllamaStudent)


def test_a_backend_without_a_factory_is_an_error_naming_it_and_the_known_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(students.REGISTRY, config.StudentBackend.vllm)
    with pytest.raises(ValueError) as info:
        students.build_student(config.LocalConfig(backend="vllm", base_url="http://x/v1"))
    message = str(info.value)
    assert "unknown student backend 'vllm'" in message
    assert "known: ollama, llama_cpp, transformers, openai" in message
