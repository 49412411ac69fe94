"""gateway_bench.py's report: its results (the dict it writes to gateway.json) as Markdown.

Pure: every figure comes from the result, which also names the rates, the trials and
each HTTP client.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BEFORE = Path(__file__).resolve().parent / "results" / "gateway_before_issue12.json"
"""This script's results for f86b00a (the request core before issue 12), run with
``--before`` from a worktree of that commit just before the run above."""


def _rates(r: dict[str, Any]) -> list[int]:
    return [int(k) for k in r["direct"]]


def render_md(r: dict[str, Any]) -> str:
    t = r["targets"]
    lines = [
        "# Gateway benchmark",
        "",
        f"{r['machine']}; {r['seconds']} s per measurement (latency: median of {r['trials']} runs "
        f"by p99); store: {r['store']}. Load average when the run started: "
        f"{r['load_average_at_start']}, at the end of the HTTP phases: "
        f"{r['load_average_after_http']} (a shared VM: other jobs ran too; the p99 of each "
        "trial is in gateway.json). HTTP figures by client: "
        + "; ".join(f"*{c}*: {r['clients'][c]}" for c in r["clients"])
        + (". Both take turns against the same server process." if len(r["clients"]) > 1 else "."),
        "",
        *render_throughput_md(r),
        "## Open-loop latency (ms) at offered load",
        "",
    ]
    if "http_go" in r:
        lines += render_go_md(r)
    if "http" in r:
        lines += render_python_md(r)
    m = r["memory"]
    lines += [
        f"Memory per 10,000 stored examples: RSS growth "
        f"{m['rss_growth_mib_per_10k_examples']} MiB, SQLite growth "
        f"{m['store_mib_per_10k_examples']} MiB ({m['examples_stored']} stored).",
        "",
        f"Targets: >= 2,000 requests/s ({'met' if t['throughput'] else 'NOT met'}), p99 added "
        f"latency < 5 ms at 500 requests/s ({'met' if t['p99_500'] else 'NOT met'}); issue 12's "
        "added p99 <= 1 ms at 1,000 requests/s: "
        + ", ".join(
            f"{'met' if ok else 'NOT met'} ({c} client)" for c, ok in t["p99_1000_1ms"].items()
        )
        + f" ({t['by']} client figures for the first two).",
        "",
    ]
    if "http" in r:  # the before run was measured with the Python client
        lines += render_before_md(r)
    lines += render_budget_md(r)
    return "\n".join(lines)


def render_throughput_md(r: dict[str, Any]) -> list[str]:
    """Closed loops (64 in flight); CPU per request from /proc (server, all its threads)
    and from the client's own process."""
    lines = [
        "| | requests/s | server CPU/request | client CPU/request |",
        "|---|---:|---:|---:|",
    ]
    for client, key in (("Go client", "http_go"), ("Python client", "http")):
        for name, what in (("gateway", "HTTP gateway (local-only path)"),
                           ("bare_http", "bare aiohttp + student (no gateway)")):  # fmt: skip
            if key in r:
                h = r[key][name]
                cpu = [
                    f"{h[c]:.0f} µs" if c in h else "" for c in ("server_cpu_us", "client_cpu_us")
                ]
                lines.append(
                    f"| max throughput, {what}, {client} | {h['max_rps']:.0f} | {' | '.join(cpu)} |"
                )
    lines += [
        f"| max throughput, Python facade `app.run` (no HTTP, no client) "
        f"| {r['facade_max_rps']:.0f} | | |",
        f"| SQLite commits/s on the VM disk (fsync per request) | {r['disk_commits_per_s']:.0f} | | |",
        "",
    ]
    return lines


