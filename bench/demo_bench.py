"""Demo benchmark: the full-size ``apprentice demo`` against the README's promises.

The demo includes a shift (a new ticket category from request 2,000). Targets
on a 2-core machine (issue 10): at most 4 minutes and 1.5 GB, the shift
detected and the task back in steady state, spend over the last 1,000 requests
cut by at least 97% against all-teacher, held-out agreement at least 0.95 for
every promoted version. ``--runs N`` runs N fresh demos and reports the median
of each figure; each run is a fresh ``git clone`` of this repository's HEAD
(its code on ``PYTHONPATH``, this interpreter's packages) in a new directory,
unless ``--no-clone`` runs this checkout's code.

Runs ``apprentice demo --json`` in a subprocess and samples the memory of its
whole process tree (gateway plus the training subprocess) every 200 ms, so the
figure is the peak of the sum, not of the largest single process. Memory is
the proportional set size (PSS): the gateway and the trainer map the same
torch libraries, whose pages RSS would count once per process although the
machine holds them once; the RSS sum is recorded beside it. CPU time
(user + system of the demo and its trainers) is steadier than wall time on a
shared machine and is recorded too, with the load average before and after.
Writes bench/results/demo.json and demo.md.
Run: ``.venv/bin/python bench/demo_bench.py [--requests 4000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
TARGETS = {
    "seconds": 240.0,
    "peak_tree_pss_mb": 1536.0,
    "spend_reduction_last_1000": 0.97,
    "heldout_agreement": 0.95,
}


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _kib(pid: int, path: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}", encoding="utf-8") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_mb(root: int) -> tuple[float, float]:
    """(PSS, RSS) of ``root`` and all its descendants, summed, in MB."""
    tree, pss, rss, todo = _children(), 0, 0, [root]
    while todo:
        pid = todo.pop()
        pss += _kib(pid, "smaps_rollup", "Pss:")
        rss += _kib(pid, "status", "VmRSS:")
        todo.extend(tree.get(pid, []))
    return pss / 1024, rss / 1024


def tree_rss_mb(root: int) -> float:
    return tree_memory_mb(root)[1]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fresh_clone(into: Path) -> Path:
    """``git clone`` of this repository's HEAD into ``into`` (committed code only)."""
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(into)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return into


