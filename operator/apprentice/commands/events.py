"""``apprentice events -c FILE [--task T] [--kind K] [--limit N] [--json]``: a task's history.

Reads the store's events table: phase changes, alarms, coaching ending,
training runs starting, finishing, failing (with why and when they run again)
and being interrupted, promotions, rejections, rollbacks, pauses and budget
caps, oldest first. The engine keeps only its last 50 alarms; this keeps all.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apprentice.commands._store_args import load_config_for_tasks


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "events", help="the history of phase changes, alarms, training runs and budget caps"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument("--kind", action="append", help="only this kind (repeatable)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="the last N only")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from apprentice.reporting.cli import format_table
    from apprentice.store import StoreError, open_store

    if args.limit is not None and args.limit <= 0:
        print("--limit must be a positive number of events", file=sys.stderr)
        return 2
    cfg = load_config_for_tasks(args.config, args.task)
    if cfg is None:
        return 1
    try:
        with open_store(cfg.store.url) as store:
            if args.task:
                found = [e for t in args.task for e in store.events(t, kinds=args.kind)]
                found.sort(key=lambda e: (e.at, e.id or 0))
            else:
                found = store.events(None, kinds=args.kind)
    except StoreError as exc:
        print(f"error: cannot read the store: {exc}", file=sys.stderr)
        return 1
    if args.limit is not None:
        found = found[-args.limit :]
    if args.json:
        body = [
            {
                "id": e.id,
                "task": e.task,
                "at": e.at.isoformat(),
                "kind": e.kind,
                "message": e.message,
                "data": e.data,
            }
            for e in found
        ]
        print(json.dumps(body, indent=2))
        return 0
    if not found:
        print("no events")
        return 0
    rows = [[e.at.isoformat(timespec="seconds"), e.task or "-", e.kind, e.message] for e in found]
    print(format_table(["AT", "TASK", "KIND", "MESSAGE"], rows))
    return 0
