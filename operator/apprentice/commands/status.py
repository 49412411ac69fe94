"""``apprentice status -c FILE [--task T] [--json]``: where each task stands, from the store.

Reads the store the gateway writes (saved engine state, counters, spend ledger,
versions), so it works next to a running ``apprentice serve`` or on a stopped one,
and loads no model. ``--json`` prints ``{"tasks": {"<name>": TaskStatus}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apprentice.commands._store_args import load_config_for_tasks


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "status", help="phase, confidence, sampling, spend and savings per task"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from apprentice.reporting import cli as views
    from apprentice.reporting import snapshot
    from apprentice.reporting.status import StatusReport
    from apprentice.store import StoreError, open_store

    cfg = load_config_for_tasks(args.config, args.task)
    if cfg is None:
        return 1
    try:
        with open_store(cfg.store.url) as store:
            full = snapshot.statuses_from_store(cfg, store)
    except StoreError as exc:
        print(f"error: cannot read the store: {exc}", file=sys.stderr)
        return 1
    wanted = args.task or [t.name for t in cfg.tasks]
    report = StatusReport(tasks={k: v for k, v in full.tasks.items() if k in wanted})
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(views.format_status(report))
    return 0
