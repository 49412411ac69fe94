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

Writes bench/results/cache.json and cache.md (``--out DIR`` elsewhere, for a quick check:
``--requests 200 --rounds 1 --out /tmp/cache``).
Run: ``.venv/bin/python bench/cache_bench.py [--requests 5000] [--rounds 5]``.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rounds  # the sibling module, found by the path above
import gateway_bench as gb

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
        # 1,000 warm-up requests (for on_hit they fill the cache); the rows' writes are
        # part of the cost.
        return await _rounds.timed(
            lambda i: app.run(gb.TASK, make(i)), app.gateway.flush, warmup=1000, n=n
        )


def key_cost(n: int = 50_000) -> float:
    """Microseconds per cache key of a typical input."""
    inp = gb._input(7)
    start = time.perf_counter()
    for _ in range(n):
        records.input_hash(inp)
    return (time.perf_counter() - start) / n * 1e6


async def main_async(n: int, rounds: int) -> dict[str, Any]:
    async def measure(d: Path, v: str) -> tuple[float, float]:
        return await phase(setup(d, v != "off"), v, n)

    cpu, rps = await _rounds.alternate(VARIANTS, rounds, measure)
    result, med = _rounds.summary(n, rounds, cpu, rps)
    return {
        **result,
        "miss_minus_off_us": round(med["on_miss"] - med["off"], 1),
        "hit_vs_off": round(med["on_hit"] / med["off"], 3),
        "key_us": round(key_cost(), 2),
    }


def render_md(r: dict[str, Any]) -> str:
    return _rounds.report_head(
        "Answer cache (issue 13 item 9)", "steady state, instant student", r, VARIANTS
    ) + (
        f"A miss with the cache on costs {r['miss_minus_off_us']:+.1f} µs of CPU against the "
        f"cache off; a hit costs {r['hit_vs_off']:.0%} of an uncached local answer. The key "
        f"alone costs {r['key_us']:.1f} µs per request.\n"
    )


def main() -> None:
    _rounds.cli(__doc__ or "", "cache", (5000, 5), gb.RESULTS, main_async, render_md)


if __name__ == "__main__":
    main()
