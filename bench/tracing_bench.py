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

Writes bench/results/tracing.json and tracing.md (``--out DIR`` elsewhere, for a quick
check: ``--requests 200 --rounds 1 --out /tmp/tracing``).
Run: ``.venv/bin/python bench/tracing_bench.py [--requests 3000] [--rounds 3]``.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _rounds  # the sibling module, found by the path above
import gateway_bench as gb

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

        async def settle() -> None:
            await app.gateway.flush()  # the rows' writes are part of the cost
            if traced is not None:  # so is exporting every span of these requests
                await asyncio.to_thread(traced.flush)

        return await _rounds.timed(
            lambda i: app.run(gb.TASK, gb._input(i)), settle, warmup=500, n=n
        )


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
    collector, endpoint = start_collector()

    async def measure(d: Path, v: str) -> tuple[float, float]:
        return await phase(setup(d, v, endpoint), n)

    try:
        cpu, rps = await _rounds.alternate(VARIANTS, rounds, measure)
    finally:
        collector.kill()
        collector.wait()
    result, med = _rounds.summary(n, rounds, cpu, rps)
    return {
        **result,
        "on_minus_off_us": round(med["on"] - med["off"], 1),
        "unsampled_minus_off_us": round(med["on_unsampled"] - med["off"], 1),
        "hooks_off_ns": round(hooks_off_ns()),
    }


def render_md(r: dict[str, Any]) -> str:
    return _rounds.report_head(
        "Tracing (issue 13 item 8)", "steady state (local-only path), instant student", r, VARIANTS
    ) + (
        f"Tracing every request and exporting it over OTLP/HTTP costs "
        f"{r['on_minus_off_us']:+.1f} µs of CPU per request against tracing off; on but "
        f"sampled out, {r['unsampled_minus_off_us']:+.1f} µs. With tracing off the seven "
        f"hooks cost {r['hooks_off_ns']} ns per request in all.\n"
    )


def main() -> None:
    _rounds.cli(__doc__ or "", "tracing", (3000, 3), gb.RESULTS, main_async, render_md)


if __name__ == "__main__":
    main()
