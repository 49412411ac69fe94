"""Teacher-path benchmark: the cost of one remote teacher call as calls in flight grow.

A loopback OpenAI-compatible teacher (:mod:`teacher_harness`: Go's ``bench/loopteacher``
by default, or an aiohttp server in a child process with ``--harness python``) answers
``POST .../chat/completions`` with a valid answer, either at once (``/instant``) or
after one second (``/slow``). This process calls it through the real teacher path,
:meth:`RemoteTeacher.generate` (prompt, wire request, retry/rate/cost policy, HTTP,
answer parsing, schema check), on one core (one event loop thread), for two pools:

- ``aiohttp``: the teacher's own poster (:mod:`apprentice.teachers.transport`);
- ``httpx``: the teacher path before issue 12: each call through an
  ``httpx.AsyncClient`` with its default pool (httpcore, 100 connections, 20 kept
  alive), put in place of the teacher's poster by :class:`OldPoster`.

Measured, in ONE run, per pool:

1. ``instant``: closed loop, 64 calls in flight, for ``--seconds``: requests/s and
   CPU per request (this process's CPU time over the calls);
2. ``slow``: open loop at 10 and 1,000 requests/s offered for ``--seconds``, each call
   taking the teacher's 1 s (so about 10 and 1,000 in flight): served, failed, p50/p99
   latency, CPU per request. Each rate first runs 2 s unmeasured, so the pool holds
   its connections (kept alive) as it would in steady traffic. The old pool gets one
   second per rate and no warm-up: at 1,000/s its queue alone takes minutes to drain.

``--gateway`` adds the whole gateway as a proxy (:mod:`teacher_gateway`, also at
``GATEWAY_RATES``), ``--gateway-before DIR`` an older checkout's ``operator/`` served
alike in the same run, ``--litellm BINARY`` LiteLLM's proxy (:mod:`teacher_litellm`),
all driven by the harness's client (the Go load generator, or aiohttp here).
``--harness go,python`` measures the gateway again with the second harness, same run.
``--gateway`` also holds 1,000/s and varies the teacher's delay (:mod:`teacher_in_flight`):
CPU per request as calls in flight grow from 10 to 1,000, nothing else changing.
Writes teacher.json and teacher.md to ``--out`` (bench/results), with the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from apprentice.config import ProviderConfig, TaskConfig
from apprentice.gateway import event_loop
from apprentice.gateway.server import tune_process
from apprentice.teachers import build_teacher, transport
from apprentice.teachers.base import Teacher
from apprentice.teachers.remote import RemoteTeacher

sys.path.insert(0, str(Path(__file__).resolve().parent))
import teacher_gateway  # the sibling modules, found by the path above
import teacher_harness
import teacher_in_flight
from teacher_harness import DELAY_S, HARNESSES
from teacher_litellm import litellm_run

RESULTS = Path(__file__).resolve().parent / "results"
GATEWAY_RATES = [10, 500, 1000]
"""Offered rates of the 1 s teacher through the whole gateway (``--gateway``); 10/s is the
reference its CPU per request must stay flat against (within 20%)."""
OLD_SECONDS = 1.0
"""How long the old pool is offered each slow rate (no warm-up): long enough to see it fail."""
TASK = TaskConfig.model_validate(
    {
        "name": "classify_ticket",
        "description": "Classify support tickets by category and priority",
        "input_schema": {"text": "str"},
        "output_schema": {"category": "str", "priority": "int"},
    }
)


def make_teacher(base_url: str, pool: str) -> Teacher:
    config = ProviderConfig.model_validate(
        {
            "provider": "openai_compatible",
            "model": "gpt-4o",
            "base_url": base_url,
            "timeout_s": 30,
            "max_retries": 0,
        }
    )
    teacher = build_teacher(config, env={})
    if pool == "httpx":
        assert isinstance(teacher, RemoteTeacher)
        teacher.policy.poster = OldPoster()  # type: ignore[assignment]
    return teacher


class OldPoster:
    """The teacher path before issue 12: every call through an ``httpx.AsyncClient``.

    Its default pool (httpcore: 100 connections, 20 kept alive) and per-request work
    (auth, redirects, cookies, request and response objects) are what the old path paid.
    """

    def __init__(self) -> None:
        self.client = httpx.AsyncClient(follow_redirects=False, timeout=30.0)

    async def post(
        self, url: str, body: dict[str, Any] | bytes, headers: dict[str, str]
    ) -> transport.Response:
        # The teacher hands its body encoded (teachers/templates.py): the same bytes, sent
        # as they are (httpx's own JSON encoding of the dict was ~5 us of its ~1.5 ms).
        kind = {"content-type": "application/json"}
        try:
            if isinstance(body, bytes):
                response = await self.client.post(url, content=body, headers=headers | kind)
            else:
                response = await self.client.post(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise transport.ReadTimeout(str(exc)) from exc
        except httpx.TransportError as exc:
            raise transport.ReadError(str(exc)) from exc
        return transport.Response(response.status_code, response.headers, response.content)

    async def aclose(self) -> None:
        await self.client.aclose()


async def closed_loop(teacher: Teacher, seconds: float, in_flight: int) -> dict[str, Any]:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await teacher.generate(TASK, {"text": "my invoice is wrong"})
            done += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        "in_flight": in_flight,
        "requests": done,
        "rps": round(done / wall, 1),
        "cpu_ms_per_request": round(cpu / done * 1000, 3),
    }


def calls(teacher: Teacher) -> Callable[[], Awaitable[Any]]:
    """One teacher call of the bench's task, as an argument-free coroutine function."""
    return lambda: teacher.generate(TASK, {"text": "my invoice is wrong"})


