"""The gateway app on a listening socket, with the limits that protect it from slow clients.

A client that connects and then sends nothing, half a request head or half a body
holds a socket, a buffer and a task for as long as the server lets it; a few
hundred such clients starve everyone else. Three limits from ``gateway`` in the
config bound that:

- ``header_timeout_s``: the request line and headers must arrive within it, counted
  from when the connection opens or its previous answer ended (aiohttp's
  keep-alive timer, which also closes a connection that sits idle that long);
- ``body_timeout_s``: the whole body must arrive within it, else 408 and the
  connection is closed (see :mod:`apprentice.gateway.reading`);
- ``max_connections``: open connections. One more is answered ``503`` with
  ``Retry-After: 1`` and closed at once, before it costs a request handler.
  Counting happens when the connection is accepted, so a burst cannot overshoot.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import sys
import time
import weakref
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from apprentice.config import GatewayConfig
from apprentice.config.errors import docs_url

__all__ = ["Listener", "listen", "tune_process"]

SWITCH_INTERVAL_S = 0.0005
"""The GIL switch interval while serving: the store writer is a thread, and with the
default 5 ms a commit's Python half can hold the event loop for up to 5 ms."""
LISTEN_BACKLOG = 4096
"""New connections the kernel completes before the server accepts them (asyncio's default
is 100). With 100, a client pool that dials a few hundred connections at once (a proxy in
front of many callers, a load balancer warming up) overflows the queue: the kernel drops
the extra handshakes, and those clients fail or wait a second for a SYN retry. Connections
past ``gateway.max_connections`` are still accepted, to be answered 503. Linux caps it at
``net.core.somaxconn`` (4,096 by default since 5.4)."""
GC_THRESHOLDS = (10_000, 1_000, 100)
"""The collector's thresholds while serving (CPython's default is (700, 10, 10)). A
request that waits a second on its teacher keeps a few hundred objects alive; at
1,000 in flight the default collects them dozens of times a second, promotes them
and ends in collections of the whole in-flight set, 70-170 ms each: pauses that every
request in flight waits out. Here young collections come every 10,000 allocations
(request garbage mostly dies by reference counting first) and older ones rarely
(bench/teacher_bench.py, 1 s teacher at 1,000/s on a quiet machine: p99 1,071-1,093
ms with the default, 1,047-1,056 ms with these; cycles inside the young generation
are still collected by every young collection)."""


YOUNG_SWEEP_S = 0.05
"""How often the serving loop collects the young generation itself. CPython counts a
young collection's 10,000 as allocations minus deallocations of any age, so while
requests that waited on their teacher die as fast as new ones arrive, the young
generation grows far past it: at 1,000 calls of a 1 s teacher in flight, young
collections of 85,000-90,000 objects took 40-60 ms of CPU each, which every call in
flight waits out. Swept every 50 ms it holds 10,000-14,000: the longest collection
fell to 2-4 ms, the collector's CPU by about half and the call's p99 from
1,159-1,213 to 1,012-1,047 ms (bench/teacher_bench.py's call at 1,000/s, runs
alternated on a busy machine). Survivors reach the middle generation sooner, so it
is collected about every 50 s instead of every few minutes."""
IDLE_SWEEP_S = 1.0
"""The longest the sweep waits while there is little to sweep: a nearly idle gateway
wakes once a second for it, not 20 times (its idle CPU, bench/teacher_bench.py)."""
SMALL_SWEEP_S = 0.002
"""Young collections shorter than this found little: the next sweep waits twice as
long, up to ``IDLE_SWEEP_S``; a longer one sets ``YOUNG_SWEEP_S`` again. Sweeping finds
little when nothing is in flight, and when calls are short: the young generation then
holds about the calls in flight (64 instant calls: ~6,400 objects, ~1 ms), however long
the wait, so sweeping it 20 times a second only repeats that cost (~14 us a request).
Calls that live longer grow it with the wait (1 s calls at 1,000/s: ~2-3 ms at 50 ms),
which keeps the sweep at 50 ms.

What decides is the longest young collection since the last sweep, CPython's own
included (:class:`_YoungCollections`), not the sweep's alone: a sweep right after
CPython's own collection finds nothing whatever the traffic. Timing the sweep alone,
that backed it off to once a second under steady 1 s calls at 1,000/s, and CPython's
threshold then fired on young generations of a whole second's survivors: collections
of 49, 70 and 98 ms, a second apart, which every call in flight waited out (that run's
p99 1,253 ms against 1,046 ms in the next, which kept sweeping every 50 ms)."""


