"""The replay teacher: recorded answers for offline demos, CI and reproducible runs.

``remote: {provider: replay, path: answers.jsonl}`` where each line is
``{"input": {...}, "output": {...}}`` (optionally ``"task": name`` to keep tasks
apart in one file). Inputs match by canonical JSON, so key order does not
matter. Token counts are estimated from the text (~4 characters per token) of
exactly the prompt a remote teacher would be sent, and priced like ``price_as``
(default :data:`~apprentice.teachers.pricing.DEFAULT_REPLAY_MODEL`) or the configured
``price``, so demo spend and savings look like production. An input the file does not hold is a
:class:`ReplayMiss` that names the file.

``complete`` answers lines whose input is ``{"messages": [...]}`` (a judge's
conversation), returning ``output["text"]`` or the output as JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from apprentice import prompts, schemas
from apprentice.config import ProviderConfig, TaskConfig
from apprentice.prompts import ChatMessage
from apprentice.teachers import pricing
from apprentice.teachers.base import Clock, Completion, TeacherAnswer, Usage
from apprentice.teachers.errors import (
    EmbeddingsUnsupported,
    InvalidOutput,
    ReplayMiss,
    TeacherConfigError,
)

__all__ = ["CHARS_PER_TOKEN", "ReplayTeacher", "load_answers", "text_tokens"]

CHARS_PER_TOKEN = 4


def text_tokens(text: str) -> int:
    """The usual ~4 characters per token estimate (at least one token)."""
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _key(task: str | None, task_input: Any) -> tuple[str | None, str]:
    return task, prompts.canonical_json(task_input)


def load_answers(path: Path) -> dict[tuple[str | None, str], dict[str, Any]]:
    """Index a JSONL file by (task or None, canonical input); errors name file and line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TeacherConfigError(
            f"cannot read replay file {str(path)!r} ({exc.strerror}); write one "
            '{"input": ..., "output": ...} object per line there',
            provider="replay",
        ) from None
    answers: dict[tuple[str | None, str], dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TeacherConfigError(
                f"{path}:{number}: not JSON ({exc.msg})", provider="replay"
            ) from None
        if not (
            isinstance(row, dict)
            and isinstance(row.get("input"), dict)
            and isinstance(row.get("output"), dict)
        ):
            raise TeacherConfigError(
                f'{path}:{number}: expected {{"input": {{...}}, "output": {{...}}}}',
                provider="replay",
            )
        task = row.get("task")
        answers[_key(str(task) if task is not None else None, row["input"])] = row["output"]
    return answers


class ReplayTeacher:
    """A :class:`~apprentice.teachers.base.Teacher` that reads answers from a JSONL file."""

    provider = "replay"

    def __init__(self, config: ProviderConfig, *, price: pricing.ModelPrice, clock: Clock) -> None:
        if not config.path:
            raise TeacherConfigError(
                "the replay teacher needs path: answers.jsonl", provider="replay"
            )
        self.config = config
        self.path = Path(config.path)
        self.model = config.model or config.price_as or pricing.DEFAULT_REPLAY_MODEL
        self.name = f"replay:{self.path.name}"
        self.price = price
        self._clock = clock
        self._answers = load_answers(self.path)

    def __repr__(self) -> str:
        return f"ReplayTeacher(path={str(self.path)!r}, answers={len(self._answers)})"

    def _find(self, task: str | None, task_input: Any) -> dict[str, Any]:
        found = self._answers.get(_key(task, task_input)) or self._answers.get(
            _key(None, task_input)
        )
        if found is None:
            shown = prompts.canonical_json(task_input)
            raise ReplayMiss(
                f"replay file {str(self.path)!r} has no answer for input {shown[:200]}; add a "
                'line {"input": <this input>, "output": {...}} or use a remote provider',
                provider="replay",
            )
        return found

    def _usage(self, messages: list[ChatMessage], answer_text: str) -> Usage:
        return Usage(sum(text_tokens(m["content"]) for m in messages), text_tokens(answer_text))

    async def generate(
        self, task: TaskConfig, task_input: dict[str, Any], *, request_id: str | None = None
    ) -> TeacherAnswer:
        started = self._clock()
        output = self._find(task.name, task_input)
        problems = schemas.validation_errors(task.output_schema, output)
        if problems:
            raise InvalidOutput(
                f"recorded answer in {str(self.path)!r} breaks task {task.name!r}'s output "
                f"schema: {'; '.join(problems[:5])}; fix the file",
                provider="replay",
            )
        usage = self._usage(prompts.build_messages(task, task_input), prompts.render_output(output))
        return TeacherAnswer(
            output=dict(output),
            usage=usage,
            cost=pricing.cost(usage, self.price),
            provider="replay",
            model=self.model,
            latency_s=self._clock() - started,
            attempts=1,
        )

    async def complete(
        self,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        output = self._find(None, {"messages": [dict(m) for m in messages]})
        text = output["text"] if isinstance(output.get("text"), str) else None
        text = text if text is not None else prompts.canonical_json(output)
        usage = self._usage(messages, text)
        return Completion(
            text=text,
            usage=usage,
            cost=pricing.cost(usage, self.price),
            provider="replay",
            model=self.model,
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise EmbeddingsUnsupported(
            "the replay teacher has no embeddings; use evaluator_options.embedding: local",
            provider="replay",
        )

    def estimate_cost(self, task: TaskConfig, task_input: dict[str, Any]) -> float:
        """Exact for a recorded input; otherwise input estimate + max_output_tokens."""
        messages = prompts.build_messages(task, task_input)
        try:
            answer = prompts.render_output(self._find(task.name, task_input))
            usage = self._usage(messages, answer)
        except ReplayMiss:
            usage = Usage(
                sum(text_tokens(m["content"]) for m in messages), self.config.max_output_tokens
            )
        return pricing.cost(usage, self.price)

    async def aclose(self) -> None:
        return None
