"""LiteLLM's proxy in front of the teacher bench's loopback teacher (``teacher_bench.py``).

The teacher bench measures Apprentice; this measures the proxy it is compared with,
the same way: one worker, 64 requests in flight, its process tree's CPU per request.
Used by ``teacher_bench.py --litellm BINARY``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loadgen as loadgen  # bench/_loadgen.py, found by the path above

MASTER_KEY = "sk-" + os.urandom(32).hex()  # the proxy refuses to start without one


def cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process and its descendants, from /proc (Linux)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(cpu.get(p, 0.0) for p in tree)


async def litellm_run(
    binary: str, port: int, seconds: float, harness: str = "python"
) -> dict[str, Any]:
    """LiteLLM's proxy (one worker) in front of the same instant teacher, 64 in flight.

    The figure is the proxy's CPU (its process tree) per request, beside this path's.
    ``harness``: ``go`` drives it with the Go load generator (``bench/loadgen``),
    ``python`` with an aiohttp client here.
    """
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)  # noqa: SIM115
    cfg.write(
        "model_list:\n  - model_name: gpt-4o\n    litellm_params:\n"
        f"      model: openai/gpt-4o\n      api_base: http://127.0.0.1:{port}/instant/v1\n"
        "      api_key: sk-bench\n"
        f"general_settings:\n  master_key: {MASTER_KEY}\n"
    )
    cfg.close()
    with socket.socket() as sock:  # a free port for the proxy
        sock.bind(("127.0.0.1", 0))
        proxy_port = sock.getsockname()[1]
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
        [binary, "--config", cfg.name, "--port", str(proxy_port), "--num_workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=open(cfg.name + ".log", "w"),  # noqa: SIM115, ASYNC230 - once, before timing
    )
    url = f"http://127.0.0.1:{proxy_port}"
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Classify: my invoice is wrong"}],
        "max_tokens": 64,
    }
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), headers=auth
        ) as http:
            for _ in range(2400):  # start-up: up to 240 s (its imports are slow)
                if proc.poll() is not None:
                    raise RuntimeError(f"litellm exited {proc.returncode}; see {cfg.name}.log")
                try:
                    async with http.get(f"{url}/health/liveliness") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            if harness == "go":
                return await _go_closed(url, body, auth, seconds, proc.pid)
            done = 0

            async def worker(stop: float) -> None:
                nonlocal done
                while time.perf_counter() < stop:
                    async with http.post(f"{url}/v1/chat/completions", json=body) as r:
                        await r.read()
                        done += r.status == 200

            await asyncio.gather(*(worker(time.perf_counter() + 1.0) for _ in range(16)))
            done = 0
            cpu0, wall0 = cpu_s(proc.pid), time.perf_counter()
            stop = wall0 + seconds
            await asyncio.gather(*(worker(stop) for _ in range(64)))
            cpu, wall = cpu_s(proc.pid) - cpu0, time.perf_counter() - wall0
    finally:
        proc.terminate()
        proc.wait()
    return {
        "in_flight": 64,
        "requests": done,
        "rps": round(done / wall, 1),
        "cpu_ms_per_request": round(cpu / max(done, 1) * 1000, 3),
    }


async def _go_closed(
    url: str, body: dict[str, Any], auth: dict[str, str], seconds: float, pid: int
) -> dict[str, Any]:
    """The proxy driven by the Go load generator's closed loop, 64 connections."""
    flags: dict[str, Any] = {
        "mode": "closed",
        "body": json.dumps(body),
        "headers": [f"{k}: {v}" for k, v in auth.items()],
    }
    target = f"{url}/v1/chat/completions"
    await asyncio.to_thread(loadgen.run, target, seconds=1.0, connections=16, **flags)
    cpu0 = cpu_s(pid)
    report = await asyncio.to_thread(loadgen.run, target, seconds=seconds, connections=64, **flags)
    done = report["ok"]
    return {
        "in_flight": 64,
        "requests": done,
        "failed": report["errors"],
        "rps": report["achieved_rps"],
        "cpu_ms_per_request": round((cpu_s(pid) - cpu0) / max(done, 1) * 1000, 3),
        "client_cpu_ms_per_request": round(report["client_cpu_s"] / max(done, 1) * 1000, 3),
    }
