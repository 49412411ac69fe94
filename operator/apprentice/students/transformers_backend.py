"""In-process student: a base model plus a peft adapter directory, CPU or GPU.

The embedded default's student. Each version is the base with its adapter
merged in (so answering costs nothing extra for LoRA) behind a greedy decoder
that stops at the end of the JSON object: the same input always gives the
same answer. Loading and generation run on one worker thread, so the event
loop never blocks and torch never runs two generations at once; a version
swap replaces one reference, so a request sees either the old version or the
new one, never a mix.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable
from typing import Any, TypeVar, TypeVarTuple, Unpack

import torch

from apprentice import prompts
from apprentice.config import LocalConfig, TaskConfig
from apprentice.students import decoding, tiny
from apprentice.students.base import (
    Health,
    NoStudent,
    StudentAnswer,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
    answer_from_text,
)
from apprentice.teachers.base import Usage

Args = TypeVarTuple("Args")
R = TypeVar("R")

__all__ = ["LoadedVersion", "TransformersStudent", "load_merged"]

SMALL_MODEL = 50_000_000  # parameters


@dataclasses.dataclass(frozen=True, slots=True)
class LoadedVersion:
    name: str
    path: str
    codec: tiny.Codec
    decoder: decoding.Decoder
    max_positions: int


def load_merged(base_model: str, adapter_dir: str, device: str) -> tuple[Any, tiny.Codec]:
    """Base + adapter merged into one plain model, in eval mode (blocking)."""
    from peft import PeftModel  # the `train` extra: heavy, needed only when loading

    base, codec = tiny.load_base(base_model, device)
    try:
        merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise VersionLoadError(
            f"cannot load adapter {adapter_dir} onto {base_model}: {exc}; was it trained "
            "from this base model?"
        ) from exc
    merged.eval()
    return merged, codec


def generate_text(
    loaded: LoadedVersion, messages: list[prompts.ChatMessage], max_new_tokens: int
) -> tuple[str, Usage]:
    """Greedy answer text for one chat and its token counts (blocking; runs on the worker
    thread). The counts are the model's own tokens: the prompt it read, the tokens it made."""
    codec = loaded.codec
    ids = tiny.encode_chat(codec, messages).prompt_ids
    room = loaded.max_positions - max_new_tokens
    if len(ids) > room:
        ids = ids[-max(room, 1) :]  # as training does: keep the end of the prompt
    stop = decoding.JsonStop()
    eos = codec.eos_ids

    def done(token: int) -> bool:
        return token in eos or stop.feed(codec.decode([token]))

    out = loaded.decoder.generate(ids, max_new_tokens, done)
    usage = Usage(len(ids), len(out))
    if out and out[-1] in eos:
        out = out[:-1]
    return codec.decode(out), usage


class TransformersStudent:
    """The ``transformers`` backend."""

    def __init__(self, local: LocalConfig) -> None:
        self.local = local
        self.device = tiny.resolve_device(local.device)
        self._current: LoadedVersion | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="apprentice-student"
        )
        self._closed = False

    async def _run(self, fn: Callable[[Unpack[Args]], R], *args: *Args) -> R:
        """``fn(*args)`` on the model's one worker thread (torch calls block)."""
        if self._closed:
            raise StudentUnavailable("the transformers student is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def generate(self, task: TaskConfig, task_input: dict[str, Any]) -> StudentAnswer:
        loaded = self._current
        if loaded is None:
            raise NoStudent()
        messages = prompts.build_messages(task, task_input)
        started = time.perf_counter()
        try:
            text, usage = await asyncio.wait_for(
                self._run(generate_text, loaded, messages, self.local.max_new_tokens),
                timeout=self.local.timeout_s,
            )
        except TimeoutError as exc:
            raise StudentUnavailable(
                f"transformers student took over {self.local.timeout_s}s for one answer"
            ) from exc
        except RuntimeError as exc:
            raise StudentUnavailable(f"transformers student failed: {exc}") from exc
        return answer_from_text(task, text, version=loaded.name, started=started, usage=usage)

    def _load(self, version: VersionRef) -> LoadedVersion:
        model, codec = load_merged(self.local.base_model, version.path, self.device)
        if self.device == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL:
            # Batch-1 decoding of a small model is a chain of tiny ops: one thread is
            # as fast, and never fights a training subprocess for the cores.
            torch.set_num_threads(1)
        positions = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        return LoadedVersion(
            version.name, version.path, codec, decoding.make_decoder(model), positions
        )

    async def load_version(self, version: VersionRef) -> None:
        loaded = await self._run(self._load, version)
        self._current = loaded  # one reference swap: atomic for concurrent requests

    async def unload_version(self, name: str) -> None:
        current = self._current
        if current is not None and current.name == name:
            self._current = None

    def active_version(self) -> str | None:
        current = self._current
        return current.name if current else None

    async def health(self) -> Health:
        if self._closed:
            return Health(False, "closed")
        current = self._current
        if current is None:
            return Health(True, f"in-process {self.local.base_model} on {self.device}; no version")
        return Health(True, f"in-process {self.local.base_model} on {self.device}; {current.name}")

    async def aclose(self) -> None:
        self._closed = True
        self._current = None
        self._executor.shutdown(wait=False, cancel_futures=True)
