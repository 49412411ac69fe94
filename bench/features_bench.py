"""Issue 13's features on the hot path: what API keys, tags and the cache cost on the
local-only HTTP path, tracing off (the issue: within 10% of the throughput without them).

The same gateway, store and instant student as ``gateway_bench.py`` (its setup and its
server child are reused), measured in ONE run, alternating ``--rounds`` times so every
variant sees the same machine load, each variant with its own store:

- ``keys_off``: ``gateway.require_api_keys`` off (the baseline);
- ``keys_on``: keys required, every request sends ``Authorization: Bearer <key>`` for
  the task;
- ``keys_and_tags``: and two tags per request (``metadata``, stored with the request);
- ``keys_tags_cache``: and the task's answer cache on. Every input of the whole run is
  new, in every variant, so every cache lookup MISSES: the cache's worst case (a hit
  skips the student and the engine, so repeats would flatter it).

Per variant (median round): ``max_rps``, closed-loop throughput with 64 requests in
flight, and p50/p99 at 500 requests/s offered; and the CPU each request costs during
the closed loop, apart: the server's event loop (its main thread), the server's other
threads (the store writer), and the load generator, which runs on the same cores (an
extra header costs it too). Ratios to ``keys_off`` are taken within each round and the
median is reported: for throughput and for the server's CPU per request. The CPU
ratio is less sensitive to other load than throughput, not immune: a slower server
also batches less per event-loop iteration and wakes its client more often, so a few
percent more instructions per request show as rather more CPU time on both sides.
Only a quiet machine gives the throughput figure the issue asks about.

The store's counters check the path after the run: no cache hits and (nearly) no
teacher calls, so what was measured is the local-only path.

The load comes from ``bench/loadgen`` (Go, its own process, one core; ``make loadgen``),
or with ``--client python`` from the aiohttp client in this process, as before: see
gateway_bench.py for why. The report names the client.

Writes bench/results/features.json and features.md.
Run: ``.venv/bin/python bench/features_bench.py [--seconds 4] [--rounds 5] [--results DIR]
[--client go|python]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _loadgen as loadgen
import _loops
import gateway_bench as gb  # the sibling script, found by the path above

from apprentice import config as config_mod
from apprentice.gateway import auth, tags
from apprentice.store import open_store
from apprentice.store.api_keys import ApiKeyRecord

RATE = 500
VARIANTS = ("keys_off", "keys_on", "keys_and_tags", "keys_tags_cache")
TAGS = {"customer": "acme", "team": "billing"}
_TICK = os.sysconf("SC_CLK_TCK")
_fresh = itertools.count()  # every input of the run is new (see the docstring)
PAD = 9  # the counter's digits in each input


def _input() -> dict[str, Any]:
    return {"text": gb.TEXT.format(i=f"{next(_fresh):0{PAD}d}")}


def _go_run(url: str, token: str | None, tagged: bool, **flags: Any) -> dict[str, Any]:
    """One Go generator run whose inputs continue ``_fresh`` (still none repeated)."""
    global _fresh  # the run's one input counter, shared by both clients
    body: dict[str, Any] = {"input": {"text": gb.TEXT}}
    if tagged:
        body["metadata"] = TAGS
    start = next(_fresh)
    report = loadgen.run(
        url, body=json.dumps(body), start=start, pad=PAD,
        headers=[f"Authorization: Bearer {token}"] if token else [], **flags,
    )  # fmt: skip
    _fresh = itertools.count(report["next_counter"])
    if report["errors"]:
        raise RuntimeError(f"{report['errors']} errors from the Go generator: {report}")
    return report


def setup(directory: Path, keys: bool, cache: bool = False) -> tuple[Path, str | None]:
    """gateway_bench's steady-state setup, with keys required and one key made for the
    task if ``keys``, and the task's answer cache on if ``cache``; tracing stays off."""
    cfg_path = gb.write_setup(directory)
    data = yaml.safe_load(cfg_path.read_text())
    data["gateway"]["require_api_keys"] = keys
    if cache:
        for task in data["tasks"]:
            task["cache"] = {"enabled": True, "ttl_s": 300}
    cfg_path.write_text(yaml.safe_dump(data))
    assert not config_mod.load(cfg_path).telemetry.traces.enabled
    if not keys:
        return cfg_path, None
    key_id, token = auth.mint()
    record = ApiKeyRecord(key_id, auth.digest(token), (gb.TASK,), "bench", datetime.now(UTC))
    with open_store(data["store"]["url"]) as store:
        store.add_api_key(record)
    return cfg_path, token


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of ``pid``, from /proc."""
    found: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


async def measured(
    pid: int, call: Callable[[int], Awaitable[None]], seconds: float
) -> dict[str, Any]:
    """The closed loop, with the CPU per request of the server's event loop (its main
    thread), its other threads and this process (the load generator)."""
    before, client = thread_cpu(pid), time.process_time()
    started = time.perf_counter()
    rps = await _loops.closed_loop(call, seconds)
    done = rps * (time.perf_counter() - started)
    client = time.process_time() - client
    after = thread_cpu(pid)
    spent = {t: after[t] - before.get(t, 0.0) for t in after}
    loop = spent.pop(pid, 0.0)
    per = 1e6 / done
    return {
        "max_rps": round(rps, 1),
        "server_loop_us": round(loop * per, 1),
        "server_other_us": round(sum(spent.values()) * per, 1),
        "server_us": round((loop + sum(spent.values())) * per, 1),
        "client_us": round(client * per, 1),
    }


async def go_phase(
    cfg_path: Path, token: str | None, seconds: float, tagged: bool
) -> dict[str, Any]:
    """``phase`` with the Go generator: the same warm-up, closed loop and open loop."""
    proc, url = gb.start_server(cfg_path, "gateway")
    try:
        await asyncio.to_thread(
            _go_run, url, token, tagged, mode="closed", seconds=0, warmup=300
        )  # warm-up: connections, caches, the key's first read
        before = thread_cpu(proc.pid)
        closed = await asyncio.to_thread(
            _go_run, url, token, tagged, mode="closed", seconds=seconds, connections=64
        )
        after = thread_cpu(proc.pid)
        spent = {t: after[t] - before.get(t, 0.0) for t in after}
        loop = spent.pop(proc.pid, 0.0)
        per = 1e6 / closed["requests"]
        out: dict[str, Any] = {
            "max_rps": closed["achieved_rps"],
            "server_loop_us": round(loop * per, 1),
            "server_other_us": round(sum(spent.values()) * per, 1),
            "server_us": round((loop + sum(spent.values())) * per, 1),
            "client_us": round(closed["client_cpu_s"] * per, 1),
        }
        report = await asyncio.to_thread(
            _go_run, url, token, tagged, mode="open", rate=RATE, seconds=seconds, warmup=50
        )
        out[str(RATE)] = loadgen.summary(report)
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def phase(cfg_path: Path, token: str | None, seconds: float, tagged: bool) -> dict[str, Any]:
    import aiohttp

    proc, url = gb.start_server(cfg_path, "gateway")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn, headers=headers) as session:

            async def call(_: int) -> None:
                body: dict[str, Any] = {"input": _input()}
                if tagged:
                    body["metadata"] = TAGS
                async with session.post(url, json=body) as resp:
                    if resp.status != 200:
                        raise RuntimeError(await resp.text())
                    await resp.read()

            for i in range(300):  # warm-up: connections, caches, the key's first read
                await call(i)
            out = await measured(proc.pid, call, seconds)
            out[str(RATE)] = await _loops.open_loop(call, RATE, seconds)
            return out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def check_cost(store_url: str, token: str, n: int = 50_000) -> float:
    """Microseconds per ``KeyRing.check`` of a valid key (remembered, as on the hot path)."""
    with open_store(store_url) as store:
        ring = auth.KeyRing(lambda: store, required=True, admin_token_env="BENCH_NO_ADMIN")
        header = f"Bearer {token}"
        await ring.check(header, gb.TASK)
        started = time.perf_counter()
        for _ in range(n):
            await ring.check(header, gb.TASK)
        return (time.perf_counter() - started) / n * 1e6


def tags_cost(n: int = 50_000) -> float:
    """Microseconds per ``tags.parse`` of two tags from the body and one from the header."""
    started = time.perf_counter()
    for _ in range(n):
        tags.parse(TAGS, "region=eu")
    return (time.perf_counter() - started) / n * 1e6


def summarise(found: list[dict[str, Any]], off: list[dict[str, Any]]) -> dict[str, Any]:
    """The median round of one variant, and its ratios to keys-off round by round."""
    med = {k: statistics.median(r[k] for r in found) for k in found[0] if k != str(RATE)}
    by_p99 = sorted(found, key=lambda r: r[str(RATE)]["p99_ms"])
    return {
        **med,
        "max_rps_rounds": [r["max_rps"] for r in found],
        "server_us_rounds": [r["server_us"] for r in found],
        str(RATE): by_p99[len(by_p99) // 2][str(RATE)],
        "throughput_ratio": round(
            statistics.median(r["max_rps"] / o["max_rps"] for r, o in zip(found, off, strict=True)),
            3,
        ),
        "server_cpu_ratio": round(
            statistics.median(
                o["server_us"] / r["server_us"] for r, o in zip(found, off, strict=True)
            ),
            3,
        ),
    }


def path_check(paths: dict[str, tuple[Path, str | None]]) -> dict[str, dict[str, int]]:
    """Each variant's store counters: the requests were local-only, the cache never hit."""
    out = {}
    for name, (cfg_path, _) in paths.items():
        with open_store(config_mod.load(cfg_path).store.url) as store:
            c = store.request_counts(gb.TASK)
        out[name] = {"requests": c.requests, "teacher_calls": c.teacher_calls,
                     "cache_hits": c.cache_hits}  # fmt: skip
    return out


