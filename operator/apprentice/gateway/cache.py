"""Step 0, the answer cache: a repeated input answered without calling anyone.

Per task, off unless ``cache.enabled`` (:class:`apprentice.config.tasks.CacheConfig`
says why). The key is the input's canonical JSON (its SHA-256 past 256 characters,
so a long input does not sit in memory twice); an entry is the answer the caller was
actually served (teacher's or student's) and lives ``ttl_s`` seconds on an injected
clock. A miss, the path every new input takes, only keeps a reference to that answer
(nothing on the request path changes an answer once served: HTTP serialises it, the
facade copies it); each hit or shared answer gets its own deep copy.

What a hit is, honestly:

- **No new information.** The engine does not see it: no comparison, no example, no
  sampling draw, no engine state change; it only saves money.
- **Free.** Nothing is reserved or booked, so a hit is served even when the budget is
  at its cap (the cap limits spend; a hit spends nothing).
- **Its own request.** A fresh request id, a ``requests`` row with ``route =
  local_only`` (nobody remote was called) and ``served_by = cache``; the store counts
  it (``task_counters.cache_hits``) and the status' savings count it at the task's
  average teacher cost, like a student answer.

Single flight: while a request for an input is in flight, identical requests await
its result instead of starting their own (one teacher call for fifty callers). The
first caller's pipeline runs in its own task (no extra task on the miss path); its
error, if any, is every waiter's error; if it is cancelled (its client went away) the
waiters ask again themselves, one of them leading the next flight.

Per gateway process, in memory: each replica keeps its own (a repeat that lands on
another replica calls once there), and a restart starts empty.

Invalidation: entries carry nothing of the version; instead the cache remembers the
task's (phase, active version) and empties the task's entries the first time it sees
either change (a promotion, a rollback, a phase change), before answering anything. An
answer computed under the old state is not stored.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from apprentice.gateway.parts import Parts
from apprentice.gateway.request import Meta, Result
from apprentice.gateway.tasks import ServedTask
from apprentice.json_types import JsonObject
from apprentice.prompts import canonical_json
from apprentice.store import records

__all__ = ["AnswerCache"]

Stamp = tuple[str, str | None, str | None]  # (phase, active version, canary version)
# A call in flight: empty until a caller joins it, then the future the joiners await (a
# miss nobody joins, the usual one, makes and resolves no future).
Flight = list[asyncio.Future[Result]]


@dataclass(slots=True)
class _TaskCache:
    stamp: Stamp
    state: object  # the engine state the stamp was read from (frozen: same object, same stamp)
    # key -> (expires at, the served output: each hit gets its own deep copy)
    entries: OrderedDict[str, tuple[float, JsonObject]] = field(default_factory=OrderedDict)
    flights: dict[str, Flight] = field(default_factory=dict)
    waiting: int = 0  # callers awaiting someone else's flight


def _key(task_input: JsonObject) -> str:
    """An entry's key: the input's canonical JSON, or its SHA-256 past 256 characters."""
    text = canonical_json(task_input)
    return text if len(text) <= 256 else hashlib.sha256(text.encode()).hexdigest()


class AnswerCache:
    """See the module docstring. ``clock``: seconds, monotonic (tests inject one)."""

    def __init__(self, parts: Parts, clock: Callable[[], float] = time.monotonic) -> None:
        self.parts = parts
        self.clock = clock
        self._tasks: dict[str, _TaskCache] = {}

    def waiting(self, task: str) -> int:
        """Callers of ``task`` now awaiting an identical request's call (single flight)."""
        cache = self._tasks.get(task)
        return 0 if cache is None else cache.waiting

    async def run(
        self,
        task: ServedTask,
        task_input: object,
        meta: Meta,
        compute: Callable[[], Awaitable[Result]],
    ) -> Result:
        """A stored answer, a share of the identical call in flight, or ``compute()``'s."""
        started = time.perf_counter()
        if not isinstance(task_input, dict):  # never valid input: admission says why
            return await compute()
        key = _key(task_input)
        cache = self._current(task)
        entry = cache.entries.get(key)
        if entry is not None:
            if entry[0] > self.clock():
                cache.entries.move_to_end(key)
                answer = copy.deepcopy(entry[1])
                return self._serve(task, task_input, answer, meta, "hit", started)
            del cache.entries[key]
        flight = cache.flights.get(key)
        if flight is not None:
            if not flight:
                flight.append(asyncio.get_running_loop().create_future())
            result = await self._join(cache, flight[0])
            if result is None:  # the first caller was cancelled: this one asks itself
                return await self.run(task, task_input, meta, compute)
            answer = copy.deepcopy(result.output)
            return self._serve(task, task_input, answer, meta, "shared", started)
        self.parts.metrics.record_cache(task.name, "miss")
        return await self._lead(task, cache, key, compute)

    async def _lead(
        self,
        task: ServedTask,
        cache: _TaskCache,
        key: str,
        compute: Callable[[], Awaitable[Result]],
    ) -> Result:
        """Run ``compute()`` in this caller's task (no extra task on the miss path) and
        hand its result, or its error, to those who joined meanwhile."""
        flight: Flight = []
        cache.flights[key] = flight
        stamp = cache.stamp
        try:
            result = await compute()
        except BaseException as exc:
            self._drop(task, key, flight)
            if not flight:  # nobody joined
                raise
            if isinstance(exc, asyncio.CancelledError):
                flight[0].cancel()
            else:
                flight[0].set_exception(exc)
                flight[0].exception()  # retrieved: no stray warning when nobody awaits it
            raise
        cache = self._drop(task, key, flight)
        if cache.stamp == stamp:  # else answered under a phase or version that is gone
            limits = task.cfg.cache
            cache.entries[key] = (self.clock() + limits.ttl_s, result.output)
            while len(cache.entries) > limits.max_entries:
                cache.entries.popitem(last=False)
        if flight:
            flight[0].set_result(result)
        return result

    async def _join(self, cache: _TaskCache, flight: asyncio.Future[Result]) -> Result | None:
        """The flight's result; ``None`` when its caller was cancelled (not this one)."""
        cache.waiting += 1
        try:
            return await asyncio.shield(flight)  # this caller's cancel must not cancel it
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if flight.cancelled() and current is not None and not current.cancelling():
                return None
            raise
        finally:
            cache.waiting -= 1

    def _current(self, task: ServedTask) -> _TaskCache:
        """The task's cache, emptied first if its phase, active version or canary changed
        (a rolled-back candidate's answers must not outlive it)."""
        canary = None if task.canary is None else task.canary.version
        state = task.engine.state
        cache = self._tasks.get(task.name)
        if cache is not None and cache.state is state and cache.stamp[2] == canary:
            return cache  # the usual case, without reading the phase's name again
        stamp: Stamp = (task.engine.phase_name(), task.engine.active_version, canary)
        if cache is None:
            cache = self._tasks[task.name] = _TaskCache(stamp, state)
        elif cache.stamp != stamp:
            cache.entries.clear()  # flights keep running; they will not be stored
            cache.stamp = stamp
        cache.state = state
        return cache

    def _drop(self, task: ServedTask, key: str, flight: Flight) -> _TaskCache:
        cache = self._current(task)
        if cache.flights.get(key) is flight:
            del cache.flights[key]
        return cache

    def _serve(
        self,
        task: ServedTask,
        task_input: JsonObject,
        output: JsonObject,
        meta: Meta,
        how: str,
        started: float,
    ) -> Result:
        """Answer from the cache: its own request id and row (with the input and the answer
        served, for feedback); counted, never routed."""
        parts, name = self.parts, task.name
        rid = parts.new_request_id()
        seconds = time.perf_counter() - started
        row = records.request_row(
            id=rid, task=name, received_at=datetime.now(UTC), route="local_only",
            served_by="cache", teacher_model=None, teacher_provider=None, student_version=None,
            latency_ms=seconds * 1000, error=None, cost=0.0, tags=dict(meta.tags),
            caller=meta.caller, input=task_input, output=output,
        )  # fmt: skip
        # Nothing here may be lost (no spend, no example): answer without the fsync.
        parts.writer.write_behind("a cached answer", row)
        m = parts.metrics
        m.record_cache(name, how)
        m.record_request(name, "local_only", "cache", seconds)
        m.record_savings(name, task.avg_teacher_cost())
        return Result(output, rid)
