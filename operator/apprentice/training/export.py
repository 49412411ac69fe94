"""Training data export: chat JSONL, OpenAI fine-tuning JSONL and Alpaca.

Every format is built from ``prompts.build_messages`` and ``prompts.render_output``,
the very functions the teachers and students use at request time, so a model
fine-tuned on an export is trained on exactly what it will be asked.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from typing import Any

from apprentice import prompts
from apprentice.config import TaskConfig

__all__ = ["ExportFormat", "alpaca_record", "chat_record", "export_jsonl", "record"]


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
