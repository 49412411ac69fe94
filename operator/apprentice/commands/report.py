"""``apprentice report -c FILE --html report.html [--json]``: what happened, with plots.

The HTML is one self-contained file (plots embedded); ``--json`` prints the same
data. The plots need the ``plots`` extra (matplotlib); ``--json`` alone does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apprentice.commands._store_args import load_config_for_tasks


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "report", help="an HTML report with plots (spend, agreement, sampling) and/or its JSON"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--html", metavar="PATH", help="write the self-contained HTML report here")
    parser.add_argument("--json", action="store_true", help="print the report's data as JSON")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from apprentice.reporting import plots, snapshot
    from apprentice.reporting import report as report_mod
    from apprentice.store import StoreError, open_store

    if not args.html and not args.json:
        print("error: pass --html report.html and/or --json", file=sys.stderr)
        return 1
    cfg = load_config_for_tasks(args.config, args.task)
    if cfg is None:
        return 1
    try:
        with open_store(cfg.store.url) as store:
            statuses = snapshot.statuses_from_store(cfg, store).tasks
            report = report_mod.build_report(store, cfg, statuses=statuses, tasks=args.task)
    except StoreError as exc:
        print(f"error: cannot read the store: {exc}", file=sys.stderr)
        return 1
    if args.html:
        from apprentice.reporting import html

        try:
            path = html.write_html(report, args.html)
        except plots.PlotsUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"error: cannot write {args.html}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report.to_json()))
    return 0
