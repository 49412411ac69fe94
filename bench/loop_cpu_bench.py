"""The event loop's CPU per paid request: the teacher call alone, and the gateway's loop thread.

Why: at 1,000 paid requests/s with a 1 s teacher the gateway's event loop runs most of a
core and shares the GIL with the store writer thread, so each microsecond of Python on
the loop per paid request is latency for every request (issue 12, the 1 s-teacher p99).
Two measurements, each before/after in alternating fresh processes:

- ``call``: :meth:`RemoteTeacher.estimate_cost` + :meth:`RemoteTeacher.generate` (what
  admission and the call step run per paid request: prompt, body, key, rate limits,
  aiohttp, parse, schema check, cost) against the Go instant teacher, 32 in flight,
  ``time.thread_time`` of this process's only busy thread per call (the median of 5
  spans of ``--calls`` calls);
- ``gateway``: ``apprentice serve`` (``bench/teacher_gateway.py``'s config: every answer
  reserved, stored, fsynced) in front of the instant teacher, driven closed-loop by the
  Go load generator at 64 in flight (``--rate R``: open loop at R/s in front of the 1 s
  teacher instead); the CPU of the serve process's main thread (the event loop: its
  /proc schedstat run time) and of the whole process, per answered request.

The teacher call is the steadier figure on a shared machine: the gateway's figures move
by 20% run to run when other processes compete for the cores, so compare their median
over several ``--rounds``.

Before/after: ``--before DIR`` names the ``operator`` directory of another checkout
(e.g. ``git archive HEAD~4 operator | tar -x -C /tmp/loop-before``), served and imported
with ``PYTHONPATH``. Writes bench/results/loop_cpu.json and loop_cpu.md.
Run: ``.venv/bin/python bench/loop_cpu_bench.py --before /tmp/loop-before/operator
[--rounds 5] [--calls 3000] [--rate 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from apprentice.config import ProviderConfig, TaskConfig
from apprentice.teachers import build_teacher

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loadgen as loadgen  # the sibling modules, found by the path above
import teacher_gateway
from teacher_harness import BODY, connections, loopback

RESULTS = Path(__file__).resolve().parent / "results"
TASK = {
    "name": "classify_ticket",
    "input_schema": {"text": "str"},
    "output_schema": {"category": "str", "priority": "int"},
    "evaluator": "exact_match",
}


async def _calls(port: int, calls: int) -> list[float]:
    """Microseconds of this thread's CPU per teacher call, for each of 5 spans."""
    task = TaskConfig.model_validate(TASK)
    cfg = ProviderConfig.model_validate(
        {
            "provider": "openai_compatible",
            "model": "gpt-4o",
            "base_url": f"http://127.0.0.1:{port}/instant/v1",
            "api_key_env": "BENCH_KEY",
            "timeout_s": 30,
            "max_retries": 0,
        }
    )
    teacher = build_teacher(cfg, env={"BENCH_KEY": "sk-" + os.urandom(8).hex()})
    gate = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        text = {"text": f"ticket {i}: my invoice is wrong"}
        async with gate:
            teacher.estimate_cost(task, text)
            await teacher.generate(task, text)

    await asyncio.gather(*(one(i) for i in range(1000)))  # warm: connections, caches
    spans = []
    for _ in range(5):
        t0 = time.thread_time()
        await asyncio.gather(*(one(i) for i in range(calls)))
        spans.append((time.thread_time() - t0) / calls * 1e6)
    await teacher.aclose()
    return spans


def _thread_ns(pid: int) -> tuple[int, int]:
    """Nanoseconds run by ``pid``'s main thread and by all its threads (/proc schedstat)."""
    main = total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ns = int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
        total += ns
        main += ns if task.name == str(pid) else 0
    return main, total