async def open_loop(
    call: Callable[[], Awaitable[Any]], seconds: float, rate: int
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: dict[str, int] = {}
    total = int(rate * seconds)
    tick = 0.01 if rate >= 100 else 1.0 / rate
    per_tick = max(1, round(rate * tick))

    async def one() -> None:
        started = time.perf_counter()
        try:
            await call()
        except Exception as exc:
            failures[type(exc).__name__] = failures.get(type(exc).__name__, 0) + 1
            return
        latencies.append(time.perf_counter() - started)

    tasks: list[asyncio.Task[None]] = []
    cpu0, start = time.process_time(), time.perf_counter()
    while len(tasks) < total:
        due = start + len(tasks) / per_tick * tick
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for _ in range(min(per_tick, total - len(tasks))):
            tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {
        "offered_rps": rate,
        "requests": total,
        "served": len(latencies),
        "failed": failures,
        "served_rps": round(len(latencies) / wall, 1),
        "p50_ms": pct(0.50) if ordered else None,
        "p99_ms": pct(0.99) if ordered else None,
        "max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
        "cpu_ms_per_request": round(cpu / total * 1000, 3),
    }


async def run_pool(port: int, pool: str, seconds: float, rates: list[int]) -> dict[str, Any]:
    instant = make_teacher(f"http://127.0.0.1:{port}/instant/v1", pool)
    slow = make_teacher(f"http://127.0.0.1:{port}/slow/v1", pool)
    try:
        await closed_loop(instant, 0.5, 16)  # warm up: connections, caches
        result: dict[str, Any] = {"instant": await closed_loop(instant, seconds, 64)}
        result["slow"] = []
        for rate in rates:
            if pool == "httpx":  # the old pool collapses at high rates: a short run says so
                result["slow"].append(await open_loop(calls(slow), OLD_SECONDS, rate))
                continue
            await open_loop(calls(slow), min(2.0, seconds), rate)  # warm up: the connections
            tune_process()  # as `apprentice serve` does once it is up
            result["slow"].append(await open_loop(calls(slow), seconds, rate))
        return result
    finally:
        await instant.aclose()
        await slow.aclose()


def _gateways(out: dict[str, Any]) -> list[tuple[str, str]]:
    """The gateway measurements in ``out`` and their row labels (the older checkout first)."""
    rows = []
    if "gateway_before" in out:
        rows.append(("gateway_before", f" before ({out['gateway_before']['source']})"))
    for key in [k for k in out if k == "gateway" or k.startswith("gateway_")]:
        if key == "gateway_before":
            continue
        when = " after" if "gateway_before" in out else ""
        rows.append((key, f"{when} ({out[key].get('harness', 'python')} harness)"))
    return rows


def write_md(out: dict[str, Any]) -> str:
    lines = [
        "# Teacher path at scale",
        "",
        f"Run {out['when']} on {out['machine']}; load average before/after: "
        f"{out['load_before']} / {out['load_after']} (2 cores shared with other agents).",
        "`aiohttp` is the teacher's poster since issue 12; `httpx` is httpx's default",
        "pool (httpcore), the teacher path before it. Same run, same loopback teacher.",
        "",
        *teacher_harness.md_lines(out),
        "",
        "## Instant teacher, 64 calls in flight, one core",
        "",
        "| pool | requests/s | CPU per request |",
        "|---|---|---|",
    ]
    for pool, res in out["pools"].items():
        i = res["instant"]
        lines.append(f"| {pool} | {i['rps']:,} | {i['cpu_ms_per_request']} ms |")
    gateways = [teacher_gateway.md_rows(out[key], label) for key, label in _gateways(out)]
    lines += [instant for instant, _, _ in gateways]
    if "litellm" in out:
        i = out["litellm"]
        lines.append(
            f"| LiteLLM {out['litellm_version']} proxy, one worker (its CPU) | "
            f"{i['rps']:,} | {i['cpu_ms_per_request']} ms |"
        )
    lines += [
        "",
        f"## Teacher answering after {DELAY_S:g} s, open loop for {out['seconds']:g} s",
        "",
        "| pool | offered/s | sent | served | failed | p50 | p99 | CPU per request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pool, res in out["pools"].items():
        for s in res["slow"]:
            failed = ", ".join(f"{k} {v}" for k, v in s["failed"].items()) or "0"
            lines.append(
                f"| {pool} | {s['offered_rps']:,} | {s['requests']:,} | {s['served']:,} | "
                f"{failed} | {s['p50_ms']} ms | {s['p99_ms']} ms | "
                f"{s['cpu_ms_per_request']} ms |"
            )
    if gateways:
        lines += [
            "",
            f"## The whole gateway in front of the teacher answering after {DELAY_S:g} s, "
            f"open loop for {out['seconds']:g} s",
            "",
            *teacher_gateway.SLOW_HEADER,
            *(row for _, slow, _ in gateways for row in slow),
        ]
    lines += ["", *(note for _, _, note in gateways if note), *out.get("notes", [])]
    if "in_flight" in out:
        lines += ["", *teacher_in_flight.md_lines(out["in_flight"], out["seconds"], out["harness"])]
    return "\n".join(lines) + "\n"


def _pools(port: int, args: argparse.Namespace) -> dict[str, Any]:
    """The teacher call alone (this process, in-process teacher path), for each pool, on
    the event loop `apprentice serve` runs on (its gateway phases serve that way too)."""
    rates = [int(r) for r in args.rates.split(",")]
    return {
        pool: event_loop.run(run_pool(port, pool, args.seconds, rates))
        for pool in args.pools.split(",")
        if pool
    }


def _others(
    teacher: teacher_harness.Loopback, args: argparse.Namespace, extra: dict[str, Any]
) -> None:
    """The older checkout's gateway and LiteLLM's proxy, in front of ``teacher``, into ``extra``."""
    if args.gateway and args.gateway_before:
        extra["gateway_before"] = asyncio.run(
            teacher_gateway.run(
                teacher, args.seconds, GATEWAY_RATES, open_loop, args.gateway_before, args.trials
            )
        )
    if args.litellm:
        extra["litellm"] = asyncio.run(
            litellm_run(args.litellm, teacher.port, args.seconds, teacher.harness)
        )
        version = (
            subprocess.run([args.litellm, "--version"], capture_output=True, text=True, check=False)
            .stdout.strip()
            .split()[-1:]
        )
        extra["litellm_version"] = version[0] if version else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pools", default="aiohttp,httpx")
    parser.add_argument("--rates", default="10,1000")
    parser.add_argument("--litellm", help="path of a litellm binary: add its proxy")
    parser.add_argument(
        "--trials",
        type=int,
        default=3,
        help="runs of each gateway's 1 s-teacher rates; the row is the median run by p99",
    )
    parser.add_argument(
        "--gateway", action="store_true", help="add the whole gateway as a proxy (serve)"
    )
    parser.add_argument(
        "--gateway-before",
        metavar="DIR",
        help="with --gateway: also serve the operator/ directory of an older checkout, same run",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where teacher.json and teacher.md go"
    )
    parser.add_argument(
        "--harness",
        default="go",
        help="the loopback teacher and client: go (bench/loopteacher, bench/loadgen) or "
        "python (aiohttp both); go,python measures the gateway with each, same run",
    )
    args = parser.parse_args()
    harnesses = args.harness.split(",")
    for harness in harnesses:
        if harness not in HARNESSES:
            parser.error(f"--harness {harness!r}: want go or python")
        teacher_harness.build(harness)
    load_before = [round(x, 2) for x in os.getloadavg()]
    extra: dict[str, Any] = {"harness": harnesses[0]}
    for harness in harnesses:
        with teacher_harness.loopback(harness) as teacher:
            if harness == harnesses[0]:
                extra["pools"] = _pools(teacher.port, args)
                _others(teacher, args, extra)
                if args.gateway:  # its own teachers, one per delay
                    extra["in_flight"] = asyncio.run(
                        teacher_in_flight.run(harness, args.seconds, open_loop, args.trials)
                    )
            if args.gateway:
                key = "gateway" if harness == harnesses[0] else f"gateway_{harness}"
                extra[key] = asyncio.run(
                    teacher_gateway.run(
                        teacher, args.seconds, GATEWAY_RATES, open_loop, trials=args.trials
                    )
                )
    out = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"this checkout's gateway and teacher calls on {event_loop.chosen()}",
        "seconds": args.seconds,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        **extra,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "teacher.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "teacher.md").write_text(write_md(out))
    print(write_md(out))


if __name__ == "__main__":
    main()
