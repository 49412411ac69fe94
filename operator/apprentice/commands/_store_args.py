"""Shared front of the subcommands reading a config and a file (status, report, simulate, evaluate).

status and report take ``-c FILE`` and repeatable ``--task``; they must reject a bad config or
an unknown task with the same message and exit status, so the check lives here.
"""

from __future__ import annotations

import sys
from pathlib import Path

from apprentice import config


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
