"""The teacher interface every provider implements, and the pool that spreads calls.

A *teacher* answers a task input with structured output validated against the
task's output schema (one repair request, then :class:`~.errors.InvalidOutput`).
Every answer carries its usage, its cost from the price table, and which
provider/model produced it, so each stored example records its provenance.

Clock and sleep are injected (keyword-only) so tests never wait real seconds.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from apprentice.config import TaskConfig
from apprentice.prompts import ChatMessage

__all__ = [
    "Clock",
    "Completion",
    "Sleep",
    "StreamingTeacher",
    "Teacher",
    "TeacherAnswer",
    "TeacherPool",
    "TextSink",
    "Usage",
]

Clock = Callable[[], float]
"""Monotonic seconds (``time.monotonic``)."""

Sleep = Callable[[float], Awaitable[None]]
"""Waits the given seconds (``asyncio.sleep``); tests pass one that records the delays."""

TextSink = Callable[[str], None]
"""Takes an answer's text as it streams in, piece by piece; must not block."""


@dataclass(frozen=True)
class Usage:
    """Tokens billed for one call (all attempts that the provider billed)."""

    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )


@dataclass(frozen=True)
class TeacherAnswer:
    """A validated structured answer with its cost (USD) and provenance."""

    output: dict[str, Any]
    usage: Usage
    cost: float
    provider: str
    model: str
    latency_s: float
    attempts: int


@dataclass(frozen=True)
class Completion:
    """A free-form answer (``complete``): the judge's grading text, say."""

    text: str
    usage: Usage
    cost: float
    provider: str
    model: str


@runtime_checkable
class Teacher(Protocol):
    """One configured teacher endpoint.

    ``name`` is a stable label for logs and metrics ("anthropic:claude-sonnet-4-6"),
    ``provider`` the :class:`~apprentice.config.ProviderKind` value, ``model`` the
    model name sent on the wire (recorded with every example).
    """

    name: str
    provider: str
    model: str

    async def generate(
        self, task: TaskConfig, task_input: dict[str, Any], *, request_id: str | None = None
    ) -> TeacherAnswer:
        """Structured answer to ``task_input`` validated against ``task.output_schema``."""
        ...

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Free-form (or JSON-constrained when ``json_schema`` is given) chat completion."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings, or :class:`~.errors.EmbeddingsUnsupported`."""
        ...

    def estimate_cost(self, task: TaskConfig, task_input: dict[str, Any]) -> float:
        """Worst-case USD cost of ``generate`` (for budget reservation), never below actual."""
        ...

    async def aclose(self) -> None:
        """Release HTTP connections."""
        ...


@runtime_checkable
class StreamingTeacher(Protocol):
    """A teacher that can pass its answer's text to a sink as the provider streams it
    (:mod:`apprentice.teachers.streamed`); the answer is validated once it is whole."""

    async def generate_stream(
        self,
        task: TaskConfig,
        task_input: dict[str, Any],
        *,
        sink: TextSink,
        request_id: str | None = None,
    ) -> TeacherAnswer: ...


def _unit_interval(request_id: str) -> float:
    """A stable number in [0, 1) from a request id (same id, same teacher, every process)."""
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class TeacherPool:
    """Teachers sharing the calls by weight; ``pick`` is stable per request id.

    Stability matters: a retried request (same id) goes to the same teacher, so
    its cost and its example's provenance do not depend on luck.
    """

    members: Sequence[tuple[Teacher, float]]
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a TeacherPool needs at least one teacher")
        if any(weight <= 0 for _, weight in self.members):
            raise ValueError("teacher weights must be positive")

    @property
    def teachers(self) -> list[Teacher]:
        return [teacher for teacher, _ in self.members]

    @property
    def primary(self) -> Teacher:
        return self.members[0][0]

    def pick(self, request_id: str | None = None) -> Teacher:
        """The teacher for this request: weighted, deterministic when an id is given."""
        if len(self.members) == 1:
            return self.members[0][0]
        point = _unit_interval(request_id) if request_id is not None else self.rng.random()
        total = sum(weight for _, weight in self.members)
        threshold = point * total
        running = 0.0
        for teacher, weight in self.members:
            running += weight
            if threshold < running:
                return teacher
        return self.members[-1][0]

    async def generate(
        self, task: TaskConfig, task_input: dict[str, Any], *, request_id: str | None = None
    ) -> TeacherAnswer:
        """``pick(request_id).generate(...)``."""
        return await self.pick(request_id).generate(task, task_input, request_id=request_id)

    async def generate_stream(
        self,
        task: TaskConfig,
        task_input: dict[str, Any],
        *,
        sink: TextSink,
        request_id: str | None = None,
    ) -> TeacherAnswer:
        """``generate``, the text passed to ``sink`` as it arrives when the picked teacher
        streams (a remote one); another (replay) answers whole and ``sink`` hears nothing."""
        teacher = self.pick(request_id)
        if isinstance(teacher, StreamingTeacher):
            return await teacher.generate_stream(task, task_input, sink=sink, request_id=request_id)
        return await teacher.generate(task, task_input, request_id=request_id)

    def estimate_cost(
        self, task: TaskConfig, task_input: dict[str, Any], *, request_id: str | None = None
    ) -> float:
        """Worst case of the teacher that will be picked (of all teachers without an id)."""
        if request_id is not None:
            return self.pick(request_id).estimate_cost(task, task_input)
        return max(teacher.estimate_cost(task, task_input) for teacher in self.teachers)

    async def aclose(self) -> None:
        for teacher in self.teachers:
            await teacher.aclose()
