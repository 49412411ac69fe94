"""The one prompt that turns a task input into a chat request.

Teachers, students and the training export all call :func:`build_messages`, so
the student is trained on exactly the text it is later asked, and the target it
learns is exactly :func:`render_output` of the teacher's answer.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, TypedDict

from apprentice.config import TaskConfig


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class OutputParseError(ValueError):
    """Model text that holds no JSON object."""


def canonical_json(value: Any) -> str:
    """Stable, compact JSON: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def system_prompt(task: TaskConfig) -> str:
    """Instructions: what the task is and the exact JSON shape to answer with."""
    description = task.description.strip() or f"Perform the task {task.name}."
    return (
        f"{description}\n"
        "Reply with one JSON object only, no prose, matching this JSON Schema:\n"
        f"{canonical_json(task.output_schema)}"
    )


def user_prompt(task_input: dict[str, Any]) -> str:
    """The task input as canonical JSON (stable across callers and key orders)."""
    return canonical_json(task_input)


def build_messages(task: TaskConfig, task_input: dict[str, Any]) -> list[ChatMessage]:
    """System + user messages for one request."""
    return [
        {"role": "system", "content": system_prompt(task)},
        {"role": "user", "content": user_prompt(task_input)},
    ]


def render_output(output: dict[str, Any]) -> str:
    """The assistant turn a student is trained to produce for ``output``."""
    return canonical_json(output)


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_output(text: str) -> dict[str, Any]:
    """Read a JSON object from model text; tolerate code fences and text around one object."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        value = json.loads(stripped)
    except json.JSONDecodeError:
        start, end = stripped.find("{"), stripped.rfind("}")
        if start < 0 or end <= start:
            raise OutputParseError(f"no JSON object in model output: {text[:200]!r}") from None
        try:
            value = json.loads(stripped[start : end + 1])
        except json.JSONDecodeError as exc:
            raise OutputParseError(
                f"invalid JSON in model output ({exc.msg}): {text[:200]!r}"
            ) from exc
    if not isinstance(value, dict):
        raise OutputParseError(f"expected a JSON object, got {type(value).__name__}")
    return value