def render_go_md(r: dict[str, Any]) -> list[str]:
    g, b, d = r["http_go"]["gateway"], r["http_go"]["bare_http"], r["direct"]
    lines = [
        f"### {r['clients']['go']}",
        "",
        "Latency from each request's intended send time. *Added*: gateway minus the "
        "in-process student call's own time (*student call p99*); *over bare HTTP*: gateway "
        "minus a bare aiohttp server that only calls the student. *Send lag*: how late the "
        "generator itself sent (gateway runs).",
        "",
        "| offered rps | student call p99 | bare HTTP p50 | bare HTTP p99 | gateway p50 | "
        "gateway p99 | gateway p99.9 | **added p99** | over bare HTTP p50 | over bare HTTP p99 "
        "| send lag p99 | gateway achieved rps |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in _rates(r):
        k = str(rate)
        a, o = r["added_go"][k], r["added_over_bare_go"][k]
        lines.append(
            f"| {rate} | {d[k]['from_send_p99_ms']} | {b[k]['p50_ms']} | {b[k]['p99_ms']} "
            f"| {g[k]['p50_ms']} | {g[k]['p99_ms']} | {g[k]['p99_9_ms']} | **{a['p99_ms']}** "
            f"| {o['p50_ms']} | {o['p99_ms']} | {g[k]['send_lag_p99_ms']} "
            f"| {g[k]['achieved_rps']} |"
        )
    return [*lines, ""]


def render_python_md(r: dict[str, Any]) -> list[str]:
    g, b, d = r["http"]["gateway"], r["http"]["bare_http"], r["direct"]
    lines = [
        f"### {r['clients']['python']}",
        "",
        "Latency from each request's scheduled time on this process's event loop (*added*: "
        "gateway minus calling the student in process on the same loop, whose timer "
        "lateness is most of *direct*; *over bare HTTP*: gateway minus a bare aiohttp server "
        "that only calls the student, the HTTP round trip itself taken out):",
        "",
        "| offered rps | direct p50 | direct p99 | bare HTTP p50 | bare HTTP p99 | gateway p50 | "
        "gateway p99 | **added p50** | **added p99** | over bare HTTP p50 | over bare HTTP p99 "
        "| gateway achieved rps |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in _rates(r):
        k = str(rate)
        lines.append(
            f"| {rate} | {d[k]['p50_ms']} | {d[k]['p99_ms']} | {b[k]['p50_ms']} | {b[k]['p99_ms']} "
            f"| {g[k]['p50_ms']} | {g[k]['p99_ms']} | **{r['added'][k]['p50_ms']}** | "
            f"**{r['added'][k]['p99_ms']}** | {r['added_over_bare'][k]['p50_ms']} | "
            f"{r['added_over_bare'][k]['p99_ms']} | {g[k]['achieved_rps']} |"
        )
    return [*lines, ""]


def render_before_md(r: dict[str, Any]) -> list[str]:
    if not BEFORE.exists():
        return []
    b = json.loads(BEFORE.read_text())

    def row(name: str, get: Any) -> str:
        return f"| {name} | {get(b)} | {get(r)} |"

    return [
        "## Before and after issue 12's request core",
        "",
        f"The same script at f86b00a, run just before (load average "
        f"{b['load_average_at_start']}; f86b00a's `serve` froze start-up objects and set the "
        "switch interval but kept the default GC thresholds). Both columns: the Python "
        "aiohttp client in the bench process.",
        "",
        "| | before (f86b00a) | after (this run) |",
        "|---|---:|---:|",
        row(
            "max throughput, HTTP gateway, local-only",
            lambda x: f"{x['http']['gateway']['max_rps']:,.0f}",
        ),
        row(
            "max throughput, bare aiohttp + student",
            lambda x: f"{x['http']['bare_http']['max_rps']:,.0f}",
        ),
        row("max throughput, Python facade `app.run`", lambda x: f"{x['facade_max_rps']:,.0f}"),
        row("added p50 at 1,000 requests/s (ms)", lambda x: x["added"]["1000"]["p50_ms"]),
        row("added p99 at 1,000 requests/s (ms)", lambda x: x["added"]["1000"]["p99_ms"]),
        "",
    ]


def render_budget_md(r: dict[str, Any]) -> list[str]:
    now, then = r.get("paid"), r.get("budget")
    lines = ["## The paid path: store-enforced caps", ""]
    if now:
        lines += [
            "Every request a paid (replay) teacher call through `app.run`, cold start, a cap "
            f"never reached, each reservation a row in a locked store transaction settled in "
            f"the request's own (one cap across every gateway, surviving crashes): "
            f"**{now['max_rps']:.0f} requests/s** (64 in flight), p50 {now['200']['p50_ms']} ms "
            f"and p99 {now['200']['p99_ms']} ms at 200/s, {now['reservations_left']} "
            "reservations left open.",
            "",
        ]
    if then:
        p, s = then["process_local"], then["store_enforced"]
        lines += [
            "Issue 9's before/after, measured at 19d4e48 and kept (its *before*, reservations "
            "in one process's memory, was injected into the request core that issue 12 "
            f"replaced); load average {then['load_average_at_start']}:",
            "",
            "| | max requests/s (64 in flight) | p50 ms at 200 rps | p99 ms at 200 rps |",
            "|---|---:|---:|---:|",
            f"| before: process-local budget | {p['max_rps']:.0f} | {p['200']['p50_ms']} | "
            f"{p['200']['p99_ms']} |",
            f"| after: store-enforced budget | {s['max_rps']:.0f} | {s['200']['p50_ms']} | "
            f"{s['200']['p99_ms']} |",
            "",
        ]
    return lines
