"""Ollama: each version is an Ollama model made from the base plus that version's LoRA adapter.

Promotion follows Ollama's documented API (``docs/api.md``):

1. every adapter file is a blob: ``HEAD /api/blobs/sha256:<hex>`` (200: already
   there, 404: not) and ``POST /api/blobs/sha256:<hex>`` with the bytes (201);
2. ``POST /api/create {"model": "apprentice-<task>:<version>", "from": <serve base>,
   "adapters": {file name: digest}, "stream": false}``. A peft adapter goes as
   ``adapter_model.safetensors`` *and* ``adapter_config.json`` (Ollama reads the
   rank and alpha from it and converts the adapter itself, for llama and gemma2
   bases); a GGUF adapter goes as its one ``.gguf`` file;
3. health check: ``POST /api/chat`` with no messages loads the model (``done_reason:
   load``); only a model that loads becomes the active one;
4. requests go to ``/api/chat`` with ``format`` = the output JSON Schema;
5. after a switch, models of this task older than the last ``local.keep_versions``
   are deleted (``DELETE /api/delete``). A rollback to a deleted version recreates
   it from its adapter directory, which the store keeps.

The server is ``local.base_url``, else ``$OLLAMA_HOST`` (Ollama's own variable),
else ``http://localhost:11434``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from apprentice import prompts
from apprentice.config import LocalConfig, TaskConfig
from apprentice.config.base_models import OLLAMA_ADAPTER_ARCHITECTURES
from apprentice.students.base import (
    Health,
    NoStudent,
    StudentAnswer,
    StudentError,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from apprentice.students.http import HTTPStudentBase, error_message
from apprentice.teachers.base import TextSink, Usage

__all__ = ["DEFAULT_URL", "OllamaStudent", "adapter_files", "default_base_url", "model_name"]

DEFAULT_URL = "http://localhost:11434"
_VERSION = re.compile(r"^v(\d+)$")


def default_base_url(env: Mapping[str, str] | None = None) -> str:
    """``$OLLAMA_HOST`` as Ollama's CLI reads it (``host[:port]`` or a URL), else the default."""
    host = (os.environ if env is None else env).get("OLLAMA_HOST", "").strip()
    if not host:
        return DEFAULT_URL
    parts = urlsplit(host if "://" in host else f"http://{host}")
    hostname = parts.hostname or "localhost"
    if hostname in ("0.0.0.0", "::"):  # a bind address: the server listens on every interface
        hostname = "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{parts.scheme}://{hostname}:{parts.port or 11434}"


def model_name(task: str | None, version: str) -> str:
    """The Ollama model of one version: ``apprentice-<task>:<version>``."""
    return f"apprentice-{task}:{version}" if task else f"apprentice:{version}"


def adapter_files(directory: Path) -> dict[str, Path]:
    """The files Ollama needs for the adapter in ``directory`` (file name -> path).

    Raises :class:`VersionLoadError` naming what is missing: Ollama accepts one GGUF
    adapter, or a safetensors adapter with its ``adapter_config.json``.
    """
    if not directory.is_dir():
        raise VersionLoadError(
            f"ollama: adapter directory {directory} is not readable by the gateway; mount the "
            "model volume here (local.model_dir) so the adapter can be uploaded to Ollama"
        )
    ggufs = sorted(p for p in directory.glob("*.gguf") if p.is_file())
    if len(ggufs) > 1:
        raise VersionLoadError(
            f"ollama accepts one adapter file per model and {directory} holds "
            f"{len(ggufs)} GGUF files ({', '.join(p.name for p in ggufs)}); keep one"
        )
    if ggufs:
        return {ggufs[0].name: ggufs[0]}
    weights = directory / "adapter_model.safetensors"
    config = directory / "adapter_config.json"
    if weights.is_file() and config.is_file():
        return {weights.name: weights, config.name: config}
    if (directory / "adapter_model.bin").is_file():
        raise VersionLoadError(
            f"ollama cannot read the pickled adapter {directory}/adapter_model.bin; save the "
            "adapter as safetensors (peft save_pretrained(safe_serialization=True))"
        )
    raise VersionLoadError(
        f"ollama: {directory} holds no adapter Ollama can read (adapter_model.safetensors "
        "with adapter_config.json, or one .gguf); was the version trained?"
    )


