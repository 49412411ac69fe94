"""Shared front of the subcommands reading a config and a file (status, report, simulate, evaluate).

status and report take ``-c FILE`` and repeatable ``--task``; they must reject a bad config or
an unknown task with the same message and exit status, so the check lives here. The listing
commands (``events``, ``feedback``) also share their arguments (:func:`list_parser`) and
their store read (:func:`read_store`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from apprentice import config

if TYPE_CHECKING:
    from apprentice.store import Store

T = TypeVar("T")


def load_config_for_tasks(path: str, tasks: list[str] | None) -> config.ApprenticeConfig | None:
    """The loaded config, or ``None`` after printing why (bad config, unknown ``--task``)."""
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None
    known = [t.name for t in cfg.tasks]
    unknown = [t for t in tasks or [] if t not in known]
    if unknown:
        print(f"error: unknown task(s) {unknown}; configured: {known}", file=sys.stderr)
        return None
    return cfg


def read_lines(path: Path, what: str) -> list[str] | None:
    """The file's lines, or ``None`` after printing why it cannot be read (``simulate``'s
    trace, ``evaluate``'s pairs: one message shape for both)."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        print(f"{path}: cannot read the {what}: {exc.strerror}", file=sys.stderr)
        return None


def _positive(text: str) -> int:
    """``--limit``'s type: a whole number above 0 (argparse names the flag when it fails)."""
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(text)


def list_parser(sub: Any, name: str, help_text: str, *, one_task: bool) -> argparse.ArgumentParser:
    """A listing command: ``-c FILE``, ``--task`` (one and required, or repeatable),
    ``--limit N`` (the last N) and ``--json``; the caller adds its own and ``func``."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text)
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    if one_task:
        parser.add_argument("--task", required=True, help="the task")
    else:
        parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.add_argument(
        "--limit", type=_positive, default=None, metavar="N", help="the last N only"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    return parser


def read_store(url: str, read: Callable[[Store], T]) -> T | None:
    """``read(store)`` on the store at ``url``, or ``None`` after printing why it failed."""
    # Deferred like every command's imports: the CLI imports only the command it runs.
    from apprentice.store import StoreError, open_store

    try:
        with open_store(url) as store:
            return read(store)
    except StoreError as exc:
        print(f"error: cannot read the store: {exc}", file=sys.stderr)
        return None
