"""The teacher bench's harness: the loopback teacher and what drives the whole gateway.

Two harnesses, chosen with ``teacher_bench.py --harness``:

- ``go`` (the default): the loopback teacher is ``bench/loopteacher`` (Go, one core,
  built into ``.tools/loopteacher``) and the whole gateway is driven by the HTTP
  benches' Go load generator (``bench/loadgen``, one core, its own process);
- ``python``: the teacher is an aiohttp server in a child process (:func:`serve`) and
  the gateway is driven by an aiohttp client in the bench's own process: the harness
  of the figures before the Go one, kept for continuity.

At 1,000 requests/s with the 1 s teacher the Python teacher and client each take a
large share of a core, and the machine has two: the gateway competed with its own
harness. Both harnesses report their CPU (teacher plus client) beside the gateway's.
Both teachers answer the same bytes (:data:`ANSWER`) on the same routes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apprentice.gateway.server import tune_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loadgen as loadgen  # bench/_loadgen.py, found by the path above

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "bench" / "loopteacher"
BINARY = ROOT / ".tools" / "loopteacher"
DELAY_S = 1.0
HARNESSES = {
    "go": "Go harness: teacher bench/loopteacher, client bench/loadgen (each one core, "
    "its own process)",
    "python": "Python harness: aiohttp teacher in a child process, aiohttp client in the "
    "bench process",
}
ANSWER = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": '{"category": "billing", "priority": 2}'},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 60, "completion_tokens": 12, "total_tokens": 72},
}
BODY = '{"input": {"text": "ticket {i}: my invoice is wrong"}}'
"""The gateway's request body; each request's counter makes it a new example."""


class HarnessError(RuntimeError):
    """The Go teacher could not be built or started; the message says what to do."""


@dataclass
class Loopback:
    """A running loopback teacher: ``/instant/v1`` and ``/slow/v1`` on ``port``."""

    harness: str
    proc: subprocess.Popen[str]
    port: int

    def cpu_s(self) -> float:
        """The teacher process's CPU seconds so far (scheduler run time)."""
        return run_ns(self.proc.pid) / 1e9


def teacher_binary(dest: Path = BINARY) -> Path:
    """``bench/loopteacher`` built at ``dest`` (with Go) when missing or older than its sources."""
    try:
        return loadgen.go_build(
            SOURCE, dest, "the Go loopback teacher", ", or pass --harness python"
        )
    except loadgen.LoadgenError as exc:
        raise HarnessError(str(exc)) from None


def build(harness: str) -> None:
    """Everything ``harness`` runs, built before the run rather than minutes into it."""
    if harness == "go":
        teacher_binary()
        loadgen.binary()


@contextmanager
def loopback(
    harness: str, delay_s: float = DELAY_S, executable: Path | None = None
) -> Iterator[Loopback]:
    """The harness's loopback teacher, started on a free port and stopped on exit.

    ``executable``: the Go teacher's binary (built at ``.tools/loopteacher`` if not given).
    """
    if harness == "go":
        cmd = [
            str(executable or teacher_binary()),
            "-delay",
            f"{delay_s}s",
            "-answer",
            json.dumps(ANSWER),
        ]
    else:
        cmd = [sys.executable, __file__, str(delay_s)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise HarnessError(f"the {harness} loopback teacher did not start: {line!r}")
        yield Loopback(harness, proc, int(line))
    finally:
        proc.terminate()
        proc.wait()


def run_ns(pid: int) -> int:
    """Nanoseconds ``pid``'s live threads have run (Linux /proc schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total


def connections(rate: int) -> int:
    """Keep-alive connections for an open loop at ``rate``/s: each waits the teacher's second."""
    return max(16, int(rate * DELAY_S * 1.25) + 16)


def go_result(report: dict[str, Any]) -> dict[str, Any]:
    """A generator report in the bench's result shape (``teacher_bench.open_loop``'s keys)."""
    lat = report["latency"]
    failed = {k: report[k] for k in ("non_200", "io_errors", "bad_json") if report[k]}
    return {
        "offered_rps": report.get("offered_rps"),
        "requests": report["requests"],
        "served": report["ok"],
        "failed": failed,
        "served_rps": report["achieved_rps"],
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "max_ms": lat["max_ms"],
        "send_lag_p99_ms": (report.get("send_lag") or {}).get("p99_ms"),
        "client_cpu_s": report["client_cpu_s"],
    }


def md_lines(out: dict[str, Any]) -> list[str]:
    """Which harness produced which figures (``teacher_harness``), and how they count."""
    first = out.get("harness", "python")
    used = {first} | {
        str(g["harness"]) for k, g in out.items() if k.startswith("gateway") and "harness" in g
    }
    return [
        f"The teacher-call-alone rows and LiteLLM's used the {first} harness; each gateway "
        "row names its own. " + " ".join(f"{HARNESSES[h]}." for h in sorted(used)),
        "The Go client counts each latency from the request's intended send time (a late "
        "send counts); the Python client from when its task started. Harness CPU per "
        "request: the teacher's (its threads' run time) plus the client's (the Go "
        "generator's own rusage, or this process's CPU), over the measured seconds. "
        "Achieved/s: answers over the span from the first send to the last answer, which "
        "includes the teacher's last second (served in full at R/s for S s reads about "
        "R·S/(S+1)).",
    ]


def serve(delay_s: float) -> None:
    """The Python loopback teacher (child process): prints its port, serves until killed."""
    from aiohttp import web

    body = json.dumps(ANSWER).encode()

    async def instant(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(delay_s)
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/instant/v1/chat/completions", instant)
        app.router.add_post("/slow/v1/chat/completions", slow)
        runner = web.AppRunner(app, access_log=None, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        tune_process()  # a stand-in for a remote API: its own GC pauses are not ours
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    serve(float(sys.argv[1]))
