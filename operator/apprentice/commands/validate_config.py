"""``apprentice validate-config -c FILE``: print OK or every problem, exit 1 on any."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from apprentice import config


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "validate-config", help="check a config file and print OK or its errors"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(f"{args.config}: {len(exc.issues)} problem(s)", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    names = ", ".join(t.name for t in cfg.tasks)
    print(f"OK: {args.config} ({len(cfg.tasks)} task(s): {names})")
    local = cfg.local
    print(
        f"student: {local.backend.value} serves {local.serving_base()}; "
        f"{local.fine_tune_backend.value} trains on {local.training_base()}"
    )
    return 0
