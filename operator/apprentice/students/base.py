"""The student interface: one protocol in front of every local serving backend.

The gateway talks to a :class:`Student` only. Backends (``vllm``, ``ollama``,
``llama_cpp``, in-process ``transformers``) translate it to their wire protocol.

Error tree (everything a backend raises is translated into it)::

    StudentError
    ├── NoStudent            no model version loaded yet: the gateway routes to the teacher
    ├── StudentUnavailable   the backend is down, loading, timing out or answered 5xx
    └── VersionLoadError     an adapter could not be loaded or unloaded

An answer that is not valid JSON, or not valid against the task's output
schema, is *not* an error: it is a :class:`StudentAnswer` with ``output=None``
and ``error`` set, which the gateway scores 0 (a disagreement), never a crash.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol, runtime_checkable

from apprentice import prompts, schema_checks
from apprentice.config import TaskConfig
from apprentice.teachers.base import TextSink, Usage

__all__ = [
    "Health",
    "NoStudent",
    "StreamingStudent",
    "Student",
    "StudentAnswer",
    "StudentError",
    "StudentUnavailable",
    "VersionLoadError",
    "VersionRef",
    "answer_from_text",
]


class StudentError(Exception):
    """Base of every error a student backend raises."""


class NoStudent(StudentError):
    """No model version is loaded yet; route the request to the teacher."""

    def __init__(self, message: str = "no student model version is loaded yet") -> None:
        super().__init__(message)


class StudentUnavailable(StudentError):
    """The backend cannot answer now (down, loading, timeout, 5xx)."""


class VersionLoadError(StudentError):
    """An adapter could not be loaded into (or removed from) the backend."""


@dataclasses.dataclass(frozen=True, slots=True)
class StudentAnswer:
    """One student answer. ``output`` is None when the text was not a schema-valid object."""

    output: dict[str, Any] | None
    raw_text: str
    version: str | None
    latency_s: float
    error: str | None = None
    cost: float = 0.0  # USD billed for the answer (a remote ``openai`` student); local: 0
    usage: Usage | None = None  # prompt and answer tokens, as the student's tokenizer counts

    @property
    def ok(self) -> bool:
        return self.output is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Health:
    """Whether the backend can answer now, and why not."""

    ready: bool
    detail: str


@dataclasses.dataclass(frozen=True, slots=True)
class VersionRef:
    """A model version to serve: its name (``v3``) and adapter directory."""

    name: str
    path: str


@runtime_checkable
class Student(Protocol):
    """What the gateway needs from a local model, whatever serves it."""

    async def generate(self, task: TaskConfig, task_input: dict[str, Any]) -> StudentAnswer:
        """Answer one request; raises NoStudent / StudentUnavailable, never for bad JSON."""
        ...

    async def health(self) -> Health: ...

    async def load_version(self, version: VersionRef) -> None:
        """Load an adapter and make it the active version (atomically)."""
        ...

    async def unload_version(self, name: str) -> None: ...

    def active_version(self) -> str | None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class StreamingStudent(Protocol):
    """A student that can pass its answer's text to a sink as its server generates it
    (vLLM, llama.cpp, Ollama); the answer is validated once it is whole."""

    async def generate_stream(
        self, task: TaskConfig, task_input: dict[str, Any], *, sink: TextSink
    ) -> StudentAnswer: ...


def answer_from_text(
    task: TaskConfig, text: str, *, version: str | None, started: float, usage: Usage | None = None
) -> StudentAnswer:
    """Parse and validate model text into a :class:`StudentAnswer` (never raises).

    ``started`` is a ``time.perf_counter()`` reading taken before the call.
    """
    latency = time.perf_counter() - started
    try:
        output = prompts.parse_output(text)
    except prompts.OutputParseError as exc:
        return StudentAnswer(None, text, version, latency, f"invalid JSON: {exc}", usage=usage)
    check = schema_checks.for_task(task).output  # compiled once per task: the only check
    if not check.is_valid(output):
        detail = "; ".join(check.problems(output)[:3])
        problem = f"schema-invalid output: {detail}"
        return StudentAnswer(None, text, version, latency, problem, usage=usage)
    return StudentAnswer(output, text, version, latency, None, usage=usage)