def _gateway(port: int, seconds: float, rate: int, source: str | None) -> dict[str, Any]:
    """One gateway run: its loop thread's and its whole CPU per answered request."""
    name = "slow" if rate else "instant"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = teacher_gateway.write_config(Path(tmp), f"http://127.0.0.1:{port}/{name}/v1")
        proc, url = teacher_gateway.start(cfg, source)
        try:
            flags: dict[str, Any] = {"mode": "closed", "connections": 64}
            if rate:
                flags = {"mode": "open", "rate": rate, "connections": connections(rate)}
                warm = loadgen.run(url, seconds=2, body=BODY, **flags)
            else:
                warm = loadgen.run(url, seconds=0, warmup=2000, body=BODY, **flags)
            loop0, all0 = _thread_ns(proc.pid)
            report = loadgen.run(
                url, seconds=seconds, body=BODY, start=warm["next_counter"], **flags
            )
            loop1, all1 = _thread_ns(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    n = max(report["answered"], 1)
    return {
        "loop_us": round((loop1 - loop0) / 1e3 / n, 1),
        "process_us": round((all1 - all0) / 1e3 / n, 1),
        "answered": report["answered"],
        "errors": report["errors"],
        "p99_ms": report["latency"]["p99_ms"],
    }


def _child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; its JSON on stdout."""
    with loopback("go") as teacher:
        if args.child == "call":
            got: Any = asyncio.run(_calls(teacher.port, args.calls))
        else:
            got = _gateway(teacher.port, args.seconds, args.rate, args.source)
    print(json.dumps(got))


def _run(kind: str, source: str | None, args: argparse.Namespace) -> Any:
    env = {**os.environ}
    cmd = [sys.executable, __file__, "--child", kind, "--calls", str(args.calls)]
    cmd += ["--seconds", str(args.seconds), "--rate", str(args.rate)]
    if source is not None:
        env["PYTHONPATH"] = source
        cmd += ["--source", source]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="DIR", help="another checkout's operator/")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=0, help="gateway: open loop, 1 s teacher")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    load_before = [round(x, 2) for x in os.getloadavg()]
    sides: list[tuple[str, str | None]] = [("after", None)]
    if args.before:
        sides = [("before", args.before), *sides]
    rows: dict[str, dict[str, list[Any]]] = {s: {"call": [], "gateway": []} for s, _ in sides}
    for r in range(args.rounds):
        for side, source in sides if r % 2 == 0 else sides[::-1]:
            rows[side]["call"].append(statistics.median(_run("call", source, args)))
            rows[side]["gateway"].append(_run("gateway", source, args))
    out = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "rate": args.rate,
        "sides": {s: _summary(v) for s, v in rows.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loop_cpu.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "loop_cpu.md").write_text(_md(out))
    print(_md(out))


def _summary(v: dict[str, list[Any]]) -> dict[str, Any]:
    gw = v["gateway"]
    return {
        "call_us_median": round(statistics.median(v["call"]), 1),
        "call_us_rounds": [round(x, 1) for x in v["call"]],
        "loop_us_median": statistics.median(g["loop_us"] for g in gw),
        "process_us_median": statistics.median(g["process_us"] for g in gw),
        "p99_ms_median": statistics.median(g["p99_ms"] for g in gw),
        "gateway_rounds": gw,
    }


def _md(out: dict[str, Any]) -> str:
    where = f"open loop at {out['rate']}/s, 1 s teacher" if out["rate"] else "instant teacher"
    lines = [
        "# The event loop's CPU per paid request",
        "",
        f"Run {out['when']}; load average before/after: {out['load_before']} / "
        f"{out['load_after']}. Medians of the rounds (bench/loop_cpu_bench.py).",
        "",
        f"| side | teacher call (us, thread CPU) | gateway loop thread (us, {where}) "
        "| gateway process (us) | gateway p99 (ms) |",
        "|---|---|---|---|---|",
    ]
    for side, s in out["sides"].items():
        lines.append(
            f"| {side} | {s['call_us_median']} | {s['loop_us_median']} | "
            f"{s['process_us_median']} | {s['p99_ms_median']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