async def main_async(seconds: float, rounds: int, client: str = "go") -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name in VARIANTS:
            (Path(tmp) / name).mkdir()
            paths[name] = setup(Path(tmp) / name, name != "keys_off", name == "keys_tags_cache")
        for _ in range(rounds):
            for name in VARIANTS:
                cfg_path, token = paths[name]
                tagged = name in ("keys_and_tags", "keys_tags_cache")
                run = go_phase if client == "go" else phase
                runs[name].append(await run(cfg_path, token, seconds, tagged))
        cfg_path, token = paths["keys_on"]
        assert token is not None
        check_us = await check_cost(config_mod.load(cfg_path).store.url, token)
        counts = path_check(paths)
    out: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, server on {_loops.server_loop()}",
        "seconds": seconds,
        "rounds": rounds,
        "client": gb.CLIENT_LABELS[client],
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "check_us": round(check_us, 2),
        "tags_us": round(tags_cost(), 2),
        "store_counts": counts,
    }
    for name in VARIANTS:
        out[name] = summarise(runs[name], runs["keys_off"])
    return out


def render_md(r: dict[str, Any]) -> str:
    lines = [
        "# Issue 13 features on the local-only HTTP path (tracing off)",
        "",
        f"{r['machine']}; {r['rounds']} alternating rounds of {r['seconds']} s; load average "
        f"{r['load_average_at_start']} at start, {r['load_average_at_end']} at the end. "
        "Generated by `bench/features_bench.py`. Every input is new (the cache always misses). "
        f"Load: {r.get('client', gb.CLIENT_LABELS['python'])}.",
        "",
        "| variant | max requests/s | of keys off | server CPU/request (event loop + other) "
        "| of keys off (CPU) | client CPU/request | p50 / p99 at 500/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in VARIANTS:
        v = r[name]
        at = v[str(RATE)]
        lines.append(
            f"| {name.replace('_', ' ')} | {v['max_rps']:,.0f} | {v['throughput_ratio']:.1%} | "
            f"{v['server_us']:.0f} µs ({v['server_loop_us']:.0f} + {v['server_other_us']:.0f}) "
            f"| {v['server_cpu_ratio']:.1%} | {v['client_us']:.0f} µs | "
            f"{at['p50_ms']:.2f} / {at['p99_ms']:.2f} ms |"
        )
    counts = r["store_counts"]
    lines += [
        "",
        "Ratios are the median of each round's ratio to keys off (throughput: requests/s; "
        "CPU: keys-off server CPU per request over the variant's, so above 100% is cheaper). "
        "Throughput per round: "
        + "; ".join(
            f"{n.replace('_', ' ')} {', '.join(f'{x:,.0f}' for x in r[n]['max_rps_rounds'])}"
            for n in VARIANTS
        )
        + ".",
        "",
        f"The key check alone (a remembered header) costs {r['check_us']:.1f} µs in process; "
        f"parsing three tags {r['tags_us']:.1f} µs. The store's counters after the run "
        "(requests, teacher calls, cache hits): "
        + "; ".join(
            f"{n.replace('_', ' ')} {c['requests']:,}, {c['teacher_calls']}, {c['cache_hits']}"
            for n, c in counts.items()
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--results", type=Path, default=gb.RESULTS, help="where features.json/.md go"
    )
    parser.add_argument(
        "--client", choices=gb.CLIENTS, default="go",
        help="the load generator: go (bench/loadgen) or python (aiohttp in this process)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.client == "go":
        try:
            loadgen.binary()  # before the run, not minutes into it
        except loadgen.LoadgenError as exc:
            sys.exit(f"features_bench: {exc}")
    result = asyncio.run(main_async(args.seconds, args.rounds, args.client))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "features.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.results / "features.md").write_text(render_md(result))
    print(render_md(result))


if __name__ == "__main__":
    main()
