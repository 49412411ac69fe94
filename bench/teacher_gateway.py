"""The whole gateway as a proxy in front of the loopback teacher (``teacher_bench.py``).

The teacher bench's pools measure one teacher call (:meth:`RemoteTeacher.generate`);
LiteLLM's figure is a whole proxy. This measures Apprentice the same way:
``apprentice serve`` (the real command, one process) with one task in cold start,
so every request is admitted, reserved against the budget in the store, sent to the
teacher, validated, stored as an example with its spend line and answered once that
transaction is durable (SQLite, ``synchronous=FULL``). Its CPU is the serve
process's, raw and net of its idle CPU (measured first, with no traffic, on the same
process). Two measurements:

- ``instant``: the instant teacher, 64 requests in flight, closed loop;
- ``slow``: the teacher answering after 1 s, open loop at each of ``rates`` requests/s.

Used by ``teacher_bench.py --gateway``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

KEY_ENV = "BENCH_TEACHER_KEY"
IDLE_S = 10.0
"""Seconds the idle CPU of each gateway is measured over (see :func:`idle_cpu`)."""
SERVE = "from apprentice.cli import main; raise SystemExit(main())"
"""``apprentice serve`` with this interpreter (the venv's console script may not be on PATH)."""


def write_config(directory: Path, base_url: str) -> Path:
    """One task in cold start whose teacher is ``base_url`` (priced as gpt-4o)."""
    cfg = {
        "tasks": [
            {
                "name": "classify_ticket",
                "input_schema": {"text": "str"},
                "output_schema": {"category": "str", "priority": "int"},
                "evaluator": "exact_match",
            }
        ],
        "remote": {
            "provider": "openai_compatible",
            "model": "gpt-4o",
            "base_url": base_url,
            "api_key_env": KEY_ENV,
            "timeout_s": 30,
            "max_retries": 0,
        },
        "local": {"model_dir": str(directory / "models")},
        "budget": {"daily": 1_000_000.0},
        "store": {"url": f"sqlite:///{directory}/apprentice.db"},
        # Each request in flight is a connection here: above the default 1,024 (a limit
        # that answers 503 at once), as a proxy in front of many clients would set it.
        "gateway": {"max_concurrency": 4096, "max_connections": 4096, "orchestrator": "operator"},
    }
    path = directory / "apprentice.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def start(cfg: Path, source: str | None = None) -> tuple[subprocess.Popen[str], str]:
    """``apprentice serve`` on a free port; the task API's URL once it listens.

    ``source``: the ``operator`` directory of another checkout, to serve its code instead
    (a before/after pair in one run, on one machine, minutes apart).
    """
    env = {**os.environ, KEY_ENV: "sk-" + os.urandom(16).hex()}
    if source is not None:
        env["PYTHONPATH"] = source
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "-c", str(cfg), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "apprentice gateway listening on http://HOST:PORT"
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"apprentice serve did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip() + "/v1/tasks/classify_ticket"


async def run(
    teacher_port: int,
    seconds: float,
    rates: list[int],
    cpu_s: Callable[[int], float],
    open_loop: Callable[[Callable[[], Awaitable[None]], float, int], Awaitable[dict[str, Any]]],
    source: str | None = None,
) -> dict[str, Any]:
    """Both measurements; each on a fresh gateway and store (``source``: see :func:`start`)."""
    out: dict[str, Any] = {"slow": []}
    for name, rate in [("instant", 0)] + [("slow", r) for r in rates]:
        with tempfile.TemporaryDirectory() as tmp:
            base = f"http://127.0.0.1:{teacher_port}/{name}/v1"
            proc, url = start(write_config(Path(tmp), base), source)
            try:
                if name == "instant":  # before any traffic: what serving nothing costs
                    out["idle_cpu_ms_per_s"] = await idle_cpu(proc.pid)
                got = await _measure(name, url, proc.pid, seconds, rate, cpu_s, open_loop)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        if name == "instant":
            out[name] = got
        else:
            got["gateway_net_cpu_ms_per_request"] = round(
                got["gateway_cpu_ms_per_request"]
                - out["idle_cpu_ms_per_s"] * got["wall_s"] / max(got["served"], 1),
                3,
            )
            out[name].append(got)
    return out


async def idle_cpu(pid: int, settle_s: float = 3.0) -> float:
    """Milliseconds of CPU per second ``pid`` spends serving nothing (its timers).

    Measured over ``IDLE_S`` after ``settle_s`` (start-up done, the collector's sweep
    backed off), from the scheduler's nanosecond run time of each of its threads
    (/proc/PID/task/*/schedstat): /proc's stat counts 10 ms ticks, too coarse here.
    """
    await asyncio.sleep(settle_s)
    ns0 = _run_ns(pid)
    await asyncio.sleep(IDLE_S)
    return round((_run_ns(pid) - ns0) / 1e6 / IDLE_S, 3)


def _run_ns(pid: int) -> int:
    """Nanoseconds ``pid``'s live threads have run (Linux schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total


def md_rows(out: dict[str, Any], label: str) -> tuple[str, list[str], str]:
    """teacher.md's rows for one gateway: its instant row, its slow rows, its idle note."""
    i = out["instant"]
    instant = (
        f"| Apprentice gateway{label} as a proxy (`apprentice serve`, its CPU; every "
        f"answer reserved, stored, fsynced) | {i['rps']:,} | {i['cpu_ms_per_request']} ms |"
    )
    slow = []
    for s in out["slow"]:
        failed = ", ".join(f"{k} {v}" for k, v in s["failed"].items()) or "0"
        net = s.get("gateway_net_cpu_ms_per_request")
        slow.append(
            f"| Apprentice gateway{label} (`apprentice serve`, HTTP, stored) | "
            f"{s['offered_rps']:,} | {s['requests']:,} | {s['served']:,} | {failed} | "
            f"{s['p50_ms']} ms | {s['p99_ms']} ms | {s['gateway_cpu_ms_per_request']} ms "
            f"(serve's{'' if net is None else f'; {net} ms net of idle'}) |"
        )
    idle = out.get("idle_cpu_ms_per_s")
    note = (
        ""
        if idle is None
        else f"- Gateway{label}: idle `apprentice serve` {idle} ms CPU per second ({IDLE_S:g} s "
        "with no traffic before its first request; its threads' run time from /proc schedstat). "
        "Net of idle: its CPU over the measured seconds less that idle rate times the seconds, "
        "per request served."
    )
    return instant, slow, note


async def _measure(
    name: str,
    url: str,
    pid: int,
    seconds: float,
    rate: int,
    cpu_s: Callable[[int], float],
    open_loop: Callable[[Callable[[], Awaitable[None]], float, int], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    import aiohttp

    n = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def call() -> None:
            nonlocal n
            n += 1  # a new input each time: each answer is a new example
            body = {"input": {"text": f"ticket {n}: my invoice is wrong"}}
            async with http.post(url, json=body) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status}: {await resp.text()}")
                await resp.read()

        if name == "instant":
            return await _closed(call, seconds, pid, cpu_s)
        await open_loop(call, min(2.0, seconds), rate)  # warm up: connections, caches
        cpu0, wall0 = cpu_s(pid), time.perf_counter()
        result = await open_loop(call, seconds, rate)
        cpu, result["wall_s"] = cpu_s(pid) - cpu0, round(time.perf_counter() - wall0, 3)
        result["gateway_cpu_ms_per_request"] = round(cpu / max(result["served"], 1) * 1000, 3)
        return result


async def _closed(
    call: Callable[[], Awaitable[None]], seconds: float, pid: int, cpu_s: Callable[[int], float]
) -> dict[str, Any]:
    done = 0

    async def worker(stop: float) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call()
            done += 1

    await asyncio.gather(*(worker(time.perf_counter() + 1.0) for _ in range(16)))  # warm up
    done = 0
    cpu0, wall0 = cpu_s(pid), time.perf_counter()
    await asyncio.gather(*(worker(wall0 + seconds) for _ in range(64)))
    cpu, wall = cpu_s(pid) - cpu0, time.perf_counter() - wall0
    return {
        "in_flight": 64,
        "requests": done,
        "rps": round(done / wall, 1),
        "cpu_ms_per_request": round(cpu / max(done, 1) * 1000, 3),
    }
