"""``apprentice feedback -c FILE --task T [--limit N] [--json]``: people's corrections and scores.

Reads the store's feedback table (``POST /v1/feedback``), oldest first: when, which
request, a correction (its answer, and the label it replaced) or a score, who served
the answer, its agreement with the correction, the comment. A summary line first.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from apprentice.commands._store_args import load_config_for_tasks


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "feedback", help="corrections and scores people sent for a task's answers"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", required=True, help="the task")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="the last N only")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Deferred like every command's: the CLI imports only the command it runs.
    from apprentice.reporting.cli import format_table
    from apprentice.store import StoreError, open_store

    if args.limit is not None and args.limit <= 0:
        print("--limit must be a positive number of feedback rows", file=sys.stderr)
        return 2
    cfg = load_config_for_tasks(args.config, [args.task])
    if cfg is None:
        return 1
    try:
        with open_store(cfg.store.url) as store:
            found = store.feedback(args.task, args.limit)
            summary = store.feedback_summary(args.task)
    except StoreError as exc:
        print(f"error: cannot read the store: {exc}", file=sys.stderr)
        return 1
    if args.json:
        body = [
            {
                "id": f.id, "request_id": f.request_id, "at": f.at.isoformat(),
                "output": f.output, "score": f.score, "comment": f.comment,
                "served_by": f.served_by, "agreement": f.agreement, "replaced": f.replaced,
            }
            for f in found
        ]  # fmt: skip
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    mean = "n/a" if summary.mean_score is None else f"{summary.mean_score:.3f}"
    print(
        f"{summary.count} feedback ({summary.corrections} corrections, "
        f"{summary.scores} scores, mean score {mean})"
    )
    rows = [
        [
            f.at.isoformat(timespec="seconds"), f.request_id, f.served_by or "-",
            json.dumps(f.output, ensure_ascii=False) if f.output is not None else f"{f.score:g}",
            (f.comment or "").replace("\n", " ")[:60],
        ]
        for f in found
    ]  # fmt: skip
    if rows:
        print(format_table(["AT", "REQUEST", "SERVED BY", "CORRECTION / SCORE", "COMMENT"], rows))
    return 0
