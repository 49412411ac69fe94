"""The gateway's CPU per request as teacher calls in flight grow, at one offered rate.

Why: issue 12 asks that CPU per request stay flat (within 20% of its value at 10 calls
in flight) up to 1,000 in flight; before it, httpcore's pool made it climb from 1.6 to
6-12 ms past 100. Across offered rates with the 1 s teacher (``teacher_gateway``'s 10,
500 and 1,000/s) the calls in flight move with the rate, and so does all that a low
rate costs per request: each request its own loop wake-ups, its own writer batch and
fsync, caches gone cold in between (the bare aiohttp client alone costs 3.9x more per
request at 10/s than at 1,000/s). Here the rate is held at ``RATE`` and the teacher's
delay varies instead (``DELAYS_S``), so the calls in flight, rate x delay, are the one
thing that changes: 10, 100, 1,000.

Each delay gets its own loopback teacher (``teacher_harness.loopback``) and, per trial,
a fresh ``apprentice serve`` and store (``teacher_gateway``); the row is the median run
by p99, with every run's CPU per request. Used by ``teacher_bench.py --gateway``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import teacher_gateway  # the sibling modules, found by the path above
import teacher_harness

RATE = 1000
"""Requests/s offered at every delay."""
DELAYS_S = (0.01, 0.1, 1.0)
"""The teacher's delays: 10, 100 and 1,000 calls in flight at ``RATE``."""
FLAT_WITHIN = 0.20
"""Issue 12's bound on CPU per request against its value at the fewest calls in flight."""


async def run(
    harness: str, seconds: float, open_loop: teacher_gateway.OpenLoop, trials: int = 1
) -> list[dict[str, Any]]:
    """One row per delay (each on its own teacher), the first one the reference."""
    rows: list[dict[str, Any]] = []
    for delay in DELAYS_S:
        with teacher_harness.loopback(harness, delay_s=delay) as teacher:
            runs = [
                await teacher_gateway.once(teacher, "slow", RATE, seconds, open_loop)
                for _ in range(max(trials, 1))
            ]
        got = teacher_gateway.median_run(runs)
        cpu = [r["gateway_cpu_ms_per_request"] for r in runs]
        got.update(
            delay_s=delay,
            in_flight=round(RATE * delay),
            cpu_ms_trials=cpu,
            cpu_ms_median=round(statistics.median(cpu), 3),
        )
        rows.append(got)
    reference = rows[0]["cpu_ms_median"]
    for row in rows:
        row["cpu_vs_reference"] = round(row["cpu_ms_median"] / reference, 3)
    return rows


def md_lines(rows: list[dict[str, Any]], seconds: float, harness: str) -> list[str]:
    """teacher.md's section: one row per delay, and whether the CPU stayed within bounds."""
    if not rows:
        return []
    lines = [
        f"## The whole gateway as teacher calls in flight grow: {RATE:,} requests/s offered, "
        f"open loop for {seconds:g} s, {harness} harness",
        "",
        "The rate is held and the teacher's delay varies, so the calls in flight (rate x "
        "delay) are the one thing that changes; across rates with the 1 s teacher (above) "
        "the per-request cost of a low rate changes with them.",
        "",
        "| teacher answers after | calls in flight | served | p50 | p99 | gateway CPU per "
        "request (median; every run) | against the fewest in flight |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = ", ".join(f"{c}" for c in row["cpu_ms_trials"])
        lines.append(
            f"| {row['delay_s'] * 1000:g} ms | {row['in_flight']:,} | {row['served']:,} of "
            f"{row['requests']:,} | {row['p50_ms']} ms | {row['p99_ms']} ms | "
            f"{row['cpu_ms_median']} ms ({runs}) | {row['cpu_vs_reference']:.2f}x |"
        )
    worst = max(abs(row["cpu_vs_reference"] - 1) for row in rows)
    verdict = "within" if worst <= FLAT_WITHIN else "outside"
    lines += [
        "",
        f"- CPU per request moves at most {worst:.0%} from its value at "
        f"{rows[0]['in_flight']:,} calls in flight: {verdict} the {FLAT_WITHIN:.0%} bound.",
    ]
    return lines
