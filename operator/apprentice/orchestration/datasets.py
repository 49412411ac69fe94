"""Examples -> training data, at the orchestrator's side of the seam.

Delegates to :mod:`apprentice.training` when it provides the export formats and
the trainer spec; the small fallbacks here keep the same shapes (the prompt is
always :func:`apprentice.prompts.build_messages`, the target
:func:`apprentice.prompts.render_output`) so the student is trained on exactly
what it is later asked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apprentice import prompts
from apprentice.config import LocalConfig, TaskConfig, TrainingConfig
from apprentice.store import records
from apprentice.training.dataset import TrainingDataset

FORMATS = ("chat", "openai", "alpaca")


def conversation(task: TaskConfig, example: records.ExampleRecord) -> list[prompts.ChatMessage]:
    messages = prompts.build_messages(task, example.input)
    messages.append({"role": "assistant", "content": prompts.render_output(example.output)})
    return messages


def render_line(task: TaskConfig, example: records.ExampleRecord, fmt: str) -> str:
    """One JSONL line of ``example`` in ``fmt`` (chat | openai | alpaca)."""
    if fmt == "alpaca":
        body: dict[str, Any] = {
            "instruction": prompts.system_prompt(task),
            "input": prompts.user_prompt(example.input),
            "output": prompts.render_output(example.output),
        }
    elif fmt == "openai":
        body = {"messages": conversation(task, example)}
    else:
        body = {
            "messages": conversation(task, example),
            "metadata": {
                "task": task.name,
                "split": example.split,
                "input_hash": example.input_hash,
                "teacher_provider": example.teacher_provider,
                "teacher_model": example.teacher_model,
                "request_id": example.request_id,
                "created_at": example.created_at.isoformat(),
                "weight": example.weight,
            },
        }
    return json.dumps(body, ensure_ascii=False)


def build_dataset(
    task: TaskConfig, examples: Sequence[records.ExampleRecord], training: TrainingConfig
) -> TrainingDataset:
    """The train split as conversations; an example with weight w > 1 repeats ceil(w) times."""
    convs: list[list[prompts.ChatMessage]] = []
    for example in examples:
        if example.split != "train":
            continue  # held-out examples are never trained on
        repeats = max(1, math.ceil(example.weight)) if example.weight > 1 else 1
        convs.extend(conversation(task, example) for _ in range(repeats))
    return TrainingDataset.from_conversations(convs)


def training_spec(
    local: LocalConfig, task: TaskConfig, dataset: Path, out_dir: Path
) -> dict[str, Any]:
    """What ``python -m apprentice.training.run --spec`` reads."""
    return {
        "task": task.name,
        "dataset": str(dataset),
        "out_dir": str(out_dir),
        "base_model": local.base_model,
        "backend": local.fine_tune_backend.value,
        "device": local.device,
        "hyper": local.training.model_dump(mode="json"),
        "local": local.model_dump(mode="json"),
    }
