"""The round driver that the in-process feature benches share (cache, tracing).

Each bench compares a few variants of one gateway setup on the facade (``app.run``).
On a shared machine the load moves from minute to minute, so the variants alternate,
``rounds`` times, and every variant sees the same machine; the figure to read is the
process' CPU time per request (the median round), not wall-clock throughput. This module
holds what was the same in both: the timed loop, the alternating rounds, the summary's
common fields, the report's head and table, the command line and writing the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

# One run of one variant: (a fresh empty directory, the variant) -> (CPU µs/request, req/s).
Measure = Callable[[Path, str], Awaitable[tuple[float, float]]]


async def timed(
    run_one: Callable[[int], Awaitable[object]],
    settle: Callable[[], Awaitable[None]],
    warmup: int,
    n: int,
) -> tuple[float, float]:
    """(CPU µs per request, requests/s) of ``n`` calls of ``run_one`` one after another.

    ``warmup`` calls come first, untimed; ``settle`` runs after the warm-up and inside the
    timed span after the ``n`` calls, because the work a request leaves behind (the
    store's writes, the spans' export) is part of what it costs.
    """
    for i in range(warmup):
        await run_one(i)
    await settle()
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        await run_one(i)
    await settle()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / n * 1e6, n / wall


async def alternate(
    variants: Sequence[str], rounds: int, measure: Measure
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Every variant once per round, ``rounds`` times: (CPU µs, req/s) per variant per round."""
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    rps: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for v in variants:
                d = Path(tmp) / f"{v}-{r}"
                d.mkdir()
                us, per_s = await measure(d, v)
                cpu[v].append(us)
                rps[v].append(per_s)
    return cpu, rps


def summary(
    n: int, rounds: int, cpu: dict[str, list[float]], rps: dict[str, list[float]]
) -> tuple[dict[str, Any], dict[str, float]]:
    """The result's common fields, and each variant's median CPU µs for the bench's own."""
    med = {v: statistics.median(xs) for v, xs in cpu.items()}
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    result = {
        "machine": {**machine, "load": os.getloadavg()[0]},
        "requests": n,
        "rounds": rounds,
        "cpu_us": {v: round(x, 1) for v, x in med.items()},
        "rounds_cpu_us": {v: [round(x, 1) for x in xs] for v, xs in cpu.items()},
        "rounds_rps": {v: [round(x) for x in xs] for v, xs in rps.items()},
    }
    return result, med


def report_head(title: str, setting: str, r: dict[str, Any], variants: Sequence[str]) -> str:
    """The Markdown report's title, how it was measured, and the table of the variants."""
    return (
        f"# {title}\n\n"
        f"In process (facade), {setting}; {r['rounds']} alternating rounds of "
        f"{r['requests']} sequential requests; load average {r['machine']['load']:.1f} on "
        f"{r['machine']['cpus']} CPUs (CPU time is the figure to read: wall-clock rates on a "
        "shared machine are noise).\n\n"
        f"{table(r, variants)}\n"
    )


def table(r: dict[str, Any], variants: Sequence[str]) -> str:
    """The Markdown table of the variants: median and every round, CPU µs and req/s."""
    rows = "\n".join(
        f"| {v} | {r['cpu_us'][v]:.0f} | {', '.join(f'{x:.0f}' for x in r['rounds_cpu_us'][v])}"
        f" | {', '.join(str(x) for x in r['rounds_rps'][v])} |"
        for v in variants
    )
    return (
        "| variant | CPU µs/request (median) | rounds, µs | rounds, req/s |\n"
        "|---|---|---|---|\n"
        f"{rows}\n"
    )


def cli(
    doc: str,
    name: str,
    defaults: tuple[int, int],
    results: Path,
    run: Callable[[int, int], Coroutine[object, object, dict[str, Any]]],
    render: Callable[[dict[str, Any]], str],
) -> None:
    """A bench's command line: ``--requests``, ``--rounds`` (``defaults``) and ``--out``."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--requests", type=int, default=defaults[0])
    ap.add_argument("--rounds", type=int, default=defaults[1])
    ap.add_argument("--out", type=Path, default=results, help="results folder")
    args = ap.parse_args()
    result = asyncio.run(run(args.requests, args.rounds))
    write(args.out, name, result, render(result))


def write(results: Path, name: str, result: dict[str, Any], markdown: str) -> None:
    """``results/<name>.json`` and ``.md``, and the Markdown on stdout."""
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (results / f"{name}.md").write_text(markdown)
    print(markdown)
