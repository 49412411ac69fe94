"""llama.cpp for real on the CPU: each version converted to GGUF and served by a managed server.

The ``llama_cpp`` backend without ``local.base_url``. llama-cpp-python's
OpenAI-compatible server (``python -m llama_cpp.server``) loads its models at
start-up and cannot add one at run time, so a new version is a *managed
restart*: convert the adapter to ``model.gguf`` (:mod:`.gguf_export`), start a
second server on a fresh loopback port, wait until it lists the version, switch
requests to it, then stop the old server once its in-flight requests are done.
Until the new server is healthy the old version keeps answering; a version
that fails to convert or to start is refused and nothing changes.

Requests use the server's chat endpoint (the GGUF carries the tiny chat
template) at temperature 0 with no repeat penalty: greedy decoding, as the
in-process student does, so both give the same answer to the same input.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import socket
import sys
import time
from typing import Any

import httpx

from apprentice import prompts
from apprentice.config import LocalConfig, TaskConfig
from apprentice.students import gguf_export
from apprentice.students.base import (
    Health,
    NoStudent,
    StudentAnswer,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from apprentice.students.http import HTTPStudentBase, ModelMissing, error_message, server_usage

__all__ = ["ManagedLlamaCppStudent", "ServerProcess"]

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 10.0
INSTALL_HINT = "pip install 'apprentice[llamacpp]' (llama-cpp-python[server] and gguf)"


@dataclasses.dataclass
class ServerProcess:
    """One ``llama_cpp.server`` child serving one version's GGUF on a loopback port."""

    version: str
    port: int
    process: asyncio.subprocess.Process
    log_path: str
    in_flight: int = 0
    idle: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self.idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.idle.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 600))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        with contextlib.suppress(OSError):
            os.unlink(self.log_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _first_object(text: str) -> str:
    """The text up to the end of its first JSON object, as the in-process decoder stops."""
    start = text.find("{")
    if start < 0:
        return text
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError:
        return text
    return text[:end]


class ManagedLlamaCppStudent(HTTPStudentBase):
    backend = "llama_cpp"
    start_hint = "the managed llama.cpp server stopped; promote or roll back to start it again"

    def __init__(self, local: LocalConfig, *, threads: int | None = None) -> None:
        super().__init__(local, base_url="http://127.0.0.1")
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._server: ServerProcess | None = None
        self._swap = asyncio.Lock()
        self.last_conversion_s: float | None = None

    def url(self, path: str) -> str:
        # Requests name their server's full URL: two servers live during a swap.
        return path if path.startswith("http://") else super().url(path)

    # -- answering --------------------------------------------------------------------

    async def generate(self, task: TaskConfig, task_input: dict[str, Any]) -> StudentAnswer:
        server = self._server
        if server is None or self._active is None:
            raise NoStudent()
        server.enter()
        try:
            return await self._ask(server, task, task_input)
        finally:
            server.leave()

    async def _ask(
        self, server: ServerProcess, task: TaskConfig, task_input: dict[str, Any]
    ) -> StudentAnswer:
        started = self.now()
        body = {
            "model": server.version,
            "messages": prompts.build_messages(task, task_input),
            "temperature": 0,
            "repeat_penalty": 1.0,
            "max_tokens": self.local.max_new_tokens,
        }
        response = await self.request("POST", f"{server.url}/v1/chat/completions", json_body=body)
        if response.status_code == 404:
            raise ModelMissing(f"llama_cpp does not serve {server.version!r}")
        if response.status_code != 200:
            raise StudentUnavailable(
                f"llama_cpp answered {response.status_code}: {error_message(response)}"
            )
        try:
            reply = response.json()
            text = str(reply["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise StudentUnavailable(
                "llama_cpp answered without choices[0].message.content"
            ) from exc
        return self.answer(task, _first_object(text), started, server_usage(reply))

    async def health(self) -> Health:
        server = self._server
        if server is None:
            return Health(True, "llama_cpp (managed): no version loaded yet")
        if server.process.returncode is not None:
            return Health(
                False,
                f"llama_cpp server for {server.version} exited ({server.process.returncode}); "
                f"promote or roll back to restart it. Log: {server.log_tail()[-200:]}",
            )
        if await self._lists(server):
            return Health(True, f"llama_cpp ready on {server.url}; active {server.version}")
        return Health(False, f"llama_cpp server on {server.url} does not answer /v1/models")

    # -- versions ---------------------------------------------------------------------

    async def load_version(self, version: VersionRef) -> None:
        async with self._swap:
            if self._server is not None and self._server.version == version.name:
                self._active = version.name
                return
            gguf_path = await self._convert(version)
            new = await self._start(version.name, str(gguf_path))
            old, self._server, self._active = self._server, new, version.name
            self.base_url = new.url
        if old is not None:
            await self._retire(old)

    async def unload_version(self, name: str) -> None:
        async with self._swap:
            server = self._server
            if server is None or server.version != name:
                return
            self._server, self._active = None, None
        await self._retire(server)

    async def aclose(self) -> None:
        async with self._swap:
            server, self._server, self._active = self._server, None, None
        if server is not None:
            await server.stop()
        await super().aclose()

    async def _convert(self, version: VersionRef) -> os.PathLike[str]:
        started = time.perf_counter()
        try:
            path = await asyncio.to_thread(
                gguf_export.convert_version, self.local.training_base(), version.path
            )
        except gguf_export.ConversionError as exc:
            raise VersionLoadError(f"{exc} (version {version.name} refused)") from exc
        self.last_conversion_s = time.perf_counter() - started
        log.info("llama_cpp: %s is %s (%.2fs)", version.name, path, self.last_conversion_s)
        return path

    async def _start(self, version: str, gguf_path: str) -> ServerProcess:
        """A server for ``gguf_path``, listed healthy, or VersionLoadError naming why."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise VersionLoadError(f"llama_cpp: llama-cpp-python is not installed; {INSTALL_HINT}")
        port = _free_port()
        log_path = f"{gguf_path}.{port}.log"
        args = [
            *("-m", "llama_cpp.server", "--model", gguf_path, "--model_alias", version),
            *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048"),
            *("--n_threads", str(self.threads), "--n_threads_batch", str(self.threads)),
            *("--logits_all", "false", "--verbose", "false"),
        ]
        sink = await asyncio.to_thread(open, log_path, "wb")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=sink, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            sink.close()
        server = ServerProcess(version, port, process, log_path)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.returncode is not None:
                lines = server.log_tail().splitlines() or ["no output"]
                await server.stop()
                raise VersionLoadError(
                    f"llama_cpp server refused {gguf_path} for {version} (exit "
                    f"{process.returncode}: {lines[-1][-200:]}); reconvert the version "
                    "(delete model.gguf) or check llama-cpp-python's version"
                )
            if await self._lists(server):
                return server
            await asyncio.sleep(0.2)  # polling a child process, not synchronising a test
        await server.stop()
        raise VersionLoadError(
            f"llama_cpp server for {version} was not healthy within {START_TIMEOUT_S:.0f}s; "
            "the machine may be overloaded: retry the promotion"
        )

    async def _lists(self, server: ServerProcess) -> bool:
        try:
            response = await self._client.get(f"{server.url}/v1/models", timeout=5.0)
        except httpx.HTTPError:  # a starting server refuses connections: "not yet"
            return False
        if response.status_code != 200:
            return False
        try:
            data = response.json().get("data", [])
        except (ValueError, AttributeError):
            return False
        return any(isinstance(m, dict) and m.get("id") == server.version for m in data)

    async def _retire(self, server: ServerProcess) -> None:
        """Stop ``server`` once the requests it is answering are done (bounded wait)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.idle.wait(), self.local.timeout_s)
        await server.stop()
