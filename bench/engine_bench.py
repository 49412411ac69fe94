"""Engine benchmark: decide 1,000,000 requests on one core (target: under 10 s).

Each request runs what the gateway asks of the engine: ``budget.may_call``,
``lifecycle.route``; on a teacher call ``budget.reserve`` / ``budget.settle`` and
``lifecycle.record_example``; on a comparison ``lifecycle.observe``; and the
``training_due`` check (training is promoted at once, as in ``simulate``).

Two scenarios: ``lifecycle`` (a task from cold start to steady state on a noisy
0.97 agreement stream, the realistic mix) and ``compare_all`` (every request
compared, the worst case for the detectors). Writes bench/results/engine.json
and engine.md. Run: ``.venv/bin/python bench/engine_bench.py [--requests N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

from apprentice.engine import budget, lifecycle
from apprentice.engine.budget import Caps

RESULTS = Path(__file__).resolve().parent / "results"
T0 = 1_750_000_000.0


def scenario(requests: int, *, compare_all: bool) -> dict[str, float | int | str]:
    params = lifecycle.TaskParams(task="bench", phase1_to_phase2=50, fine_tune_batch_size=100)
    limits = budget.BudgetLimits(
        global_caps=Caps(daily=1e9, weekly=1e9, monthly=1e9), task_caps={"bench": Caps(daily=1e9)}
    )
    rng = random.Random(0)
    scores = [min(1.0, max(0.0, rng.gauss(0.97, 0.03))) for _ in range(4096)]
    ids = [f"req-{i}" for i in range(requests)]
    state = lifecycle.initial(params)
    ledger = budget.empty(limits)
    teacher = compared = versions = 0
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(requests):
        now = T0 + i * 0.05  # 20 requests/s: the windows roll over during the run
        allowed = budget.may_call(ledger, "bench", now, 0.002)
        d = lifecycle.route(
            state,
            ids[i],
            student_available=state.active_version is not None,
            teacher_allowed=allowed,
        )
        changed = False
        if d.calls_teacher:
            ledger, res = budget.reserve(ledger, "bench", 0.002, now)
            ledger = budget.settle(ledger, res.id, 0.0015, now)
            state = lifecycle.record_example(state)
            teacher += 1
            changed = True
        if d.compares or (compare_all and d.calls_student):
            state, _ = lifecycle.observe(state, scores[i & 4095], index=i, now=now)
            compared += 1
            changed = True
        # training_due reads only examples and phase flags: ask when they changed.
        if changed and lifecycle.training_due(state).due:
            versions += 1
            state = lifecycle.training_finished(lifecycle.training_started(state))
            state = lifecycle.version_promoted(state, f"v{versions}")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "requests": requests,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "requests_per_second": round(requests / elapsed),
        "microseconds_per_request": round(elapsed / requests * 1e6, 3),
        "teacher_calls": teacher,
        "comparisons": compared,
        "versions": versions,
        "final_phase": state.phase.value,
        "final_sampling_rate": round(state.sampling_rate, 4),
    }


def machine() -> dict[str, str | int]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores_used": 1,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": f"{platform.system()} {platform.release()}",
        "cpus": os.cpu_count() or 0,
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else -1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    results = {
        "target_seconds": 10.0,
        "machine": machine(),
        "scenarios": {
            "lifecycle": scenario(args.requests, compare_all=False),
            "compare_all": scenario(args.requests, compare_all=True),
        },
    }
    print(json.dumps(results, indent=2))
    if args.no_write:
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "engine.json").write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    rows = [
        f"| {name} | {r['requests']:,} | {r['seconds']} | {r['cpu_seconds']} | "
        f"{r['microseconds_per_request']} | "
        f"{r['teacher_calls']:,} | {r['comparisons']:,} | {r['final_phase']} |"
        for name, r in results["scenarios"].items()
    ]
    (RESULTS / "engine.md").write_text(
        "# Engine benchmark\n\n"
        "`.venv/bin/python bench/engine_bench.py` decides each request with budget check, "
        "route, reserve/settle on teacher calls, observe on comparisons and the training "
        "check, on one core. Target: 1,000,000 requests in under 10 s.\n\n"
        "| scenario | requests | wall s | CPU s | wall µs/request | teacher calls | comparisons "
        "| final phase |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Machine: {m['cpu']} ({m['cpus']} vCPUs, 1 pinned), {m['implementation']} "
        f"{m['python']}, {m['system']}; 1-minute load average {m['load_average_1m']} at the "
        "end of the run. Under load the wall time includes time spent waiting for the core; "
        "CPU s is the process's own time on it.\n"
    )


if __name__ == "__main__":
    main()