def _read_and_hash(files: dict[str, Path]) -> list[tuple[str, str, bytes]]:
    out = []
    for name, path in files.items():
        data = path.read_bytes()
        out.append((name, "sha256:" + hashlib.sha256(data).hexdigest(), data))
    return out


class OllamaStudent(HTTPStudentBase):
    backend = "ollama"
    start_hint = (
        "start it with `ollama serve`, or point local.base_url (or OLLAMA_HOST) at the server"
    )

    def __init__(
        self,
        local: LocalConfig,
        *,
        task: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            local, transport=transport, base_url=local.base_url or default_base_url(env)
        )
        self.task = task
        self.base = local.serving_base()
        self._paths: dict[str, str] = {}  # version -> adapter directory (to recreate)

    def model(self, version: str) -> str:
        return model_name(self.task, version)

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
        return await self.generate_stream(task, task_input, sink=None)

    async def generate_stream(
        self, task: TaskConfig, task_input: dict[str, Any], *, sink: TextSink | None
    ) -> StudentAnswer:
        """``generate``; with ``sink``, the text streamed to it as Ollama generates it
        (``stream: true``: one JSON object a line, the counts on the ``done`` one)."""
        version = self._active
        if version is None:
            raise NoStudent()
        started = self.now()
        body = self.request_body(task, task_input, self.model(version))
        reply = await self._chat(body, sink)
        if reply is None and version in self._paths:
            # Deleted behind our back (``ollama rm``): recreate from the adapter, once.
            await self._create(VersionRef(version, self._paths[version]))
            reply = await self._chat(body, sink)
        if reply is None:
            raise StudentUnavailable(f"ollama has no model {self.model(version)} (404)")
        text = reply.get("message", {}).get("content")
        if not isinstance(text, str):
            raise StudentUnavailable("ollama answered without message.content")
        return self.answer(task, text, started, _ollama_usage(reply))

    async def _chat(self, body: dict[str, Any], sink: TextSink | None) -> dict[str, Any] | None:
        """The whole reply (``None``: 404, no such model), streamed to ``sink`` if given."""
        if sink is None:
            response = await self.request("POST", "/api/chat", json_body=body)
            if response.status_code == 404:
                return None
            self._check(response, body)
            try:
                reply = response.json()
            except ValueError as exc:
                raise StudentUnavailable("ollama answered without JSON") from exc
            return reply if isinstance(reply, dict) else {}
        pieces: list[str] = []
        last: dict[str, Any] = {}
        try:
            async with self._client.stream("POST", self.url("/api/chat"),
                                           json={**body, "stream": True}) as response:  # fmt: skip
                if response.status_code == 404:
                    return None
                if response.status_code != 200:
                    await response.aread()
                    self._check(response, body)
                async for line in response.aiter_lines():
                    last = _line(line) if line.strip() else last
                    piece = (last.get("message") or {}).get("content")
                    if isinstance(piece, str) and piece:
                        pieces.append(piece)
                        sink(piece)
        except httpx.HTTPError as exc:
            raise StudentUnavailable(f"ollama's stream failed ({type(exc).__name__})") from exc
        if not last.get("done"):
            raise StudentUnavailable("ollama's stream ended before its done line")
        return {**last, "message": {"role": "assistant", "content": "".join(pieces)}}

    def _check(self, response: httpx.Response, body: dict[str, Any]) -> None:
        if response.status_code != 200:
            raise StudentUnavailable(
                f"ollama answered {response.status_code} for model {body['model']}: "
                f"{error_message(response)}"
            )

    async def health(self) -> Health:
        try:
            response = await self.request("GET", "/api/version")
        except StudentUnavailable as exc:
            return Health(False, str(exc))
        if response.status_code != 200:
            return Health(False, f"ollama /api/version answered {response.status_code}")
        version = response.json().get("version", "?")
        active = None if self._active is None else self.model(self._active)
        if active is not None:
            try:
                models = await self._models()
            except StudentError as exc:
                return Health(False, str(exc))
            if active not in models:
                return Health(False, f"ollama {version} has no model {active}; it was deleted")
        return Health(True, f"ollama {version} ready; active model {active or 'none'}")

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

    async def _upload(self, name: str, digest: str, data: bytes) -> None:
        head = await self.request("HEAD", f"/api/blobs/{digest}", ok=(200, 404))
        if head.status_code == 200:
            return
        response = await self.request("POST", f"/api/blobs/{digest}", content=data)
        if response.status_code not in (200, 201):
            raise VersionLoadError(
                f"ollama refused blob {name} ({response.status_code}: "
                f"{error_message(response)}); the file may have changed while uploading: retry"
            )

    async def _create(self, version: VersionRef) -> None:
        files = await asyncio.to_thread(adapter_files, Path(version.path))
        adapters: dict[str, str] = {}
        for name, digest, data in await asyncio.to_thread(_read_and_hash, files):
            await self._upload(name, digest, data)
            adapters[name] = digest
        body = {
            "model": self.model(version.name),
            "from": self.base,
            "adapters": adapters,
            "stream": False,
        }
        response = await self.request("POST", "/api/create", json_body=body, ok=(500,))
        if response.status_code != 200:
            message = error_message(response)
            hint = "check the adapter was trained on the Hugging Face weights of " + self.base
            if "architecture" in message:
                hint = (
                    "Ollama converts safetensors adapters for "
                    f"{'/'.join(sorted(OLLAMA_ADAPTER_ARCHITECTURES))} bases only; serve this "
                    "base with local.backend: vllm or give Ollama a GGUF adapter"
                )
            elif "pull" in message or "not found" in message:
                hint = f"run `ollama pull {self.base}` on the Ollama server"
            raise VersionLoadError(
                f"ollama could not create {body['model']} from {self.base} with the adapter "
                f"of {version.name} ({response.status_code}: {message}); {hint}"
            )

    async def _load(self, model: str) -> None:
        """Health check: the model must load (``/api/chat`` with no messages)."""
        response = await self.request(
            "POST",
            "/api/chat",
            json_body={"model": model, "messages": [], "stream": False},
            ok=(500,),  # a runner that cannot load the model: the version is refused
        )
        if response.status_code != 200:
            raise VersionLoadError(
                f"ollama created {model} but cannot load it ({response.status_code}: "
                f"{error_message(response)}); the adapter may not match {self.base}"
            )

    async def load_version(self, version: VersionRef) -> None:
        model = self.model(version.name)
        models = await self._models()
        if model not in models:
            if self.base not in models and f"{self.base}:latest" not in models:
                raise VersionLoadError(
                    f"ollama has no base model {self.base!r} to apply {version.name}'s adapter "
                    f"to; run `ollama pull {self.base}` on the Ollama server (or set "
                    "local.serve_base to a model it has)"
                )
            await self._create(version)
        await self._load(model)
        previous = self._active
        self._paths[version.name] = version.path
        self._active = version.name
        if previous is not None and previous != version.name:
            await self._prune(models | {model})

    async def _prune(self, models: set[str]) -> None:
        """Delete this task's models older than the rollback window (``keep_versions``)."""
        current = _VERSION.match(self._active or "")
        if current is None:
            return
        active = int(current.group(1))
        prefix = self.model("")
        older = sorted(
            (int(m.group(1)), name)
            for name in models
            if name.startswith(prefix) and (m := _VERSION.match(name[len(prefix) :]))
            if int(m.group(1)) < active
        )
        keep = self.local.keep_versions
        for _, name in older[: max(0, len(older) - keep)]:
            await self._delete(name)

    async def _delete(self, model: str) -> None:
        response = await self.request(
            "DELETE", "/api/delete", json_body={"model": model}, ok=(200, 404)
        )
        if response.status_code not in (200, 404):
            raise VersionLoadError(
                f"ollama could not delete {model} ({response.status_code}: "
                f"{error_message(response)})"
            )

    async def unload_version(self, name: str) -> None:
        """Delete a version's model (a rejected candidate); its adapter stays on disk."""
        if self._active == name:
            self._active = None
        self._paths.pop(name, None)
        await self._delete(self.model(name))


def _line(line: str) -> dict[str, Any]:
    """One line of a streamed reply; an ``error`` line (a runner that died) fails."""
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise StudentUnavailable(
            f"ollama streamed a line that is not JSON: {line[:200]!r}"
        ) from exc
    if not isinstance(value, dict) or "error" in value:
        raise StudentUnavailable(f"ollama's stream failed: {str(value)[:300]}")
    return value


def _ollama_usage(reply: dict[str, Any]) -> Usage | None:
    """Ollama's own counts: ``prompt_eval_count`` (prompt) and ``eval_count`` (answer)."""
    prompt, answer = reply.get("prompt_eval_count"), reply.get("eval_count")
    if isinstance(prompt, int) and isinstance(answer, int):
        return Usage(prompt, answer)
    return None
