"""Training data export: chat JSONL, OpenAI fine-tuning JSONL, Alpaca and DPO pairs.

Every format is built from ``prompts.build_messages`` and ``prompts.render_output``,
the very functions the teachers and students use at request time, so a model
fine-tuned on an export is trained on exactly what it will be asked.

DPO pairs (TRL's conversational preference format: ``prompt``, ``chosen``,
``rejected``) come from comparisons the student lost: ``chosen`` is the kept
example's answer (the teacher's, or an imported or human one), ``rejected`` the
student's answer to the same request. A pair is only made when the student's answer
was stored with the comparison (``details["student_output"]``), was a valid object
and differs from the chosen one: never a self-pair, never an unvalidated answer.

``metadata`` (opt-in: some trainers refuse unknown keys) adds a ``metadata`` object
per line: where the example came from (``provenance``, ``model``), its split, ids and
time, and for a pair the agreement score and the student version that lost.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator
from typing import Any

from apprentice import prompts
from apprentice.config import TaskConfig
from apprentice.store.records import ComparisonRecord, ExampleRecord

__all__ = [
    "DPO",
    "ExportFormat",
    "alpaca_record",
    "chat_record",
    "dpo_record",
    "dpo_rows",
    "export_jsonl",
    "metadata",
    "record",
]

DPO = "dpo"
"""The preference format's name (``--format dpo``); not an :class:`ExportFormat`, whose
formats are made from examples alone."""


class ExportFormat(enum.StrEnum):
    chat = "chat"  # {"messages": [system, user, assistant]}
    openai = "openai"  # OpenAI fine-tuning: the same chat shape, one object per line
    alpaca = "alpaca"  # {"instruction", "input", "output"}


def chat_record(
    task: TaskConfig, task_input: dict[str, Any], output: dict[str, Any]
) -> dict[str, Any]:
    """One conversation: the request's system + user messages and the answer to learn."""
    assistant: prompts.ChatMessage = {"role": "assistant", "content": prompts.render_output(output)}
    return {"messages": [*prompts.build_messages(task, task_input), assistant]}


def alpaca_record(
    task: TaskConfig, task_input: dict[str, Any], output: dict[str, Any]
) -> dict[str, str]:
    """Alpaca: the system prompt as instruction, the user prompt as input."""
    system, user = prompts.build_messages(task, task_input)
    return {
        "instruction": system["content"],
        "input": user["content"],
        "output": prompts.render_output(output),
    }


def record(
    task: TaskConfig, task_input: dict[str, Any], output: dict[str, Any], fmt: ExportFormat | str
) -> dict[str, Any]:
    fmt = ExportFormat(fmt)
    if fmt is ExportFormat.alpaca:
        return alpaca_record(task, task_input, output)
    return chat_record(task, task_input, output)


def export_jsonl(
    task: TaskConfig,
    pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]],
    fmt: ExportFormat | str = ExportFormat.chat,
) -> str:
    """JSONL text, one (input, teacher output) pair per line."""
    return "".join(json.dumps(record(task, i, o, fmt), ensure_ascii=False) + "\n" for i, o in pairs)


def dpo_record(
    task: TaskConfig,
    task_input: dict[str, Any],
    chosen: dict[str, Any],
    rejected: dict[str, Any],
) -> dict[str, Any]:
    """One preference pair in TRL's conversational shape."""

    def answer(output: dict[str, Any]) -> list[prompts.ChatMessage]:
        return [{"role": "assistant", "content": prompts.render_output(output)}]

    return {
        "prompt": prompts.build_messages(task, task_input),
        "chosen": answer(chosen),
        "rejected": answer(rejected),
    }


def metadata(example: ExampleRecord) -> dict[str, Any]:
    """The ``metadata`` column of an example's line."""
    return {
        "example_id": example.id,
        "request_id": example.request_id,
        "split": example.split,
        "provenance": example.teacher_provider,
        "model": example.teacher_model,
        "created_at": example.created_at.isoformat(),
        "weight": example.weight,
    }


def dpo_rows(
    task: TaskConfig,
    examples: Iterable[ExampleRecord],
    comparisons: Iterable[ComparisonRecord],
    with_metadata: bool = False,
) -> Iterator[dict[str, Any]]:
    """Pairs from the comparisons the student lost (see the module docstring)."""
    by_request = {e.request_id: e for e in examples if e.request_id is not None}
    for c in comparisons:
        example = by_request.get(c.request_id)
        student = c.details.get("student_output")
        if example is None or c.score >= 1.0 or not isinstance(student, dict):
            continue
        if prompts.canonical_json(student) == prompts.canonical_json(example.output):
            continue  # a loss the evaluator scored, not a preference: never a self-pair
        row = dpo_record(task, example.input, example.output, student)
        if with_metadata:
            extra = {"score": c.score, "student_version": c.student_version}
            row["metadata"] = {**metadata(example), **extra}
        yield row
