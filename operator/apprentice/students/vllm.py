"""vLLM's OpenAI-compatible server, with LoRA adapters loaded at runtime.

Each model version is a LoRA adapter addressed by name: ``POST
/v1/load_lora_adapter {lora_name, lora_path}`` loads it, requests use
``model = <version name>``. The server must run with ``--enable-lora`` and the
environment ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; vLLM accepts LoRA ranks
8/16/32/64/128/256/320/512 only (and at most ``--max-lora-rank``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from apprentice.config import LocalConfig, TaskConfig
from apprentice.config.settings import VLLM_LORA_RANKS
from apprentice.students.base import (
    Health,
    NoStudent,
    StudentAnswer,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from apprentice.students.http import HTTPStudentBase, ModelMissing, error_message
from apprentice.teachers.base import TextSink

__all__ = ["VLLM_LORA_RANKS", "LoRARankError", "VLLMStudent", "check_lora_rank"]

_RUNTIME_HINT = (
    "start vLLM with --enable-lora and the environment VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
)


class LoRARankError(VersionLoadError, ValueError):
    """A LoRA rank vLLM cannot serve."""


def check_lora_rank(rank: int) -> None:
    """Raise :class:`LoRARankError` unless vLLM supports ``rank``."""
    if rank not in VLLM_LORA_RANKS:
        allowed = "/".join(str(r) for r in VLLM_LORA_RANKS)
        raise LoRARankError(
            f"LoRA rank {rank} cannot be served by vLLM, which accepts ranks {allowed} only; "
            f"set local.training.lora_rank to one of them (e.g. 16)"
        )


def _server_root(base_url: str) -> str:
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def _adapter_rank(path: str) -> int | None:
    """The rank in a local adapter_config.json, when the gateway can see the volume."""
    try:
        raw = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rank = raw.get("r") if isinstance(raw, dict) else None
    return rank if isinstance(rank, int) else None


class VLLMStudent(HTTPStudentBase):
    backend = "vllm"
    start_hint = (
        "start it with `vllm serve <base> --enable-lora` (and "
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True), or fix local.base_url"
    )

    def __init__(
        self, local: LocalConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(local, transport=transport)
        check_lora_rank(local.training.lora_rank)
        self.base_url = _server_root(self.base_url)
        self._loaded: set[str] = set()
        self._paths: dict[str, str] = {}  # version -> adapter path (to reload)

    async def generate(self, task: TaskConfig, task_input: dict[str, Any]) -> StudentAnswer:
        return await self.generate_stream(task, task_input, sink=None)

    async def generate_stream(
        self, task: TaskConfig, task_input: dict[str, Any], *, sink: TextSink | None
    ) -> StudentAnswer:
        """``generate``; with ``sink``, the text streamed to it as vLLM generates it."""
        # Adapters are addressed by name: the active version is the model to ask.
        version = self._active
        if version is None:
            raise NoStudent()
        try:
            return await self.chat_completion(task, task_input, version, sink)
        except ModelMissing:  # refused before any text: nothing was streamed
            if version not in self._paths:
                raise
        # vLLM forgets runtime adapters when it restarts: load the active one again, once.
        self._loaded.discard(version)
        await self.load_version(VersionRef(version, self._paths[version]))
        return await self.chat_completion(task, task_input, version, sink)

    async def health(self) -> Health:
        try:
            response = await self.request("GET", "/health", ok=(503,))
        except StudentUnavailable as exc:
            return Health(False, str(exc))
        if response.status_code == 200:
            return Health(True, f"vLLM ready; active adapter {self._active or 'none'}")
        return Health(False, f"vLLM /health answered {response.status_code}")

    async def load_version(self, version: VersionRef) -> None:
        rank = _adapter_rank(version.path)
        if rank is not None:
            check_lora_rank(rank)
        if version.name not in self._loaded:
            body = {"lora_name": version.name, "lora_path": version.path}
            response = await self.request("POST", "/v1/load_lora_adapter", json_body=body)
            message = error_message(response)
            already = response.status_code == 400 and "already" in message.lower()
            if response.status_code in (404, 405):
                raise VersionLoadError(
                    f"vLLM has no runtime LoRA endpoint (/v1/load_lora_adapter answered "
                    f"{response.status_code}); {_RUNTIME_HINT}"
                )
            if response.status_code != 200 and not already:
                raise VersionLoadError(
                    f"vLLM refused adapter {version.name} from {version.path} "
                    f"({response.status_code}: {message}); check the path is on the server's "
                    f"volume and the rank <= --max-lora-rank; {_RUNTIME_HINT}"
                )
            self._loaded.add(version.name)
        self._paths[version.name] = version.path
        self._active = version.name

    async def unload_version(self, name: str) -> None:
        response = await self.request(
            "POST", "/v1/unload_lora_adapter", json_body={"lora_name": name}
        )
        if response.status_code in (404, 405) and "lora" not in error_message(response).lower():
            raise VersionLoadError(
                f"vLLM has no runtime LoRA endpoint (/v1/unload_lora_adapter); {_RUNTIME_HINT}"
            )
        if response.status_code not in (200, 404, 400):
            raise VersionLoadError(
                f"vLLM could not unload {name} ({response.status_code}: {error_message(response)})"
            )
        self._loaded.discard(name)
        if self._active == name:
            self._active = None
