"""The Python facade: ``Apprentice.from_config(path)`` then ``await app.run(task, input)``.

One object owns the whole embedded default: the store, the teachers, the student,
the evaluators, the per-task engine state and the orchestrator. The HTTP gateway,
``apprentice batch`` and ``apprentice demo`` all call through it, so a script, a
batch and an HTTP client take exactly the same request path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

from apprentice import config as config_mod
from apprentice.config import ApprenticeConfig
from apprentice.gateway import reading
from apprentice.gateway.service import Gateway, Result
from apprentice.json_types import JsonObject, JsonValue

__all__ = ["Apprentice", "Result", "SyncApprentice"]

T = TypeVar("T")


def _own(value: T) -> T:
    """A copy of a JSON tree's dicts and lists (an answer: depth bounded by its schema)."""
    if isinstance(value, dict):
        return cast(T, {k: _own(v) for k, v in value.items()})
    if isinstance(value, list):
        return cast(T, [_own(v) for v in value])
    return value


class _Refused(Exception):
    """A string or a depth that :func:`reading.check_tree` refuses, with its message."""


def _owned_input(node: JsonValue, depth: int = 0) -> JsonValue:
    """:func:`_own` and the boundary check in one walk: a string that is not plain
    ASCII must encode (no lone surrogate), no node deeper than ``MAX_DEPTH``."""
    if isinstance(node, str):
        if not node.isascii():
            node.encode("utf-8")  # UnicodeEncodeError: a lone surrogate
        return node
    if isinstance(node, dict):
        if node and depth >= reading.MAX_DEPTH:
            raise _Refused
        out: dict[str, JsonValue] = {}
        for key, item in node.items():
            if not key.isascii():
                key.encode("utf-8")
            out[key] = _owned_input(item, depth + 1)
        return out
    if isinstance(node, list):
        if node and depth >= reading.MAX_DEPTH:
            raise _Refused
        return [_owned_input(item, depth + 1) for item in node]
    return node


def own_input(task_input: JsonObject) -> JsonObject:
    """The gateway's own copy of ``task_input``, refused (400) where HTTP refuses it."""
    try:
        owned = _owned_input(task_input)
    except (_Refused, UnicodeEncodeError, AttributeError):
        # check_tree raises the error (with its path) that HTTP would send
        reading.check_tree(task_input, deep=True, surrogates=True, what="input")
        raise
    return cast(JsonObject, owned)  # not an object: the pipeline refuses it (InvalidInput)


class Apprentice:
    """The unified interface; use ``async with Apprentice.from_config(...) as app``."""

    def __init__(self, cfg: ApprenticeConfig, **inject: Any) -> None:
        self.config = cfg
        self.gateway = Gateway(cfg, **inject)

    @classmethod
    def from_config(cls, source: str | Path | ApprenticeConfig, **inject: Any) -> Apprentice:
        """Build from a path to ``apprentice.yaml`` or an already loaded config.

        ``inject`` (keyword-only, for tests, benchmarks and embedding): ``teachers``
        (a TeacherPool), ``student_factory`` (TaskConfig -> Student),
        ``trainer_command`` (argv the ``--spec`` is appended to) and
        ``validation_threshold`` (held-out score a version needs; default the task's
        ``phase2_to_phase3``).
        """
        if isinstance(source, ApprenticeConfig):
            return cls(source, **inject)
        return cls(config_mod.load(Path(source)), **inject)

    async def start(self) -> None:
        """Open the store, rebuild engine state and budget, load the active adapters."""
        await self.gateway.start()

    async def close(self) -> None:
        """Stop background training, flush alerts, close the store and clients."""
        await self.gateway.close()

    async def __aenter__(self) -> Apprentice:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def run(self, task: str, task_input: dict[str, Any]) -> Result:
        """Answer one request; raises :mod:`apprentice.gateway.errors` on failure.

        The gateway keeps its own copies of the input and of the answer: a local answer
        returns before its row (which holds both, for feedback) is written, and a caller
        may reuse or change its dicts at once (HTTP parses fresh ones: no copy there)."""
        # What HTTP refuses at its boundary (a lone surrogate no teacher can be sent,
        # nesting deeper than any store will take) is refused here too, as a 400.
        result = await self.gateway.run(task, own_input(task_input))
        return Result(_own(result.output), result.request_id, result.usage)

    @property
    def store(self) -> Any:
        """The open store (``apprentice.store.Store``)."""
        return self.gateway.store

    def check_task(self, task: str) -> None:
        """Raise :class:`~apprentice.gateway.errors.UnknownTask` for an unknown name."""
        self.gateway.check_task(task)

    def training_due_or_running(self, task: str) -> bool:
        """Whether ``task`` has a training run running, or due and about to start."""
        return self.gateway.training_due_or_running(task)

    async def flush(self) -> None:
        """Wait until every store write queued so far is committed (before reading the store)."""
        await self.gateway.flush()

    def task_names(self) -> list[str]:
        return [t.name for t in self.config.tasks]

    def engine_state(self, task: str) -> Any:
        """The engine's current state object for ``task`` (read-only use)."""
        return self.gateway.engine_state(task)

    async def status(self, task: str) -> dict[str, Any]:
        """The contract's TaskStatus JSON for ``task``."""
        self.gateway.check_task(task)
        return await self.gateway.status(task)

    def training_in_progress(self, task: str) -> bool:
        return self.gateway.training_in_progress(task)

    async def wait_for_training_idle(self, task: str | None = None) -> None:
        """Return once no training run is due or running (for ``task`` or all tasks)."""
        await self.gateway.wait_for_training_idle(task)


class SyncApprentice:
    """A blocking wrapper for scripts: its own event loop on a background thread."""

    def __init__(self, source: str | Path | ApprenticeConfig, **inject: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.app = Apprentice.from_config(source, **inject)
        try:
            self._call(self.app.start())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def run(self, task: str, task_input: dict[str, Any]) -> Result:
        return self._call(self.app.run(task, task_input))

    def status(self, task: str) -> dict[str, Any]:
        return self._call(self.app.status(task))

    def wait_for_training_idle(self, task: str | None = None) -> None:
        self._call(self.app.wait_for_training_idle(task))

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self._call(self.app.close())
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SyncApprentice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
