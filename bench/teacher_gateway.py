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

Driven by the teacher's harness (:mod:`teacher_harness`): the Go load generator, or an
aiohttp client in this process. The harness's CPU (teacher plus client) per request is
reported beside the gateway's. Used by ``teacher_bench.py --gateway``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loadgen as loadgen  # the sibling modules, found by the path above
from _loops import median_by_p99
from teacher_harness import BODY, Loopback, connections, go_result, run_ns

OpenLoop = Callable[[Callable[[], Awaitable[None]], float, int], Awaitable[dict[str, Any]]]
"""``teacher_bench.open_loop``: the Python harness's open loop."""

KEY_ENV = "BENCH_TEACHER_KEY"
SAMPLE_S = 0.02
"""How often the Go runs' CPU is sampled (see ``_Probe``)."""
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
    teacher: Loopback,
    seconds: float,
    rates: list[int],
    open_loop: OpenLoop,
    source: str | None = None,
    trials: int = 1,
) -> dict[str, Any]:
    """Both measurements; each on a fresh gateway and store (``source``: see :func:`start`).

    Driven by ``teacher``'s harness: the Go load generator, or ``open_loop`` and an
    aiohttp client here (``python``). Each slow rate runs ``trials`` times: its row is
    the median run by p99 (``p99_ms_trials`` lists every run's), as one stall on a
    shared machine moves a single run's p99 by tens of milliseconds.
    """
    out: dict[str, Any] = {"slow": [], "harness": teacher.harness}
    if source is not None:
        out["source"] = commit_of(source)
    for name, rate in [("instant", 0)] + [("slow", r) for r in rates]:
        runs = [
            await once(teacher, name, rate, seconds, open_loop, source, out)
            for _ in range(1 if name == "instant" else max(trials, 1))
        ]
        if name == "instant":
            out[name] = runs[0]
            continue
        got = median_run(runs)
        got["gateway_net_cpu_ms_per_request"] = round(
            got["gateway_cpu_ms_per_request"]
            - out["idle_cpu_ms_per_s"] * got["wall_s"] / max(got["served"], 1),
            3,
        )
        out[name].append(got)
    return out