def one_run(requests: int, directory: str, code: Path) -> tuple[dict, str]:
    """One fresh demo of ``code`` (a checkout) in a subprocess; its JSON plus measurements."""
    cmd = [sys.executable, "-m", "apprentice.cli", "demo", "--json", "--no-progress",
           "--dir", directory, "--requests", str(requests)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(code / "operator")}
    peak = {"pss": 0.0, "rss": 0.0}
    cpu_before, load_before = _cpu_seconds(), os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=code
    )
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            pss, rss = tree_memory_mb(proc.pid)
            peak["pss"], peak["rss"] = max(peak["pss"], pss), max(peak["rss"], rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(err[-4000:])
    result = json.loads(out)
    result["peak_tree_pss_mb"] = round(peak["pss"], 1)
    result["peak_tree_rss_mb"] = round(peak["rss"], 1)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    result["cpu_seconds"] = round(_cpu_seconds() - cpu_before, 1)
    result["load_average"] = [round(x, 2) for x in (*load_before, *os.getloadavg())]
    return result, "apprentice " + " ".join(cmd[3:])


def _checks(result: dict) -> dict[str, bool]:
    promoted = [v for v in result["versions"] if v["state"] in ("promoted", "retired")]
    return {
        "within_4_minutes": result["seconds"] <= TARGETS["seconds"],
        "within_1_5_gb": result["peak_tree_pss_mb"] <= TARGETS["peak_tree_pss_mb"],
        "shift_detected": result.get("shift_detected_at") is not None,
        "steady_state_again": result["final_phase"] == "steady_state"
        and result.get("recovered_at") is not None,
        "spend_reduction_ge_0_97": (result["spend_reduction_last_1000"] or 0)
        >= TARGETS["spend_reduction_last_1000"],
        "heldout_ge_0_95_every_version": bool(promoted)
        and all((v["heldout_score"] or 0) >= TARGETS["heldout_agreement"] for v in promoted),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--no-clone", action="store_true", help="run this checkout (uncommitted edits too)"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()
    runs = []
    command = ""
    for _ in range(args.runs):
        scratch = Path(tempfile.mkdtemp(prefix="apprentice-demo-bench-"))
        code = REPO if args.no_clone else fresh_clone(scratch / "clone")
        result, command = one_run(args.requests, str(scratch / "demo"), code)
        result["fresh_clone"] = not args.no_clone
        runs.append(result)
        print(json.dumps(result), file=sys.stderr)
        if not args.no_clone:
            shutil.rmtree(code, ignore_errors=True)

    record = build_record(runs, command, load_before, args.requests)
    write(record)
    print(json.dumps(record, indent=2))
    return 0 if record["passed"] else 1


def build_record(
    runs: list[dict], command: str, load_before: tuple[float, ...] | list[float], requests: int
) -> dict:
    def median(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return statistics.median(values) if values else None

    checks = [_checks(r) for r in runs]
    return {
        "benchmark": "apprentice demo",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "command": command,
        "requests": requests,
        "runs": runs,
        "median": {
            k: median(k)
            for k in ("seconds", "cpu_seconds", "peak_tree_pss_mb", "peak_tree_rss_mb",
                      "spend_reduction_last_1000",
                      "heldout_agreement", "teacher_calls", "shift_detected_at", "recovered_at")
        },
        "targets": TARGETS,
        "checks": checks,
        "passed": all(all(c.values()) for c in checks),
    }  # fmt: skip


def write(record: dict) -> None:
    runs, checks, m = record["runs"], record["checks"], record["median"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    rows = [
        ("runs", str(len(runs)), "3 fresh runs"),
        ("requests", f"{record['requests']:,}", ""),
        ("teacher calls", f"{m['teacher_calls']}", ""),
        ("shift at request", "2000", ""),
        ("shift detected at request", f"{m['shift_detected_at']}", "detected"),
        ("steady again (coaching over) from request", f"{m['recovered_at']}", "recovers"),
        ("spend reduction, last 1,000", f"{m['spend_reduction_last_1000']}", ">= 0.97"),
        ("held-out agreement, active version", f"{m['heldout_agreement']}", ">= 0.95"),
        ("seconds (demo's own clock)", f"{m['seconds']}", "<= 240"),
        ("CPU seconds (user + system, demo and trainers)", f"{m['cpu_seconds']}", ""),
        ("peak PSS, whole process tree (MB)", f"{m['peak_tree_pss_mb']}", "<= 1536"),
        ("peak RSS summed over the tree (MB; shared pages once per process)",
         f"{m['peak_tree_rss_mb']}", ""),
    ]  # fmt: skip
    per_run = [
        f"- run {i + 1}: " + ", ".join(
            f"{v['version']} {v['state']} {v['heldout_score']:.3f}" for v in r["versions"]
        ) + f"; spend cut {r['spend_reduction_last_1000']}; {r['seconds']} s "
        f"({r.get('cpu_seconds')} CPU s, load {r.get('load_average', ['?'])[0]}); "
        f"{r.get('peak_tree_pss_mb')} MB; missed: "
        + (", ".join(k for k, ok in c.items() if not ok) or "nothing")
        for i, (r, c) in enumerate(zip(runs, checks, strict=True))
    ]  # fmt: skip
    lb, la = record["machine"]["load_average_before"], record["machine"]["load_average_after"]
    md = ["# apprentice demo benchmark", "",
          f"Machine: {record['machine']['cpus']} CPUs, {record['machine']['platform']}, "
          f"Python {record['machine']['python']}; 1-minute load average {lb[0]} before, "
          f"{la[0]} after (other work shares the cores).",
          f"Command: `{record['command']}` ({len(runs)} run(s), each "
          f"{'in a fresh clone' if all(r.get('fresh_clone') for r in runs) else 'in one checkout'}"
          "; medians below).", "",
          "| measure | median | target |", "|---|---|---|",
          *[f"| {a} | {b} | {c} |" for a, b, c in rows], "",
          "Versions per run (held-out agreement) and the checks each run missed:", "",
          *per_run, "",
          f"All targets met in every run: **{record['passed']}**.", "",
          "Memory is the peak of the process tree's summed PSS (gateway plus trainer): both",
          "processes map the same torch libraries, which the machine holds once; the RSS sum",
          "counts those pages once per process. Seconds are wall time on the machine above;",
          "CPU seconds (user + system of the demo and its trainers) move less with the load",
          "of other work. Training is seeded and runs on 2 torch threads, the student on 1,",
          "and request ids are deterministic, so reruns on one machine make the same",
          "decisions.", ""]  # fmt: skip
    (RESULTS / "demo.md").write_text("\n".join(md), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
