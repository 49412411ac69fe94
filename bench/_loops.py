"""The in-process load loops the benches share (gateway, features, the paid path).

``open_loop`` fires requests at fixed times on this process's event loop and counts
latency from each scheduled time; ``closed_loop`` keeps a number of calls in flight;
``trials`` takes the median of a few open-loop runs by p99. ``process_cpu`` reads a
process's CPU time from /proc (a server child's cost per request). ``serve_on`` runs a
server child's coroutine on the event loop ``apprentice serve`` picks (uvloop when
installed; ``BENCH_EVENT_LOOP=asyncio|uvloop`` in the environment forces one, for an
A/B of the loops), and ``server_loop`` names that loop for the reports.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Literal

TRIALS = 3


LOOP_ENV = "BENCH_EVENT_LOOP"
"""auto (the default: as ``apprentice serve`` picks), asyncio or uvloop; children inherit it."""


def serve_on(main: Coroutine[Any, Any, None]) -> None:
    """Run a server child's ``main`` on the loop ``apprentice serve`` runs on (uvloop when
    installed), so that the benches measure what it serves with."""
    try:
        from apprentice.gateway import event_loop
    except ImportError:  # an older core (a --before run): its `serve` ran asyncio's loop
        asyncio.run(main)
        return
    event_loop.run(main, _choice())


def server_loop() -> str:
    """The event loop of ``serve_on`` here: ``uvloop 0.23.0`` or ``asyncio`` (the report
    headers say which loop served)."""
    try:
        from apprentice.gateway import event_loop
    except ImportError:  # an older core: asyncio's loop
        return "asyncio"
    return event_loop.chosen(_choice())


def _choice() -> Literal["auto", "asyncio", "uvloop"]:
    choice = os.environ.get(LOOP_ENV, "auto")
    if choice not in ("auto", "asyncio", "uvloop"):
        raise SystemExit(f"{LOOP_ENV}={choice!r}: expected auto, asyncio or uvloop")
    return choice  # type: ignore[return-value]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(
    lat_s: list[float], errors: int, seconds: float, from_send_s: list[float] | None = None
) -> dict[str, Any]:
    ms = [v * 1000 for v in lat_s]
    out = {
        "requests": len(ms),
        "errors": errors,
        "achieved_rps": round(len(ms) / seconds, 1),
        "p50_ms": round(_pct(ms, 0.50), 3),
        "p99_ms": round(_pct(ms, 0.99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }
    if from_send_s:  # counted from when the call started: the loop's timer lateness out
        out["from_send_p50_ms"] = round(_pct(from_send_s, 0.50) * 1000, 4)
        out["from_send_p99_ms"] = round(_pct(from_send_s, 0.99) * 1000, 4)
    return out


async def open_loop(call: Any, rate: int, seconds: float) -> dict[str, Any]:
    """Requests fired at fixed times; latency counts from the scheduled time."""
    n = int(rate * seconds)
    lat: list[float] = []
    from_send: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05

    async def one(i: int, at: float) -> None:
        nonlocal errors
        started = loop.time()
        try:
            await call(i)
        except Exception:
            errors += 1
            return
        done = loop.time()
        lat.append(done - at)
        from_send.append(done - started)

    tasks = []
    for i in range(n):
        at = t0 + i / rate
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, at)))
    await asyncio.gather(*tasks)
    return _summary(lat, errors, seconds, from_send)


async def trials(call: Any, rate: int, seconds: float, n: int = TRIALS) -> dict[str, Any]:
    """``n`` open-loop runs; the median run by p99 (this VM is shared: single runs are noisy)."""
    runs = [await open_loop(call, rate, seconds) for _ in range(n)]
    return {**median_by_p99(runs), "p99_ms_trials": [r["p99_ms"] for r in runs]}


def median_by_p99(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose p99 is the median (the upper one of an even count)."""
    return sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2]


async def closed_loop(call: Any, seconds: float, workers: int = 64) -> float:
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < stop_at:
            await call(i)
            done += 1
            i += workers

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(workers)))
    return done / (time.perf_counter() - started)


_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK
