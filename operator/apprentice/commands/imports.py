"""``apprentice import -c FILE --task T DATA.jsonl``: existing input/output pairs as examples.

For data a user already has (logs of past API calls, a labelled set): each line
becomes a training example with provenance ``import`` (``teacher_provider``), so
phase 1 can end without paying the teacher. The rules teacher examples follow
apply unchanged:

- each input and output is validated against the task's schemas;
- the input's hash puts it in ``train`` or ``heldout`` forever (the split rule), so
  held-out inputs are never trained on, whoever labelled them;
- an input the store already has keeps its existing example (duplicates collapse).

Rejected lines are printed with their line number and reason (``--json``: one object
with ``imported``, ``duplicates``, ``rejected`` and per-split counts); nothing of a
rejected line is stored. Progress goes to stderr every ``PROGRESS_EVERY`` lines. Exit
status: 0 when every line was imported (or was a duplicate), 3 when some were
rejected, 1 when nothing could be read or stored.
Run it while the gateway is stopped, or restart the gateway after: a running
gateway counts the store's examples when it starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apprentice.commands._importing import Parser, Rejected, parse_lines
from apprentice.commands._store_args import load_config_for_tasks
from apprentice.store import ExampleRecord, Store, StoreError, open_store

BATCH = 1000  # examples per transaction: one fsync per thousand, not per line
PROGRESS_EVERY = 10_000
SHOWN = 50  # rejections printed in text mode (all of them with --json)


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "import", help="bring existing input/output pairs in as training examples"
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", required=True, help="task name")
    parser.add_argument("file", help="JSONL: {input, output} or {messages} per line")
    parser.add_argument("--model", help="the model that produced the outputs (kept with them)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


class _Tally:
    def __init__(self) -> None:
        self.imported: dict[str, int] = {"train": 0, "heldout": 0}
        self.duplicates: list[Rejected] = []
        self.rejected: list[Rejected] = []
        self.lines = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": sum(self.imported.values()),
            "splits": self.imported,
            "duplicates": len(self.duplicates),
            "rejected": [r.to_json() for r in self.rejected + self.duplicates],
        }


def _flush(store: Store, batch: list[tuple[int, ExampleRecord]], tally: _Tally) -> None:
    added = store.add_examples([e for _, e in batch])
    for (number, example), new in zip(batch, added, strict=True):
        if new:
            tally.imported[example.split] += 1
        else:
            tally.duplicates.append(Rejected(number, "duplicate input: already in the store"))
    batch.clear()


def import_lines(store: Store, parser: Parser, lines: Iterable[str], progress: bool) -> _Tally:
    """Validate, split and store ``lines``; what was kept and what was not."""
    tally = _Tally()
    batch: list[tuple[int, ExampleRecord]] = []
    for number, item in parse_lines(parser, lines):
        tally.lines = number
        if isinstance(item, Rejected):
            tally.rejected.append(item)
        elif (why := store.unstorable(item.input) or store.unstorable(item.output)) is not None:
            tally.rejected.append(Rejected(number, why))
        else:
            batch.append((number, item))
            if len(batch) >= BATCH:
                _flush(store, batch, tally)
        if progress and number % PROGRESS_EVERY == 0:
            print(f"import: {number} lines read", file=sys.stderr, flush=True)
    _flush(store, batch, tally)
    return tally


def _report(args: argparse.Namespace, tally: _Tally) -> None:
    if args.json:
        print(json.dumps(tally.to_json(), indent=2))
        return
    s = tally.imported
    print(
        f"{s['train'] + s['heldout']} examples imported into {args.task} "
        f"(train {s['train']}, heldout {s['heldout']}); {len(tally.duplicates)} duplicates, "
        f"{len(tally.rejected)} rejected"
    )
    shown: Sequence[Rejected] = sorted(tally.rejected + tally.duplicates, key=lambda r: r.line)
    for r in shown[:SHOWN]:
        print(f"  line {r.line}: {r.reason}")
    if len(shown) > SHOWN:
        print(f"  ... and {len(shown) - SHOWN} more (--json lists them all)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config_for_tasks(args.config, [args.task])
    if cfg is None:
        return 1
    task = next(t for t in cfg.tasks if t.name == args.task)
    path = Path(args.file)
    parser = Parser(task, cfg.local.training.heldout_fraction, datetime.now(UTC), args.model)
    try:
        with path.open(encoding="utf-8") as lines:
            store = open_store(cfg.store.url)
            try:
                tally = import_lines(store, parser, lines, progress=True)
            finally:
                store.close()
    except OSError as exc:
        print(f"{path}: cannot read the import file: {exc.strerror}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as exc:
        print(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})", file=sys.stderr)
        return 1
    except StoreError as exc:
        print(f"error: the store (store.url): {exc}", file=sys.stderr)
        return 1
    _report(args, tally)
    return 0 if not tally.rejected else 3
