"""The Go load generator (``bench/loadgen/``) from the Python benches: build, run, read.

The HTTP benches used to drive the server with an aiohttp client in their own process,
on the same two cores: that client spends about as much CPU per request as the server,
and its event loop's timers fire up to a millisecond late (epoll waits in whole
milliseconds), which the open loop counts as latency. The Go generator sends on a
timerfd, spends a few microseconds a request and keeps to one core (``gomaxprocs``).

``binary()`` builds it into ``.tools/loadgen`` when missing or older than its sources
(what ``make loadgen`` does), ``run()`` runs it once and returns its JSON report, and
``summary()`` puts a report in the benches' own summary shape.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "bench" / "loadgen"
BINARY = ROOT / ".tools" / "loadgen"
CLIENT = "Go load generator (bench/loadgen: one core, its own process)"


class LoadgenError(RuntimeError):
    """The generator could not be built or run; the message says what to do."""


def go_build(source: Path, dest: Path, what: str, hint: str = "") -> Path:
    """``source``'s Go program built at ``dest`` when missing or older than its sources
    (what ``make loadgen`` does); without Go, a :class:`LoadgenError` naming ``what``,
    ``make loadgen`` and ``hint`` (another way out)."""
    sources = [p for p in source.iterdir() if p.suffix == ".go" or p.name == "go.mod"]
    if dest.exists() and dest.stat().st_mtime >= max(p.stat().st_mtime for p in sources):
        return dest
    go = shutil.which("go")
    if go is None:
        raise LoadgenError(
            f"{what} is not built ({dest}) and `go` is not on PATH: install Go "
            f"(https://go.dev/dl/, any version since 1.22), then run `make loadgen`{hint}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    # GOWORK=off: a go.work above the checkout must not pull this module into it.
    env = {**os.environ, "GOWORK": "off"}
    built = subprocess.run(
        [go, "build", "-trimpath", "-o", str(dest), "."],
        cwd=source, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if built.returncode != 0:
        raise LoadgenError(f"`go build` in {source} failed:\n{built.stderr.strip()}")
    return dest


def binary(dest: Path = BINARY) -> Path:
    """The built generator at ``dest``, built first with Go if missing or stale."""
    return go_build(SOURCE, dest, "the HTTP benches' load generator")


def run(
    url: str,
    *,
    mode: str,
    seconds: float,
    body: str,
    rate: float | None = None,
    connections: int | None = None,
    warmup: int = 0,
    mod: int = 0,
    start: int = 0,
    pad: int = 0,
    headers: Sequence[str] = (),
    check_every: int = 16,
    gomaxprocs: int = 1,
    executable: Path | None = None,
) -> dict[str, Any]:
    """One run of the generator (``mode`` "open" at ``rate``/s or "closed"): its report.

    ``body`` is the JSON body with ``{i}`` where each request's counter goes (modulo
    ``mod`` when above 0, zero-padded to ``pad`` digits; the first is ``start``).
    """
    cmd = [str(executable or binary()), "-url", url, "-mode", mode, "-duration", str(seconds)]
    cmd += ["-body", body, "-warmup", str(warmup), "-mod", str(mod), "-start", str(start)]
    cmd += ["-pad", str(pad), "-check-every", str(check_every), "-gomaxprocs", str(gomaxprocs)]
    if rate is not None:
        cmd += ["-rate", str(rate)]
    if connections is not None:
        cmd += ["-connections", str(connections)]
    for header in headers:
        cmd += ["-H", header]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds * 4 + 60, check=False
    )
    if done.returncode != 0:
        raise LoadgenError(f"loadgen exited {done.returncode}: {done.stderr.strip()}")
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """A report in the benches' summary shape (``gateway_bench._summary``'s keys first)."""
    lat = report["latency"]
    out = {
        "requests": report["answered"],
        "errors": report["errors"],
        "achieved_rps": report["achieved_rps"],
        "p50_ms": lat["p50_ms"],
        "p99_ms": lat["p99_ms"],
        "mean_ms": lat["mean_ms"],
        "p90_ms": lat["p90_ms"],
        "p99_9_ms": lat["p99_9_ms"],
        "max_ms": lat["max_ms"],
        "client_cpu_us": round(report["client_cpu_s"] / max(1, report["requests"]) * 1e6, 2),
    }
    if report.get("send_lag"):
        out["send_lag_p99_ms"] = report["send_lag"]["p99_ms"]
    return out
