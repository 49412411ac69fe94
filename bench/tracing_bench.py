"""Issue 13 item 8 on the hot path: what OpenTelemetry tracing costs, off and on.

The same steady-state task, store and instant student as ``gateway_bench.py`` (its setup
is reused), in process through the facade (``app.run``: the pipeline without HTTP, so
tracing's own cost is not lost in the HTTP noise of a shared machine). Variants,
alternating ``--rounds`` times so every one sees the same machine load:

- ``off``: ``telemetry.traces.enabled`` false (the default): seven hook calls per request
  that return what they were given; nothing of OpenTelemetry is imported;
- ``on``: every request traced (``sample_ratio`` 1) and exported over OTLP/HTTP to a
  collector in another process (a loopback HTTP server that accepts and drops);
- ``on_unsampled``: tracing on with ``sample_ratio`` 0 (the spans are non-recording).

``cpu_us`` is this process' CPU time per request (the store writer's and the span
exporter's threads included: encoding and sending the spans is part of the cost),
requests one after another, the median round. ``hooks_off_ns`` is the seven hooks alone
with tracing off, timed in a loop.

Writes bench/results/tracing.json and tracing.md.
Run: ``.venv/bin/python bench/tracing_bench.py [--requests 3000] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_bench as gb  # the sibling script, found by the path above

from apprentice.gateway import tracing
from apprentice.gateway.facade import Apprentice

VARIANTS = ("off", "on", "on_unsampled")

# A collector that accepts every export and drops it (an empty protobuf answer is valid).
_COLLECTOR = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_collector() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _COLLECTOR, str(port)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until it accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the collector did not start")


def setup(directory: Path, variant: str, endpoint: str) -> Path:
    cfg_path = gb.write_setup(directory)
    if variant != "off":
        data = yaml.safe_load(cfg_path.read_text())
        ratio = 0.0 if variant == "on_unsampled" else 1.0
        data["telemetry"] = {
            "traces": {"enabled": True, "endpoint": endpoint, "sample_ratio": ratio}
        }
        cfg_path.write_text(yaml.safe_dump(data))
    return cfg_path


async def phase(cfg_path: Path, n: int) -> tuple[float, float]:
    """(CPU µs per request, requests/s), ``n`` requests one after another."""
    app = Apprentice.from_config(cfg_path, student_factory=lambda _t: gb.InstantStudent())
    async with app:
        traced = app.gateway.tracing
        for i in range(500):  # warm-up
            await app.run(gb.TASK, gb._input(i))
        await app.gateway.flush()
        if traced is not None:
            await asyncio.to_thread(traced.flush)
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(n):
            await app.run(gb.TASK, gb._input(i))
        await app.gateway.flush()  # the rows' writes are part of the cost
        if traced is not None:  # so is exporting every span of these requests
            await asyncio.to_thread(traced.flush)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return cpu / n * 1e6, n / wall


def hooks_off_ns(n: int = 200_000) -> float:
    """Nanoseconds per request for the seven hooks with tracing off (what the path pays)."""
    assert tracing._spans is None
    req: Any = object()  # the hooks with tracing off never read it
    call: Any = None
    start = time.process_time()  # CPU time: wall time on shared cores counts others' work
    for _ in range(n):
        with tracing.request("t"):
            tracing.admitted(req)
            tracing.teacher(req, call)
            tracing.student(req, call)
            tracing.judge(req, call)
            tracing.commit(req, call)
            tracing.store(req, call)
    return (time.process_time() - start) / n * 1e9


async def main_async(n: int, rounds: int) -> dict[str, Any]:
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
    collector, endpoint = start_collector()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(rounds):
                for v in VARIANTS:
                    d = Path(tmp) / f"{v}-{r}"
                    d.mkdir()
                    us, per_s = await phase(setup(d, v, endpoint), n)
                    cpu[v].append(us)
                    rps[v].append(per_s)
    finally:
        collector.kill()
        collector.wait()
    med = {v: statistics.median(xs) for v, xs in cpu.items()}
    machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
    return {
        "machine": {**machine, "load": os.getloadavg()[0]},
        "requests": n,
        "rounds": rounds,
        "cpu_us": {v: round(x, 1) for v, x in med.items()},
        "rounds_cpu_us": {v: [round(x, 1) for x in xs] for v, xs in cpu.items()},
        "rounds_rps": {v: [round(x) for x in xs] for v, xs in rps.items()},
        "on_minus_off_us": round(med["on"] - med["off"], 1),
        "unsampled_minus_off_us": round(med["on_unsampled"] - med["off"], 1),
        "hooks_off_ns": round(hooks_off_ns()),
    }


def render_md(r: dict[str, Any]) -> str:
    rows = "\n".join(
        f"| {v} | {r['cpu_us'][v]:.0f} | {', '.join(f'{x:.0f}' for x in r['rounds_cpu_us'][v])}"
        f" | {', '.join(str(x) for x in r['rounds_rps'][v])} |"
        for v in VARIANTS
    )
    return (
        "# Tracing (issue 13 item 8)\n\n"
        f"In process (facade), steady state (local-only path), instant student; "
        f"{r['rounds']} alternating rounds of {r['requests']} sequential requests; load "
        f"average {r['machine']['load']:.1f} on {r['machine']['cpus']} CPUs (CPU time is "
        "the figure to read: wall-clock rates on a shared machine are noise).\n\n"
        "| variant | CPU µs/request (median) | rounds, µs | rounds, req/s |\n"
        "|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Tracing every request and exporting it over OTLP/HTTP costs "
        f"{r['on_minus_off_us']:+.1f} µs of CPU per request against tracing off; on but "
        f"sampled out, {r['unsampled_minus_off_us']:+.1f} µs. With tracing off the seven "
        f"hooks cost {r['hooks_off_ns']} ns per request in all.\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    result = asyncio.run(main_async(args.requests, args.rounds))
    gb.RESULTS.mkdir(exist_ok=True)
    (gb.RESULTS / "tracing.json").write_text(json.dumps(result, indent=2) + "\n")
    (gb.RESULTS / "tracing.md").write_text(render_md(result))
    print(render_md(result))


if __name__ == "__main__":
    main()
