"""``apprentice export -c FILE --task T --split train|heldout --format chat|openai|alpaca|dpo``.

Writes the task's examples as JSONL (one example per line) to ``-o FILE`` or
stdout, the same lines ``GET /admin/tasks/{task}/dataset`` serves. ``--format dpo``
writes preference pairs (prompt, chosen = the kept answer, rejected = the student's
losing answer); ``--metadata`` adds each line's provenance, split and ids
(:mod:`apprentice.training.export`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from apprentice import config
from apprentice.gateway import exports


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "export", help="write a task's training data as JSONL (chat, openai or alpaca)"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", required=True, help="task name")
    parser.add_argument("--split", choices=["train", "heldout"], default="train")
    parser.add_argument("--format", choices=list(exports.FORMATS), default="chat")
    parser.add_argument(
        "--metadata", action="store_true", help="add a metadata object per line (provenance...)"
    )
    parser.add_argument("-o", "--output", default="-", help="output file (default: stdout)")
    parser.set_defaults(func=run)


async def _export(cfg: config.ApprenticeConfig, args: argparse.Namespace) -> list[str]:
    from apprentice.gateway.facade import Apprentice

    app = Apprentice.from_config(cfg)
    await app.gateway.start(serving=False)
    try:
        app.check_task(args.task)
        meta = "true" if args.metadata else None
        if exports.wants_own_path(args.format, meta):
            return await exports.dataset_lines(
                app.gateway, args.task, args.split, args.format, meta
            )
        lines: list[str] = await app.gateway.export_dataset(args.task, args.split, args.format)
        return lines
    finally:
        await app.close()


def run(args: argparse.Namespace) -> int:
    from apprentice.gateway import errors

    try:
        cfg = config.load(args.config)
        lines = asyncio.run(_export(cfg, args))
    except config.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except errors.GatewayError as exc:
        print(f"error: {exc.message} [{exc.docs}]", file=sys.stderr)
        return 1
    text = "".join(line + "\n" for line in lines)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    if args.output != "-":
        print(f"{len(lines)} examples -> {args.output}", file=sys.stderr)
    return 0