def commit_of(source: str) -> str:
    """The commit an older checkout's operator/ directory is at (its path when not a clone)."""
    found = subprocess.run(
        ["git", "-C", source, "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.stdout.strip() or source


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose p99 is the median (the upper one of an even count), with every run's."""
    got = median_by_p99(runs)
    got["p99_ms_trials"] = [r["p99_ms"] for r in runs]
    return got


async def once(
    teacher: Loopback,
    name: str,
    rate: int,
    seconds: float,
    open_loop: OpenLoop,
    source: str | None = None,
    out: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One measurement on a fresh gateway and store (the idle CPU first into ``out``, for
    ``instant``; also ``teacher_in_flight``'s runs)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = f"http://127.0.0.1:{teacher.port}/{name}/v1"
        proc, url = start(write_config(Path(tmp), base), source)
        try:
            if name == "instant" and out is not None:  # before any traffic: serving nothing
                out["idle_cpu_ms_per_s"] = await idle_cpu(proc.pid)
            probe = _Probe(proc.pid, teacher)
            if teacher.harness == "go":
                return await _measure_go(name, url, seconds, rate, probe)
            return await _measure(name, url, seconds, rate, probe, open_loop)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


class _Probe:
    """CPU seconds of the gateway, the teacher and this process over a measured span.

    The Go generator warms up and measures in one process (its connections are dialed
    once, as the Python client's stay open), so the span's CPU is read from samples
    taken every ``SAMPLE_S`` by a thread, between the span's ends (interpolated).
    """

    def __init__(self, pid: int, teacher: Loopback) -> None:
        self.pid, self.teacher = pid, teacher
        self.samples: list[tuple[float, float, float]] = []
        self.stop = threading.Event()
        self.wall0 = 0.0

    def read(self) -> tuple[float, float, float]:
        return (time.perf_counter(), run_ns(self.pid) / 1e9, self.teacher.cpu_s())

    def begin(self) -> None:
        self.gw0, self.t0, self.me0 = (*self.read()[1:], time.process_time())
        self.wall0 = time.perf_counter()

    def sample(self) -> threading.Thread:
        """Start the sampling thread (stopped by :meth:`end_span`)."""

        def loop() -> None:
            while not self.stop.wait(SAMPLE_S):
                self.samples.append(self.read())

        self.samples.append(self.read())
        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def end_span(self, result: dict[str, Any], span_s: float, client_cpu_s: float) -> None:
        """``result`` with the CPU over the last ``span_s`` seconds sampled (see :meth:`end`)."""
        self.samples.append(self.read())
        end = self.samples[-1][0]
        start = _at(self.samples, end - span_s)
        self.gw0, self.t0, self.wall0 = start[1], start[2], start[0]
        self.end(result, client_cpu_s)
        result["wall_s"] = round(span_s, 3)

    def end(self, result: dict[str, Any], client_cpu_s: float | None = None) -> dict[str, Any]:
        """``result`` with the CPU per request served: the gateway's and the harness's."""
        wall = time.perf_counter() - self.wall0
        n = max(result.get("served") or result.get("requests") or 0, 1)
        now = self.read()
        gateway, teacher = now[1] - self.gw0, now[2] - self.t0
        client = time.process_time() - self.me0 if client_cpu_s is None else client_cpu_s
        result["wall_s"] = round(wall, 3)
        result["gateway_cpu_ms_per_request"] = round(gateway / n * 1000, 3)
        result["teacher_cpu_ms_per_request"] = round(teacher / n * 1000, 3)
        result["client_cpu_ms_per_request"] = round(client / n * 1000, 3)
        result["harness_cpu_ms_per_request"] = round((teacher + client) / n * 1000, 3)
        return result


def _at(samples: list[tuple[float, float, float]], when: float) -> tuple[float, float, float]:
    """The CPU readings at ``when``, interpolated between the samples around it."""
    before = max((s for s in samples if s[0] <= when), default=samples[0], key=lambda s: s[0])
    after = min((s for s in samples if s[0] >= when), default=samples[-1], key=lambda s: s[0])
    if after[0] <= before[0]:
        return before
    f = (when - before[0]) / (after[0] - before[0])
    return (when, *(b + (a - b) * f for b, a in zip(before[1:], after[1:], strict=True)))  # type: ignore[return-value]


async def _measure_go(
    name: str, url: str, seconds: float, rate: int, probe: _Probe
) -> dict[str, Any]:
    """One measurement driven by the Go load generator (``bench/loadgen``).

    A first generator process warms up as the Python harness does (the open loop at
    ``rate`` for up to 2 s, or 1,000 closed-loop requests); the measured one dials its
    own connections before its span starts, so they are not in the CPU read over it.
    """
    flags: dict[str, Any] = {"mode": "closed", "connections": 64}
    if name != "instant":
        flags = {"mode": "open", "rate": rate, "connections": connections(rate)}
    if name == "instant":
        warm = await asyncio.to_thread(loadgen.run, url, seconds=0, warmup=1000, body=BODY, **flags)
    else:
        warm = await asyncio.to_thread(
            loadgen.run, url, seconds=min(2.0, seconds), body=BODY, **flags
        )
    probe.sample()
    try:
        report = await asyncio.to_thread(
            loadgen.run, url, seconds=seconds, body=BODY, start=warm["next_counter"], **flags
        )
    finally:
        probe.stop.set()
    got = go_result(report)
    probe.end_span(got, report["elapsed_s"], report["client_cpu_s"])
    if name == "instant":
        got.update(in_flight=64, rps=report["achieved_rps"])
        got["cpu_ms_per_request"] = got["gateway_cpu_ms_per_request"]
    return got


async def idle_cpu(pid: int, settle_s: float = 3.0) -> float:
    """Milliseconds of CPU per second ``pid`` spends serving nothing (its timers).

    Measured over ``IDLE_S`` after ``settle_s`` (start-up done, the collector's sweep
    backed off), from the scheduler's nanosecond run time of each of its threads
    (/proc/PID/task/*/schedstat): /proc's stat counts 10 ms ticks, too coarse here.
    """
    await asyncio.sleep(settle_s)
    ns0 = run_ns(pid)
    await asyncio.sleep(IDLE_S)
    return round((run_ns(pid) - ns0) / 1e6 / IDLE_S, 3)


SLOW_HEADER = [
    "| gateway | offered/s | sent | served | achieved/s | failed | p50 | p99 "
    "| gateway CPU per request | harness CPU per request (teacher + client) |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
"""The head of teacher.md's table of the whole gateway in front of the 1 s teacher."""


def md_rows(out: dict[str, Any], label: str) -> tuple[str, list[str], str]:
    """teacher.md's rows for one gateway: its instant row, its slow rows, its idle note."""
    i = out["instant"]
    harness = _harness_cpu(i)
    instant = (
        f"| Apprentice gateway{label} as a proxy (`apprentice serve`, its CPU; every "
        f"answer reserved, stored, fsynced) | {i['rps']:,} | {i['cpu_ms_per_request']} ms"
        f"{f' (harness: {harness})' if harness else ''} |"
    )
    slow = []
    for s in out["slow"]:
        failed = ", ".join(f"{k} {v}" for k, v in s["failed"].items()) or "0"
        net = s.get("gateway_net_cpu_ms_per_request")
        slow.append(
            f"| Apprentice gateway{label} | {s['offered_rps']:,} | {s['requests']:,} | "
            f"{s['served']:,} | {s.get('served_rps', '')} | {failed} | "
            f"{s['p50_ms']} ms | {s['p99_ms']} ms{_trials(s)} | {s['gateway_cpu_ms_per_request']} ms "
            f"{'' if net is None else f'({net} ms net of idle)'} | {_harness_cpu(s)} |"
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


def _trials(got: dict[str, Any]) -> str:
    """Every run's p99 when the row is the median of several ("" for one run)."""
    runs = got.get("p99_ms_trials", [])
    return f" (median of {', '.join(f'{p:,}' for p in runs)})" if len(runs) > 1 else ""


def _harness_cpu(got: dict[str, Any]) -> str:
    """The harness's CPU per request, split into teacher and client ("" when not measured)."""
    if "harness_cpu_ms_per_request" not in got:
        return ""
    return (
        f"{got['harness_cpu_ms_per_request']} ms ({got['teacher_cpu_ms_per_request']} + "
        f"{got['client_cpu_ms_per_request']})"
    )


async def _measure(
    name: str, url: str, seconds: float, rate: int, probe: _Probe, open_loop: OpenLoop
) -> dict[str, Any]:
    """One measurement driven by an aiohttp client in this process (``--harness python``)."""
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
            return await _closed(call, seconds, probe)
        await open_loop(call, min(2.0, seconds), rate)  # warm up: connections, caches
        probe.begin()
        return probe.end(await open_loop(call, seconds, rate))


async def _closed(
    call: Callable[[], Awaitable[None]], seconds: float, probe: _Probe
) -> dict[str, Any]:
    done = 0

    async def worker(stop: float) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call()
            done += 1

    await asyncio.gather(*(worker(time.perf_counter() + 1.0) for _ in range(16)))  # warm up
    done = 0
    probe.begin()
    await asyncio.gather(*(worker(probe.wall0 + seconds) for _ in range(64)))
    got = probe.end({"in_flight": 64, "requests": done})
    got["rps"] = round(done / got["wall_s"], 1)
    got["cpu_ms_per_request"] = got["gateway_cpu_ms_per_request"]
    return got
