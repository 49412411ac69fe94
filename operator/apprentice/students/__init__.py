"""Students: the local model behind one protocol, whichever backend serves it.

:data:`REGISTRY` maps each :class:`~apprentice.config.StudentBackend` to the
factory that builds its client; :func:`build_student` is the only way in. The
registry lives here, above every backend module, so no module of this package
imports it back (``base`` holds the protocol, the answer and the error tree).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx

from apprentice.config import LocalConfig, StudentBackend
from apprentice.students import llama_cpp, llama_cpp_managed, ollama, openai_ft, vllm
from apprentice.students.base import Student

__all__ = ["REGISTRY", "StudentDeps", "StudentFactory", "build_student"]


@dataclass(frozen=True)
class StudentDeps:
    """What a factory gets besides ``local``.

    ``task`` names the per-task models a shared server holds (Ollama);
    ``transport`` replaces the network for HTTP backends (tests).
    """

    task: str | None
    transport: httpx.AsyncBaseTransport | None


StudentFactory = Callable[[LocalConfig, StudentDeps], Student]
"""Builds one student client; raises ``ValueError`` for a ``local`` block it cannot use."""


def _transformers(local: LocalConfig, wiring: StudentDeps) -> Student:
    # Imported when chosen: the in-process backend imports torch (the `train`
    # extra), which is heavy and absent from the gateway-only and operator images.
    from apprentice.students import transformers_backend

    return transformers_backend.TransformersStudent(local)


def _ollama(local: LocalConfig, wiring: StudentDeps) -> Student:
    # Ollama has a well-known default address: base_url may be left out.
    return ollama.OllamaStudent(local, task=wiring.task, transport=wiring.transport)


def _openai(local: LocalConfig, wiring: StudentDeps) -> Student:
    return openai_ft.OpenAIStudent(local, transport=wiring.transport)


def _require_base_url(local: LocalConfig) -> None:
    if not local.base_url:
        raise ValueError(
            f"local.backend {local.backend.value} needs local.base_url, "
            "e.g. http://localhost:8000/v1 (vllm), http://localhost:8080 (llama_cpp)"
        )


def _vllm(local: LocalConfig, wiring: StudentDeps) -> Student:
    _require_base_url(local)
    return vllm.VLLMStudent(local, transport=wiring.transport)


def _llama_cpp(local: LocalConfig, wiring: StudentDeps) -> Student:
    # No base_url: the student runs llama-cpp-python's server itself, one per version.
    if not local.base_url:
        return llama_cpp_managed.ManagedLlamaCppStudent(local)
    return llama_cpp.LlamaCppStudent(local, transport=wiring.transport)


REGISTRY: dict[StudentBackend, StudentFactory] = {
    StudentBackend.vllm: _vllm,
    StudentBackend.ollama: _ollama,
    StudentBackend.llama_cpp: _llama_cpp,
    StudentBackend.transformers: _transformers,
    StudentBackend.openai: _openai,
}


def build_student(
    local: LocalConfig,
    *,
    task: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Student:
    """The configured backend for ``task``; an unknown backend is an error naming the known ones."""
    factory = REGISTRY.get(local.backend)
    if factory is None:
        known = ", ".join(kind.value for kind in REGISTRY)
        raise ValueError(f"unknown student backend {local.backend.value!r}; known: {known}")
    return factory(local, StudentDeps(task, transport))
