"""Shared front of the store-reading subcommands (``status``, ``report``).

Both take ``-c FILE`` and repeatable ``--task``; they must reject a bad config or
an unknown task with the same message and exit status, so the check lives here.
"""

from __future__ import annotations

import sys

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
