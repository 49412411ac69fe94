"""Write the example traces and their ``apprentice simulate --json`` outputs.

Run from the repository root: ``.venv/bin/python examples/traces/generate.py``.
Noise is seeded, so the files are the same on every run.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from collections.abc import Callable
from pathlib import Path

from apprentice import cli

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "simulate.yaml"


def _clip(x: float) -> float:
    return round(min(1.0, max(0.0, x)), 4)


def stationary(rng: random.Random) -> list[float]:
    """Agreement 0.97 with small noise, 5,000 requests."""
    return [_clip(rng.gauss(0.97, 0.03)) for _ in range(5000)]


def drop(rng: random.Random) -> list[float]:
    """0.95 for 4,000 requests, then 0.40 (a broken upstream, a new input format)."""
    return [_clip(rng.gauss(0.95, 0.03)) for _ in range(4000)] + [
        _clip(rng.gauss(0.40, 0.05)) for _ in range(2000)
    ]


def slow_decline(rng: random.Random) -> list[float]:
    """0.95 for 3,000 requests, then -0.0001 per request (0.70 at request 5,500)."""
    return [_clip(rng.gauss(0.95 - 0.0001 * max(0, i - 3000), 0.03)) for i in range(8000)]


def few_perfect(rng: random.Random) -> list[float]:
    """50 cold-start requests, then exactly 15 perfect comparisons."""
    return [1.0] * 65


TRACES: dict[str, Callable[[random.Random], list[float]]] = {
    "stationary": stationary,
    "drop": drop,
    "slow_decline": slow_decline,
    "few_perfect": few_perfect,
}


def main() -> None:
    for seed, (name, make) in enumerate(TRACES.items()):
        trace = HERE / f"{name}.jsonl"
        lines = (
            json.dumps({"agree": True})
            if s == 1.0 and name == "few_perfect"
            else json.dumps({"score": s})
            for s in make(random.Random(seed))
        )
        trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main(
                [
                    "simulate",
                    "-c",
                    str(CONFIG),
                    "--task",
                    "classify_ticket",
                    "--trace",
                    str(trace),
                    "--json",
                ]
            )
        assert code == 0, name
        (HERE / f"{name}.json").write_text(out.getvalue(), encoding="utf-8")
        print(f"{name}: {json.loads(out.getvalue())['final_phase']}")


if __name__ == "__main__":
    main()
