"""The ``apprentice`` command line.

Each subcommand lives in its own module under :mod:`apprentice.commands` and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
callable taking the parsed namespace and returning the exit code. Modules are
imported only when listed, so ``apprentice validate-config`` never pays for torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from apprentice import __version__

COMMAND_MODULES = (
    "validate_config",
    "simulate",
    "evaluate",
    "serve",
    "batch",
    "status",
    "events",
    "report",
    "versions",
    "export",
    "imports",
    "keys",
    "feedback",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apprentice",
        description="Distil a remote LLM API into a cheap local model, one task at a time.",
    )
    parser.add_argument("--version", action="version", version=f"apprentice {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        qualified = f"apprentice.commands.{name}"
        if importlib.util.find_spec(qualified) is None:  # an optional command not installed
            continue
        importlib.import_module(qualified).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
