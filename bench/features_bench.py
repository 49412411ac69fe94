"""Issue 13's features on the hot path: what API keys and tags cost on the local-only HTTP path.

The same gateway, store and instant student as ``gateway_bench.py`` (its setup and its
server child are reused), measured in ONE run with ``gateway.require_api_keys`` off, on,
and on with two tags per request (``metadata``, stored with the request), and with keys,
tags and the task's answer cache on (every input new, so every lookup misses), alternating
``--rounds`` times so every variant sees the same machine load:

- ``max_rps``: closed-loop throughput, 64 requests in flight (the median round);
- p50/p99 at 500 requests/s offered (the round with the median p99).

With keys on every request sends ``Authorization: Bearer <key>``; the gateway checks
it against its in-memory cache (a SHA-256 and a constant-time compare; the store is
read once per key per ``auth.CACHE_S``). ``check_us`` is that check alone, in process,
against the same SQLite store: on a shared machine the throughput rounds are noisier
than the difference they are meant to show.

Writes bench/results/features.json and features.md.
Run: ``.venv/bin/python bench/features_bench.py [--seconds 4] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_bench as gb  # the sibling script, found by the path above

from apprentice.gateway import auth, tags
from apprentice.store import open_store
from apprentice.store.api_keys import ApiKeyRecord

RATE = 500


def setup(directory: Path, keys: bool, cache: bool = False) -> tuple[Path, str | None]:
    """gateway_bench's steady-state setup, with keys required and one key made if ``keys``,
    and the task's answer cache on if ``cache`` (every input is new: each lookup misses,
    the cache's worst case)."""
    cfg_path = gb.write_setup(directory)
    if not keys:
        return cfg_path, None
    data = yaml.safe_load(cfg_path.read_text())
    data["gateway"]["require_api_keys"] = True
    if cache:
        for task in data["tasks"]:
            task["cache"] = {"enabled": True, "ttl_s": 300}
    cfg_path.write_text(yaml.safe_dump(data))
    key_id, token = auth.mint()
    record = ApiKeyRecord(key_id, auth.digest(token), (gb.TASK,), "bench", datetime.now(UTC))
    with open_store(data["store"]["url"]) as store:
        store.add_api_key(record)
    return cfg_path, token


TAGS = {"customer": "acme", "team": "billing"}


async def phase(
    cfg_path: Path, token: str | None, seconds: float, tags: bool = False
) -> dict[str, Any]:
    import aiohttp

    proc, url = gb.start_server(cfg_path, "gateway")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn, headers=headers) as session:

            async def call(i: int) -> None:
                body: dict[str, Any] = {"input": gb._input(i)}
                if tags:
                    body["metadata"] = TAGS
                async with session.post(url, json=body) as resp:
                    if resp.status != 200:
                        raise RuntimeError(await resp.text())
                    await resp.read()

            for i in range(300):  # warm-up: connections, caches, the key's first read
                await call(i)
            max_rps = await gb.closed_loop(call, seconds)
            return {
                "max_rps": round(max_rps, 1),
                str(RATE): await gb.open_loop(call, RATE, seconds),
            }
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def check_cost(store_url: str, token: str, n: int = 50_000) -> float:
    """Microseconds per ``KeyRing.check`` of a valid key (cached, as on the hot path)."""
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


async def main_async(seconds: float, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {
        "keys_off": [],
        "keys_on": [],
        "keys_and_tags": [],
        "keys_tags_cache": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for name, keys, cache in (
            ("keys_off", False, False),
            ("keys_on", True, False),
            ("keys_tags_cache", True, True),
        ):
            (Path(tmp) / name).mkdir()
            paths[name] = setup(Path(tmp) / name, keys, cache)
        for _ in range(rounds):
            for name, (cfg_path, token) in paths.items():
                tagged = name == "keys_tags_cache"
                runs[name].append(await phase(cfg_path, token, seconds, tags=tagged))
            on_path, on_token = paths["keys_on"]
            runs["keys_and_tags"].append(await phase(on_path, on_token, seconds, tags=True))
        cfg_path, token = paths["keys_on"]
        assert token is not None
        url = yaml.safe_load(cfg_path.read_text())["store"]["url"]
        check_us = await check_cost(url, token)
    out: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "seconds": seconds,
        "rounds": rounds,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "check_us": round(check_us, 2),
        "tags_us": round(tags_cost(), 2),
    }
    for name, found in runs.items():
        by_p99 = sorted(found, key=lambda r: r[str(RATE)]["p99_ms"])
        out[name] = {
            "max_rps": statistics.median(r["max_rps"] for r in found),
            "max_rps_rounds": [r["max_rps"] for r in found],
            str(RATE): by_p99[len(by_p99) // 2][str(RATE)],
        }
    off, on = out["keys_off"], out["keys_on"]
    out["keys_throughput_ratio"] = round(on["max_rps"] / off["max_rps"], 3)
    out["keys_added_p50_ms_at_500"] = round(on[str(RATE)]["p50_ms"] - off[str(RATE)]["p50_ms"], 3)
    out["keys_and_tags_throughput_ratio"] = round(
        out["keys_and_tags"]["max_rps"] / off["max_rps"], 3
    )
    out["keys_tags_cache_throughput_ratio"] = round(
        out["keys_tags_cache"]["max_rps"] / off["max_rps"], 3
    )
    return out


def render_md(r: dict[str, Any]) -> str:
    lines = [
        "# Issue 13 features on the local-only HTTP path",
        "",
        f"{r['machine']}; {r['rounds']} alternating rounds of {r['seconds']} s; load average "
        f"at start {r['load_average_at_start']}. Generated by `bench/features_bench.py`.",
        "",
        "| variant | max requests/s (median round) | rounds | p50 at 500/s | p99 at 500/s |",
        "|---|---|---|---|---|",
    ]
    for name in ("keys_off", "keys_on", "keys_and_tags", "keys_tags_cache"):
        v = r[name]
        at = v[str(RATE)]
        lines.append(
            f"| {name.replace('_', ' ')} | {v['max_rps']:,.0f} | "
            f"{', '.join(f'{x:,.0f}' for x in v['max_rps_rounds'])} | "
            f"{at['p50_ms']:.2f} ms | {at['p99_ms']:.2f} ms |"
        )
    lines += [
        "",
        f"API keys on: {r['keys_throughput_ratio']:.1%} of the throughput with them off "
        f"(keys and two tags per request: {r['keys_and_tags_throughput_ratio']:.1%}; keys, "
        f"tags and the answer cache on, every lookup a miss: "
        f"{r['keys_tags_cache_throughput_ratio']:.1%}); "
        f"{r['keys_added_p50_ms_at_500']:+.3f} ms at the median at 500 requests/s. The key "
        f"check alone costs {r['check_us']:.1f} µs per request (in process, cached key), "
        f"{r['check_us'] / (1e6 / r['keys_off']['max_rps']):.2%} of a request's time at the "
        "keys-off throughput; parsing three tags costs "
        f"{r['tags_us']:.1f} µs. On a loaded machine the rounds' spread is noise, not these.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    result = asyncio.run(main_async(args.seconds, args.rounds))
    gb.RESULTS.mkdir(parents=True, exist_ok=True)
    (gb.RESULTS / "features.json").write_text(json.dumps(result, indent=2) + "\n")
    (gb.RESULTS / "features.md").write_text(render_md(result))
    print(render_md(result))


if __name__ == "__main__":
    main()
