"""The one prompt that turns a task input into a chat request.

Teachers, students and the training export all call :func:`build_messages`, so
the student is trained on exactly the text it is later asked, and the target it
learns is exactly :func:`render_output` of the teacher's answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal, TypedDict

from apprentice.config import TaskConfig


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


class OutputParseError(ValueError):
    """Model text that holds no JSON object."""


def compact_encoder(*, sort_keys: bool) -> Callable[[Any], str]:
    """``json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False)``,
    from an encoder built once.

    ``json.dumps`` with options builds a new encoder on every call, most of its cost on
    a small dict (1.2 us against 5.1 us for a one-key input, measured on a loaded 2-core
    machine; several times per request). This is the C encoder ``json`` itself uses, with
    the same options (no circular check: the values are parsed JSON or built here).
    Without the C accelerator (PyPy): ``json.dumps`` itself."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda value: json.dumps(
            value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False
        )
    encode = make(
        None,  # markers: no circular check
        json.JSONEncoder().default,  # a TypeError for what JSON cannot hold
        json.encoder.encode_basestring,  # ensure_ascii=False: UTF-8 kept
        None,  # indent
        ":",  # key separator
        ",",  # item separator
        sort_keys,
        False,  # skipkeys
        True,  # allow_nan
    )
    return lambda value: "".join(encode(value, 0))


_canonical = compact_encoder(sort_keys=True)


def canonical_json(value: Any) -> str:
    """Stable, compact JSON: sorted keys, no spaces, UTF-8 kept."""
    return _canonical(value)


_SYSTEM_PROMPTS: dict[int, tuple[TaskConfig, str]] = {}


def system_prompt(task: TaskConfig) -> str:
    """Instructions: what the task is and the exact JSON shape to answer with.

    Built once per task config (configs are frozen; every teacher call and student
    prompt asks): keyed by identity, the config kept beside it so an id is never reused.
    """
    cached = _SYSTEM_PROMPTS.get(id(task))
    if cached is not None and cached[0] is task:
        return cached[1]
    description = task.description.strip() or f"Perform the task {task.name}."
    prompt = (
        f"{description}\n"
        "Reply with one JSON object only, no prose, matching this JSON Schema:\n"
        f"{canonical_json(task.output_schema)}"
    )
    if len(_SYSTEM_PROMPTS) >= 1024:  # many configs loaded (tests, reloads): start over
        _SYSTEM_PROMPTS.clear()
    _SYSTEM_PROMPTS[id(task)] = (task, prompt)
    return prompt


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
