"""``apprentice demo [--dir DIR] [--requests N] [--json]``: the lifecycle, offline, in minutes.

No config, no API key, no network: a ticket-classification workload with a
replay teacher priced like a frontier model, the tiny built-in student trained
on this CPU, and at the end a summary table and a self-contained HTML report.
``--json`` prints exactly one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

SUMMARY_KEYS = (
    "requests",
    "teacher_calls",
    "final_phase",
    "spend_reduction_last_1000",
    "heldout_agreement",
    "seconds",
)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "demo", help="run the whole teacher -> student lifecycle offline and report the savings"
    )
    parser.add_argument(
        "--dir", help="keep config, data, store, models and report here (default: a temp dir)"
    )
    parser.add_argument("--requests", type=int, default=4000, help="workload size (default 4000)")
    parser.add_argument(
        "--shift-at",
        type=int,
        default=2000,
        metavar="N",
        help="request where a new ticket category appears (default 2000; 0: no shift)",
    )
    parser.add_argument("--seed", type=int, default=7, help="workload seed (default 7)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report")
    parser.set_defaults(func=run)


def _table(result: dict[str, Any]) -> str:
    from apprentice.reporting.cli import format_table, money, percent

    def pct(value: float | None) -> str:
        return percent(value) if value is not None else "n/a"

    steady = result["steady_state_at"]
    rows = [
        ["requests", f"{result['requests']:,}"],
        ["teacher calls", f"{result['teacher_calls']:,}"],
        ["final phase", result["final_phase"]],
        ["steady state from request", "-" if steady is None else f"{steady:,}"],
        ["teacher changes at request", _at(result["shift_at"])],
        ["change detected at request", _at(result["shift_detected_at"])],
        ["steady state again from request", _at(result["recovered_at"])],
        ["versions", _versions(result["versions"])],
        ["teacher spend", money(result["teacher_spend"])],
        ["all-teacher estimate", money(result["all_teacher_estimate"])],
        ["spend reduction, last 1,000", pct(result["spend_reduction_last_1000"])],
        ["held-out agreement", pct(result["heldout_agreement"])],
        ["active model version", result["active_version"] or "none"],
        ["seconds", f"{result['seconds']:.1f}"],
        ["  of them training", _seconds(result.get("training_seconds"))],
        ["CPU seconds (user + system)", _seconds(result.get("cpu_seconds"))],
        ["peak memory, largest process", f"{result['peak_rss_mb']:,.0f} MB"],
    ]
    lines = [format_table(["apprentice demo", "result"], rows)]
    lines.append(f"\ndirectory: {result['directory']}")
    if result["report"]:
        lines.append(f"report:    {result['report']}")
    lines.append(f"status:    apprentice status -c {Path(result['directory']) / 'apprentice.yaml'}")
    return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _at(index: int | None) -> str:
    return "-" if index is None else f"{index:,}"


def _versions(versions: list[dict[str, Any]]) -> str:
    def one(v: dict[str, Any]) -> str:
        score = v.get("heldout_score")
        shown = "" if score is None else f" {score:.3f}"
        return f"{v['version']} {v['state']}{shown}"

    return ", ".join(one(v) for v in versions) or "none"


def run(args: argparse.Namespace) -> int:
    from apprentice.demo import runner

    if args.requests < 100:
        print("error: --requests must be at least 100", file=sys.stderr)
        return 1
    shift_at = args.shift_at or None
    if shift_at is not None and not 0 < shift_at < args.requests:
        print("error: --shift-at must be between 1 and --requests - 1 (0: none)", file=sys.stderr)
        return 1
    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="apprentice-demo-"))
    try:
        result = asyncio.run(
            runner.run_demo(
                directory,
                requests=args.requests,
                seed=args.seed,
                shift_at=shift_at,
                progress=not args.no_progress,
                write_report=not args.no_report,
            )
        )
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = result.to_json()
    if args.json:
        print(json.dumps(data))
    else:
        print(_table(data))
    return 0
