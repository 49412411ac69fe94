"""Ollama: ``/api/chat`` with ``format`` = the output JSON Schema, non-streaming.

A model version is an Ollama model named after the version. When the gateway
can read the adapter directory it creates that model itself (blobs uploaded to
``/api/blobs/<digest>``, then ``/api/create {model, from, adapters}``);
otherwise the model must already exist (``ollama create``), which ``/api/tags``
confirms before the version goes live.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from apprentice import prompts
from apprentice.config import TaskConfig
from apprentice.students.base import (
    Health,
    NoStudent,
    StudentAnswer,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from apprentice.students.http import HTTPStudentBase, error_message

__all__ = ["OllamaStudent"]

_ADAPTER_SUFFIXES = (".safetensors", ".gguf", ".bin")


def _adapter_files(directory: Path) -> list[tuple[str, bytes]]:
    """(file name, bytes) of the adapter weights in ``directory`` (empty when unreadable)."""
    if not directory.is_dir():
        return []
    return [
        (file.name, file.read_bytes())
        for file in sorted(directory.iterdir())
        if file.is_file() and file.name.endswith(_ADAPTER_SUFFIXES)
    ]


class OllamaStudent(HTTPStudentBase):
    backend = "ollama"

    def request_body(
        self, task: TaskConfig, task_input: dict[str, Any], model: str
    ) -> dict[str, Any]:
        return {
            "model": model,
            "messages": prompts.build_messages(task, task_input),
            "format": task.output_schema,
            "stream": False,
            "options": {"temperature": 0, "num_predict": self.local.max_new_tokens},
        }

    async def generate(self, task: TaskConfig, task_input: dict[str, Any]) -> StudentAnswer:
        model = self._active
        if model is None:
            raise NoStudent()
        started = self.now()
        response = await self.request(
            "POST", "/api/chat", json_body=self.request_body(task, task_input, model)
        )
        if response.status_code != 200:
            raise StudentUnavailable(
                f"ollama answered {response.status_code} for model {model}: "
                f"{error_message(response)}"
            )
        try:
            text = response.json()["message"]["content"]
        except (ValueError, KeyError, TypeError) as exc:
            raise StudentUnavailable("ollama answered without message.content") from exc
        return self.answer(task, str(text), started)

    async def health(self) -> Health:
        try:
            response = await self.request("GET", "/api/version")
        except StudentUnavailable as exc:
            return Health(False, str(exc))
        if response.status_code != 200:
            return Health(False, f"ollama /api/version answered {response.status_code}")
        version = response.json().get("version", "?")
        return Health(True, f"ollama {version} ready; active model {self._active or 'none'}")

    async def _models(self) -> set[str]:
        response = await self.request("GET", "/api/tags")
        if response.status_code != 200:
            raise VersionLoadError(f"ollama /api/tags answered {response.status_code}")
        names: set[str] = set()
        for entry in response.json().get("models", []):
            for key in ("name", "model"):
                if isinstance(entry.get(key), str):
                    names.add(entry[key])
                    names.add(entry[key].removesuffix(":latest"))
        return names

    async def _create(self, version: VersionRef, files: list[tuple[str, bytes]]) -> None:
        adapters: dict[str, str] = {}
        for name, data in files:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            try:
                response = await self._client.post(self.url(f"/api/blobs/{digest}"), content=data)
            except Exception as exc:
                raise VersionLoadError(f"ollama blob upload failed: {type(exc).__name__}") from exc
            if response.status_code not in (200, 201):
                raise VersionLoadError(
                    f"ollama refused blob {name} ({response.status_code}: "
                    f"{error_message(response)})"
                )
            adapters[name] = digest
        body = {
            "model": version.name,
            "from": self.local.base_model,
            "adapters": adapters,
            "stream": False,
        }
        response = await self.request("POST", "/api/create", json_body=body)
        if response.status_code != 200:
            raise VersionLoadError(
                f"ollama could not create {version.name} from {self.local.base_model} "
                f"({response.status_code}: {error_message(response)}); is the base model pulled?"
            )

    async def load_version(self, version: VersionRef) -> None:
        if version.name not in await self._models():
            files = await asyncio.to_thread(_adapter_files, Path(version.path))
            if not files:
                raise VersionLoadError(
                    f"ollama has no model {version.name!r} and {version.path} holds no adapter "
                    f"weights readable here ({', '.join(_ADAPTER_SUFFIXES)}); create it with "
                    f"`ollama create {version.name} -f Modelfile` "
                    f"(FROM {self.local.base_model} / ADAPTER {version.path})"
                )
            await self._create(version, files)
        self._active = version.name

    async def unload_version(self, name: str) -> None:
        # keep_alive 0 frees the memory; the model stays on disk for a rollback.
        response = await self.request(
            "POST", "/api/generate", json_body={"model": name, "keep_alive": 0}
        )
        if response.status_code not in (200, 404):
            raise VersionLoadError(
                f"ollama could not unload {name} ({response.status_code}: "
                f"{error_message(response)})"
            )
        if self._active == name:
            self._active = None
