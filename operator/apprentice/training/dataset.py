"""A training dataset: chat conversations (system, user, assistant) plus a data hash.

Every trainer consumes this one shape: the gateway selects a run's data once
(:mod:`apprentice.gateway.training_data`); the LocalOrchestrator writes it as chat
JSONL for the training subprocess, the Kubernetes trainer Job pulls the same JSONL
from ``GET /admin/tasks/{task}/training/dataset``, and each fine-tuning backend
renders it for its own tool. The data hash names exactly which examples a version saw.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

from apprentice import prompts

__all__ = ["INIT_ADAPTER_HEADER", "DatasetError", "TrainingDataset", "hash_conversations"]

Conversation = tuple[prompts.ChatMessage, ...]
_ROLES = ("system", "user", "assistant")

INIT_ADAPTER_HEADER = "X-Apprentice-Init-Adapter"
"""Response header of the gateway's training data: the adapter the run starts from (a
warm start; a path on the task's volume, percent-encoded), absent for a run from the
base. The gateway decides it with the data, for both run modes."""


class DatasetError(ValueError):
    """A dataset file or record that is not chat JSONL."""


def hash_conversations(conversations: Iterable[Sequence[prompts.ChatMessage]]) -> str:
    """Order-independent SHA-256 of the conversations (the same data gives the same hash)."""
    lines = sorted(prompts.canonical_json(list(c)) for c in conversations)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


def _conversation(record: Any, where: str) -> Conversation:
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f'{where}: expected {{"messages": [...]}}, got {str(record)[:120]!r}')
    out: list[prompts.ChatMessage] = []
    for i, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or message.get("role") not in _ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise DatasetError(
                f"{where}: messages[{i}] must be {{role: system|user|assistant, content: str}}"
            )
        out.append(
            cast(prompts.ChatMessage, {"role": message["role"], "content": message["content"]})
        )
    if out[-1]["role"] != "assistant":
        raise DatasetError(f"{where}: the last message must be the assistant's (the target)")
    return tuple(out)


@dataclasses.dataclass(frozen=True, slots=True)
class TrainingDataset:
    """Conversations to train on (coaching repeats included) and what they are."""

    conversations: tuple[Conversation, ...]
    data_hash: str
    unique_examples: int

    def __len__(self) -> int:
        return len(self.conversations)

    @classmethod
    def from_conversations(
        cls, conversations: Iterable[Sequence[prompts.ChatMessage]]
    ) -> TrainingDataset:
        convs = tuple(
            _conversation({"messages": list(c)}, f"example {i}")
            for i, c in enumerate(conversations)
        )
        unique = len({prompts.canonical_json(list(c)) for c in convs})
        return cls(convs, hash_conversations(convs), unique)

    @classmethod
    def from_jsonl_text(cls, text: str, source: str = "<jsonl>") -> TrainingDataset:
        convs: list[Conversation] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{source}:{lineno}: not JSON ({exc.msg})") from exc
            convs.append(_conversation(record, f"{source}:{lineno}"))
        return cls.from_conversations(convs)

    @classmethod
    def read_jsonl(cls, path: str | Path) -> TrainingDataset:
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise DatasetError(f"cannot read dataset {file}: {exc.strerror}") from exc
        return cls.from_jsonl_text(text, str(file))

    def to_jsonl_text(self) -> str:
        return "".join(
            json.dumps({"messages": list(c)}, ensure_ascii=False) + "\n" for c in self.conversations
        )

    def write_jsonl(self, path: str | Path) -> Path:
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(self.to_jsonl_text(), encoding="utf-8")
        return file