class _YoungCollections:
    """A ``gc.callbacks`` entry: the longest young collection since :meth:`take`."""

    def __init__(self) -> None:
        self._started = 0.0
        self.longest = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] > 1:  # an old collection says nothing of the young rate
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.note(time.perf_counter() - self._started)

    def note(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)

    def take(self) -> float:
        """The longest since the last call (seconds), and start over."""
        longest, self.longest = self.longest, 0.0
        return longest


_YOUNG = _YoungCollections()


def tune_process() -> None:
    """Tune the interpreter for serving, once start-up is done (``apprentice serve``).

    Start-up objects (config, models, compiled schemas) move to the permanent
    generation, so collections scan only request garbage; see ``GC_THRESHOLDS``,
    ``YOUNG_SWEEP_S`` and ``SWITCH_INTERVAL_S`` for the rest. The benchmarks call this
    too, so that they measure what ``serve`` runs. Called in a running loop, the loop
    sweeps the young generation from then on.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if _YOUNG not in gc.callbacks:
        gc.callbacks.append(_YOUNG)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop to sweep from (a script): the thresholds alone
    if loop not in _SWEPT:  # once per loop, however often this is called
        _SWEPT.add(loop)
        loop.call_later(YOUNG_SWEEP_S, _sweep_young, loop, YOUNG_SWEEP_S)


_SWEPT: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def _sweep_young(loop: asyncio.AbstractEventLoop, interval: float) -> None:
    gc.collect(0)
    found_little = _YOUNG.take() < SMALL_SWEEP_S  # this sweep's and any since the last one
    interval = min(interval * 2, IDLE_SWEEP_S) if found_little else YOUNG_SWEEP_S
    loop.call_later(interval, _sweep_young, loop, interval)


def _refusal(limit: int) -> bytes:
    body = json.dumps(
        {
            "error": {
                "type": "overloaded",
                "message": f"{limit} connections open (gateway.max_connections); retry shortly",
                "details": {"max_connections": limit},
                "docs": docs_url("gateway", "overloaded"),
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Gate:
    """How many connections are open; shared by every protocol of one listener."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.refused = 0
        self.refusal = _refusal(limit)


class _Refused(asyncio.Protocol):
    """Answers 503 and hangs up; never reads the request."""

    def __init__(self, gate: _Gate) -> None:
        self._gate = gate

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport writes; taken as one, not checked with isinstance: uvloop's
        # transports do not subclass asyncio's classes (an isinstance assert here failed
        # on uvloop, and the refused client never got its 503).
        stream = cast(asyncio.WriteTransport, transport)
        self._gate.refused += 1
        stream.write(self._gate.refusal)
        stream.close()


class _Counted(asyncio.Protocol):
    """aiohttp's request handler, counted in and out of the gate."""

    __slots__ = ("_gate", "_inner")

    def __init__(self, inner: asyncio.Protocol, gate: _Gate) -> None:
        self._inner = inner
        self._gate = gate
        gate.open += 1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._gate.open -= 1
        self._inner.connection_lost(exc)


@dataclass
class Listener:
    """A started gateway socket; ``close()`` stops accepting, then drains the app."""

    runner: web.AppRunner
    server: asyncio.Server
    gate: _Gate

    @property
    def port(self) -> int:
        sock: socket.socket = self.server.sockets[0]
        return int(sock.getsockname()[1])

    @property
    def open_connections(self) -> int:
        return self.gate.open

    async def close(self) -> None:
        self.server.close()
        await self.runner.cleanup()
        await self.server.wait_closed()


async def listen(app: web.Application, cfg: GatewayConfig, host: str, port: int) -> Listener:
    """Serve ``app`` on ``host:port`` (0: any free port) under ``cfg``'s client limits."""
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=cfg.header_timeout_s)
    await runner.setup()
    handlers = runner.server
    assert handlers is not None
    gate = _Gate(cfg.max_connections)

    def protocol() -> asyncio.Protocol:
        if gate.open >= gate.limit:
            return _Refused(gate)
        return _Counted(handlers(), gate)

    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            protocol, host, port, reuse_address=True, backlog=LISTEN_BACKLOG
        )
    except BaseException:
        await runner.cleanup()
        raise
    return Listener(runner, server, gate)
