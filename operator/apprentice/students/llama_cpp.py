"""llama.cpp's ``llama-server``: ``/v1/chat/completions`` and ``/health``.

``/health`` answers 503 ``{"error": {"message": "Loading model"}}`` while the
model loads: not ready, not down. llama-server reads LoRA adapters (GGUF) at
start-up (``--lora FILE``) and switches between them at run time through
``/lora-adapters`` scales; a version is one of those adapters, matched by path.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import httpx

from apprentice.config import LocalConfig, TaskConfig
from apprentice.students.base import (
    Health,
    NoStudent,
    StudentAnswer,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from apprentice.students.http import HTTPStudentBase, error_message
from apprentice.teachers.base import TextSink

__all__ = ["LlamaCppStudent"]


def _matches(adapter_path: str, version_path: str) -> bool:
    """An adapter file belongs to a version when it is that file or lies in that folder."""
    adapter, version = PurePath(adapter_path), PurePath(version_path)
    return adapter == version or version in adapter.parents


class LlamaCppStudent(HTTPStudentBase):
    backend = "llama_cpp"
    start_hint = (
        "start it with `llama-server -m BASE.gguf --lora ADAPTER.gguf ...`, or fix local.base_url"
    )

    def __init__(
        self, local: LocalConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(local, transport=transport)
        root = self.base_url
        self.base_url = root[: -len("/v1")] if root.endswith("/v1") else root
        self._adapter_ids: dict[str, int] = {}

    async def generate(self, task: TaskConfig, task_input: dict[str, Any]) -> StudentAnswer:
        return await self.generate_stream(task, task_input, sink=None)

    async def generate_stream(
        self, task: TaskConfig, task_input: dict[str, Any], *, sink: TextSink | None
    ) -> StudentAnswer:
        """``generate``; with ``sink``, the text streamed to it as llama-server generates it."""
        # The active adapter is chosen by scale (see load_version), not by model name.
        if self._active is None:
            raise NoStudent()
        return await self.chat_completion(task, task_input, self._active, sink)

    async def health(self) -> Health:
        try:
            response = await self.request("GET", "/health", ok=(503,))
        except StudentUnavailable as exc:
            return Health(False, str(exc))
        if response.status_code == 200:
            return Health(True, f"llama.cpp ready; active adapter {self._active or 'none'}")
        return Health(False, f"llama.cpp not ready: {error_message(response)}")

    async def _adapters(self) -> list[dict[str, Any]]:
        response = await self.request("GET", "/lora-adapters")
        if response.status_code != 200:
            raise VersionLoadError(
                f"llama.cpp /lora-adapters answered {response.status_code}; start llama-server "
                "with --lora ADAPTER.gguf for each version it should serve"
            )
        body = response.json()
        return [a for a in body if isinstance(a, dict)] if isinstance(body, list) else []

    async def _set_scales(self, active_id: int | None, adapters: list[dict[str, Any]]) -> None:
        scales = [{"id": a["id"], "scale": 1.0 if a["id"] == active_id else 0.0} for a in adapters]
        response = await self.request("POST", "/lora-adapters", json_body=scales)
        if response.status_code != 200:
            raise VersionLoadError(
                f"llama.cpp refused the adapter scales ({response.status_code}: "
                f"{error_message(response)})"
            )

    async def load_version(self, version: VersionRef) -> None:
        adapters = await self._adapters()
        found = [a for a in adapters if _matches(str(a.get("path", "")), version.path)]
        if not found:
            known = ", ".join(str(a.get("path")) for a in adapters) or "none"
            raise VersionLoadError(
                f"llama.cpp has no adapter under {version.path} (loaded: {known}); llama-server "
                f"reads adapters at start-up only: restart it with --lora {version.path}/"
                "adapter.gguf (convert with convert_lora_to_gguf.py)"
            )
        adapter_id = int(found[0]["id"])
        await self._set_scales(adapter_id, adapters)
        self._adapter_ids[version.name] = adapter_id
        self._active = version.name

    async def unload_version(self, name: str) -> None:
        if name not in self._adapter_ids:
            return
        del self._adapter_ids[name]
        if self._active == name:
            await self._set_scales(None, await self._adapters())
            self._active = None
