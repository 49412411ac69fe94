"""``apprentice events -c FILE [--task T] [--kind K] [--limit N] [--json]``: a task's history.

Reads the store's events table: phase changes, alarms, coaching ending,
training runs starting, finishing, failing (with why and when they run again)
and being interrupted, promotions, rejections, rollbacks, pauses and budget
caps, oldest first. The engine keeps only its last 50 alarms; this keeps all.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from apprentice.commands._store_args import list_parser, load_config_for_tasks, read_store

if TYPE_CHECKING:
    from apprentice.store import EventRecord, Store


def register(sub: Any) -> None:
    parser = list_parser(
        sub,
        "events",
        "the history of phase changes, alarms, training runs and budget caps",
        one_task=False,
    )
    parser.add_argument("--kind", action="append", help="only this kind (repeatable)")
    parser.set_defaults(func=run)


def _events(store: Store, tasks: list[str] | None, kinds: list[str] | None) -> list[EventRecord]:
    """The events of ``tasks`` (None: every task) of ``kinds``, oldest first."""
    if not tasks:
        return store.events(None, kinds=kinds)
    found = [e for t in tasks for e in store.events(t, kinds=kinds)]
    return sorted(found, key=lambda e: (e.at, e.id or 0))


def run(args: argparse.Namespace) -> int:
    from apprentice.reporting.cli import format_table

    cfg = load_config_for_tasks(args.config, args.task)
    if cfg is None:
        return 1
    found = read_store(cfg.store.url, lambda store: _events(store, args.task, args.kind))
    if found is None:
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
