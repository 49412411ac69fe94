"""Start time of the test control plane once built: ``python bench/cluster_bench.py``.

Each run stops any running plane (``cluster.py down``), then times ``cluster.py up`` from
the command to "every fake node Ready and the default ServiceAccount made" (what the
script waits for before it prints ``export KUBECONFIG=...``). Prints JSON; the results
and the cold build time are in bench/results/cluster.md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "hack" / "cluster" / "cluster.py"
TARGET_S = 30.0


def once() -> float:
    subprocess.run([sys.executable, str(SCRIPT), "down"], check=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, str(SCRIPT), "up"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(runs: int = 3) -> int:
    subprocess.run(["bash", str(ROOT / "hack" / "cluster" / "build.sh")], check=True)
    load_before = os.getloadavg()
    seconds = [round(once(), 2) for _ in range(runs)]
    subprocess.run([sys.executable, str(SCRIPT), "down"], check=True)
    result = {
        "benchmark": "control plane start (built)",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "runs_s": seconds,
        "median_s": statistics.median(seconds),
        "target_s": TARGET_S,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["median_s"] <= TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
