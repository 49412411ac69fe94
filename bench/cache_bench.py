"""Issue 13 item 9 on the hot path: what the answer cache costs on a miss and gives on a hit.

The same steady-state task, store and instant student as ``gateway_bench.py`` (its setup
is reused), in process through the facade (``app.run``: the pipeline without HTTP, so
the cache's own cost is not lost in the HTTP noise of a shared machine). Variants,
alternating ``--rounds`` times so every one sees the same machine load:

- ``off``: ``cache.enabled`` false (the default): the local-only path as before;
- ``on_miss``: cache on, every input new (the key's SHA-256, the flight, the store);
- ``on_hit``: cache on, the same 1,000 inputs again and again (answered from the cache).

``cpu_us`` is the process' CPU time per request (the writer's thread included), requests
one after another, the median round: on a shared machine wall-clock throughput is noise,
CPU time much less so. ``key_us`` is the key alone (canonical JSON + SHA-256).

Writes bench/results/cache.json and cache.md.
Run: ``.venv/bin/python bench/cache_bench.py [--requests 5000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_bench as gb  # the sibling script, found by the path above

from apprentice.gateway.facade import Apprentice
from apprentice.store import records

VARIANTS = ("off", "on_miss", "on_hit")


def setup(directory: Path, enabled: bool) -> Path:
    cfg_path = gb.write_setup(directory)
    data = yaml.safe_load(cfg_path.read_text())
    data["tasks"][0]["cache"] = {"enabled": enabled, "ttl_s": 3600, "max_entries": 100_000}
    cfg_path.write_text(yaml.safe_dump(data))
    return cfg_path


def _inputs(variant: str) -> Callable[[int], dict[str, Any]]:
    if variant == "on_hit":
        return gb._input  # 1,000 distinct inputs, cycled
    fresh = itertools.count()
    return lambda _i: {"text": f"ticket {next(fresh)} cannot log in since the update"}


async def phase(cfg_path: Path, variant: str, n: int) -> tuple[float, float]:
    """(CPU µs per request, requests/s), ``n`` requests one after another."""
    app = Apprentice.from_config(cfg_path, student_factory=lambda _t: gb.InstantStudent())
    async with app:
        make = _inputs(variant)
        for i in range(1000):  # warm-up; for on_hit it fills the cache
            await app.run(gb.TASK, make(i))
        await app.gateway.flush()
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            await app.run(gb.TASK, make(i))
        await app.gateway.flush()  # the rows' writes are part of the cost
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return cpu / n * 1e6, n / wall


def key_cost(n: int = 50_000) -> float:
    """Microseconds per cache key of a typical input."""
    inp = gb._input(7)
    start = time.perf_counter()
    for _ in range(n):
        records.input_hash(inp)
    return (time.perf_counter() - start) / n * 1e6


async def main_async(n: int, rounds: int) -> dict[str, Any]:
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for v in VARIANTS:
                d = Path(tmp) / f"{v}-{r}"
                d.mkdir()
                us, per_s = await phase(setup(d, v != "off"), v, n)
                cpu[v].append(us)
                rps[v].append(per_s)
    med = {v: statistics.median(xs) for v, xs in cpu.items()}
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    return {
        "machine": {**machine, "load": os.getloadavg()[0]},
        "requests": n,
        "rounds": rounds,
        "cpu_us": {v: round(x, 1) for v, x in med.items()},
        "rounds_cpu_us": {v: [round(x, 1) for x in xs] for v, xs in cpu.items()},
        "rounds_rps": {v: [round(x) for x in xs] for v, xs in rps.items()},
        "miss_minus_off_us": round(med["on_miss"] - med["off"], 1),
        "hit_vs_off": round(med["on_hit"] / med["off"], 3),
        "key_us": round(key_cost(), 2),
    }


def render_md(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {v} | {r['cpu_us'][v]:.0f} | {', '.join(f'{x:.0f}' for x in r['rounds_cpu_us'][v])}"
        f" | {', '.join(str(x) for x in r['rounds_rps'][v])} |"
        for v in VARIANTS
    )
    return (
        "# Answer cache (issue 13 item 9)\n\n"
        f"In process (facade), steady state, instant student; {r['rounds']} alternating "
        f"rounds of {r['requests']} sequential requests; load average "
        f"{r['machine']['load']:.1f} on {r['machine']['cpus']} CPUs (CPU time is the "
        "figure to read: wall-clock rates on a shared machine are noise).\n\n"
        "| variant | CPU µs/request (median) | rounds, µs | rounds, req/s |\n"
        "|---|---|---|---|\n"
        f"{rows}\n\n"
        f"A miss with the cache on costs {r['miss_minus_off_us']:+.1f} µs of CPU against the "
        f"cache off; a hit costs {r['hit_vs_off']:.0%} of an uncached local answer. The key "
        f"alone costs {r['key_us']:.1f} µs per request.\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    result = asyncio.run(main_async(args.requests, args.rounds))
    gb.RESULTS.mkdir(exist_ok=True)
    (gb.RESULTS / "cache.json").write_text(json.dumps(result, indent=2) + "\n")
    (gb.RESULTS / "cache.md").write_text(render_md(result))
    print(render_md(result))


if __name__ == "__main__":
    main()
