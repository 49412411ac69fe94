"""Reading an import file: each line to an example, or to a rejection with its reason.

What is accepted (one JSON object per line, blank lines skipped):

- ``{"input": {...}, "output": {...}}``: the task's input and the answer to learn;
- ``{"messages": [...]}``: a logged chat call in the chat API's own shape: the last
  ``user`` message holds the input JSON and the last ``assistant`` message after
  it the output JSON (what ``/v1/chat/completions`` takes and answers).

Each input and output must match the task's schemas; an input seen earlier in the
file is rejected as a duplicate of that line (the store collapses duplicates of
examples it already has, and the caller reports those). Nothing here touches the
store: it is a pure function of the lines, so a rejected file costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apprentice import schema_checks
from apprentice.config import TaskConfig
from apprentice.store import ExampleRecord, assign_split, input_hash

__all__ = ["PROVENANCE", "Rejected", "parse_lines"]

PROVENANCE = "import"
"""An imported example's ``teacher_provider``: where its answer came from."""


@dataclass(frozen=True)
class Rejected:
    """A line that was not imported, and why."""

    line: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason}


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones, joined
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return None


def _from_messages(messages: Any) -> tuple[Any, Any]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ValueError("'messages' must be a list of message objects")
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        raise ValueError("no user message: the last user message must hold the input JSON")
    answers = [i for i, m in enumerate(messages) if m.get("role") == "assistant" and i > users[-1]]
    if not answers:
        raise ValueError("no assistant message after the last user message (the output)")
    pair = []
    for where, what in ((users[-1], "input"), (answers[-1], "output")):
        text = _text(messages[where].get("content"))
        try:
            pair.append(json.loads(text or ""))
        except ValueError:
            raise ValueError(f"messages[{where}].content is not the {what} as JSON") from None
    return pair[0], pair[1]


def _pair(raw: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        row = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"not JSON ({exc})") from None
    if not isinstance(row, dict):
        raise ValueError(f"a line must be a JSON object, got {type(row).__name__}")
    if "messages" in row and "input" not in row:
        task_input, output = _from_messages(row["messages"])
    else:
        missing = [k for k in ("input", "output") if k not in row]
        if missing:
            raise ValueError(f"missing {' and '.join(map(repr, missing))} (or 'messages')")
        task_input, output = row["input"], row["output"]
    for name, value in (("input", task_input), ("output", output)):
        if not isinstance(value, dict):
            raise ValueError(f"{name} must be a JSON object, got {type(value).__name__}")
    return task_input, output


def _problems(what: str, found: list[dict[str, str]]) -> str:
    listed = "; ".join(f"{p['path']}: {p['message']}" for p in found[:3])
    return f"{what} does not match the task's {what}_schema: {listed}"


@dataclass
class Parser:
    """Turns lines into examples for one task (see the module docstring)."""

    task: TaskConfig
    heldout_fraction: float
    now: datetime
    model: str | None = None

    def __post_init__(self) -> None:
        self.schemas = schema_checks.for_task(self.task)
        self.seen: dict[str, int] = {}

    def example(self, number: int, raw: str) -> ExampleRecord:
        task_input, output = _pair(raw)
        bad = self.schemas.input.errors(task_input)
        if bad:
            raise ValueError(_problems("input", bad))
        bad = self.schemas.output.errors(output)
        if bad:
            raise ValueError(_problems("output", bad))
        digest = input_hash(task_input)
        if digest in self.seen:
            raise ValueError(f"duplicate input: the same as line {self.seen[digest]}")
        self.seen[digest] = number
        return ExampleRecord(
            task=self.task.name,
            input=task_input,
            output=output,
            input_hash=digest,
            split=assign_split(digest, self.heldout_fraction),  # the rule teacher examples follow
            teacher_provider=PROVENANCE,
            teacher_model=self.model,
            created_at=self.now,
        )


def parse_lines(
    parser: Parser, lines: Iterable[str]
) -> Iterator[tuple[int, ExampleRecord | Rejected]]:
    """``(line number, example or rejection)`` for every non-blank line, 1-based."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield number, parser.example(number, raw)
        except ValueError as exc:
            yield number, Rejected(number, str(exc))
