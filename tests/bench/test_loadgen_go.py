"""The HTTP benches' Go load generator (bench/loadgen), built with Go and run for a
fraction of a second against a real aiohttp server on loopback, which records what it
received: the counts, the pacing, the bodies and the errors are checked on both sides."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import _loadgen as loadgen  # bench/_loadgen.py, found by the path above

BODY = '{"input": {"text": "ticket {i} cannot log in"}}'


@dataclass
class Seen:
    """What the server received: arrival time, the counter in the body, the peer port."""

    arrivals: list[tuple[float, str, int]] = field(default_factory=list)
    headers: list[str | None] = field(default_factory=list)


@dataclass
class Target:
    base: str
    seen: Seen


@pytest.fixture(scope="module")
def executable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loadgen.binary(tmp_path_factory.mktemp("loadgen") / "loadgen")


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """/ok answers JSON; /fail answers 500 when the counter is a multiple of 5; /text
    answers 200 with a body that is not JSON."""
    seen = Seen()
    loop = asyncio.get_running_loop()

    async def handle(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        counter = body["input"]["text"].split()[1]
        peer = request.transport.get_extra_info("peername")[1]  # type: ignore[union-attr]
        seen.arrivals.append((loop.time(), counter, peer))
        seen.headers.append(request.headers.get("X-Bench"))
        kind = request.match_info["kind"]
        if kind == "fail" and int(counter) % 5 == 0:
            return web.json_response({"error": "boom"}, status=500)
        if kind == "text":
            return web.Response(text="not json")
        return web.json_response({"output": {"label": "login"}, "counter": counter})

    app = web.Application()
    app.router.add_post("/v1/tasks/{kind}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Target(f"http://127.0.0.1:{server.port}/v1/tasks", seen)
    finally:
        await server.close()


async def test_the_open_loop_sends_each_request_once_at_its_rate(
    executable: Path, target: Target
) -> None:
    rate, seconds, warmup = 200, 0.5, 5
    report = await asyncio.to_thread(
        loadgen.run, f"{target.base}/ok", mode="open", rate=rate, seconds=seconds, body=BODY,
        warmup=warmup, start=1000, headers=["X-Bench: yes"], check_every=4,
        executable=executable,
    )  # fmt: skip
    n = int(rate * seconds)
    assert report["requests"] == report["answered"] == report["ok"] == n
    assert report["errors"] == report["non_200"] == report["io_errors"] == 0
    assert report["status_counts"] == {"200": n}
    assert report["json_checked"] >= n // 4
    assert report["next_counter"] == 1000 + warmup + n
    # The server got the warm-up and then each counter once, with the extra header.
    counters = [c for _, c, _ in target.seen.arrivals]
    assert sorted(int(c) for c in counters) == list(range(1000, 1000 + warmup + n))
    assert set(target.seen.headers) == {"yes"}
    # Paced, never early: the last request is due (n - 1) / rate after the first, and a
    # burst would arrive within milliseconds.
    measured = [t for t, c, _ in target.seen.arrivals if int(c) >= 1000 + warmup]
    assert max(measured) - min(measured) >= 0.3
    assert report["elapsed_s"] >= (n - 1) / rate
    assert rate * 0.5 <= report["achieved_rps"] <= rate * n / (n - 1)
    lat = report["latency"]
    assert 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["p99_9_ms"] <= lat["max_ms"]
    assert report["send_lag"]["p50_ms"] >= 0


async def test_a_500_is_counted_as_an_error(executable: Path, target: Target) -> None:
    """Counters 0..99 modulo 50, zero-padded: each of 000..049 twice, and the server
    fails the multiples of 5 (20 requests)."""
    report = await asyncio.to_thread(
        loadgen.run, f"{target.base}/fail", mode="open", rate=400, seconds=0.25, body=BODY,
        mod=50, pad=3, executable=executable,
    )  # fmt: skip
    assert report["requests"] == report["answered"] == 100
    assert report["errors"] == report["non_200"] == 20
    assert report["ok"] == 80
    assert report["status_counts"] == {"200": 80, "500": 20}
    counters = sorted(c for _, c, _ in target.seen.arrivals)
    assert counters == sorted([f"{i:03d}" for i in range(50)] * 2)


async def test_an_answer_that_is_not_json_is_an_error(executable: Path, target: Target) -> None:
    report = await asyncio.to_thread(
        loadgen.run, f"{target.base}/text", mode="open", rate=400, seconds=0.05, body=BODY,
        check_every=1, executable=executable,
    )  # fmt: skip
    assert report["requests"] == report["json_checked"] == report["bad_json"] == 20
    assert report["errors"] == 20 and report["ok"] == 0


async def test_the_closed_loop_keeps_its_connections_busy(executable: Path, target: Target) -> None:
    report = await asyncio.to_thread(
        loadgen.run, f"{target.base}/ok", mode="closed", connections=4, seconds=0.3, body=BODY,
        warmup=8, executable=executable,
    )  # fmt: skip
    done = report["requests"]
    assert done > 0 and report["answered"] == report["ok"] == done and report["errors"] == 0
    assert len(target.seen.arrivals) == 8 + done  # the warm-up, then every measured request
    assert report["connections_opened"] == 4  # kept alive: no reconnects
    assert len({peer for _, _, peer in target.seen.arrivals}) == 4
    assert report["elapsed_s"] >= 0.3
    assert report["achieved_rps"] == pytest.approx(done / report["elapsed_s"], rel=0.01)


async def test_a_bad_flag_is_refused_with_what_is_wrong(executable: Path) -> None:
    with pytest.raises(loadgen.LoadgenError, match='-mode "sideways": want open or closed'):
        loadgen.run("http://127.0.0.1:1/x", mode="sideways", seconds=0.1, body=BODY,
                    executable=executable)  # fmt: skip
    with pytest.raises(loadgen.LoadgenError, match="is not JSON"):
        loadgen.run("http://127.0.0.1:1/x", mode="open", seconds=0.1, body="{i",
                    executable=executable)  # fmt: skip


def test_without_go_the_bench_says_to_run_make_loadgen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` here
    with pytest.raises(loadgen.LoadgenError, match="`make loadgen`") as raised:
        loadgen.binary(tmp_path / "loadgen")
    assert "`go` is not on PATH" in str(raised.value)


def test_the_report_maps_to_the_benches_summary() -> None:
    report = json.loads(
        '{"answered": 10, "requests": 10, "errors": 1, "achieved_rps": 99.5, "client_cpu_s":'
        ' 0.0002, "latency": {"p50_ms": 0.3, "p90_ms": 0.4, "p99_ms": 0.9, "p99_9_ms": 1.0,'
        ' "max_ms": 1.1, "mean_ms": 0.35}, "send_lag": {"p99_ms": 0.05}}'
    )
    s = loadgen.summary(report)
    assert (s["requests"], s["errors"], s["p99_ms"], s["send_lag_p99_ms"]) == (10, 1, 0.9, 0.05)
    assert s["client_cpu_us"] == 20.0
