"""``apprentice feedback -c FILE --task T [--limit N] [--json]``: people's corrections and scores.

Reads the store's feedback table (``POST /v1/feedback``), oldest first: when, which
request, a correction (its answer, and the label it replaced) or a score, who served
the answer, its agreement with the correction, the comment. A summary line first.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from apprentice.commands._store_args import list_parser, load_config_for_tasks, read_store


def register(sub: Any) -> None:
    parser = list_parser(
        sub, "feedback", "corrections and scores people sent for a task's answers", one_task=True
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Deferred like every command's: the CLI imports only the command it runs.
    from apprentice.reporting.cli import format_table

    cfg = load_config_for_tasks(args.config, [args.task])
    if cfg is None:
        return 1
    read = read_store(
        cfg.store.url,
        lambda store: (store.feedback(args.task, args.limit), store.feedback_summary(args.task)),
    )
    if read is None:
        return 1
    found, summary = read
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
