"""A small append-only file of spend the store refused, replayed into the store at start.

When the store write of a paid request fails (disk full, a value the database
refuses) the spend line is retried on its own; when that fails too it is
appended here (one JSON object a line, fsynced) so the money is not forgotten
on restart. :func:`replay` writes every line back through ``record_spend``:
lines settle their reservation, and a line whose reservation is gone (already
replayed, or booked at its worst case) is skipped by the store, so replaying
twice books once. The file is emptied only after the store took every line.

Where: ``APPRENTICE_SPEND_JOURNAL``, else next to a SQLite store's file, else
``spend-journal.jsonl`` in ``local.model_dir`` (a volume that survives restarts).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from apprentice.config import ApprenticeConfig
from apprentice.store import records


def default_path(cfg: ApprenticeConfig) -> Path:
    env = os.environ.get("APPRENTICE_SPEND_JOURNAL")
    if env:
        return Path(env)
    url = cfg.store.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url[len("sqlite:///") :] + ".spend-journal")
    return Path(cfg.local.model_dir) / "spend-journal.jsonl"


class SpendJournal:
    """Append spend lines durably; replay them into a store."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def append(self, entries: list[records.SpendRecord]) -> None:
        """Durably append ``entries`` (raises OSError when even this cannot be written)."""
        lines = "".join(json.dumps(_encode(e), sort_keys=True) + "\n" for e in entries)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()
                os.fsync(f.fileno())

    def pending(self) -> list[records.SpendRecord]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    out.append(_decode(json.loads(line)))
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash mid-write: its reservation books it
        return out

    def replay(self, store: Any) -> int:
        """Write every journaled line into ``store``; empty the file once it took them."""
        with self._lock:
            entries = self.pending()
            if entries:
                store.record_spend(entries)
            if self.path.exists():
                self.path.unlink()
        return len(entries)


def _encode(e: records.SpendRecord) -> dict[str, Any]:
    return {
        "task": e.task,
        "at": e.at.isoformat(),
        "amount": e.amount,
        "kind": e.kind,
        "request_id": e.request_id,
        "provider": e.provider,
        "model": e.model,
        "input_tokens": e.input_tokens,
        "output_tokens": e.output_tokens,
        "reservation": e.reservation,
        "caller": e.caller,
    }


def _decode(d: dict[str, Any]) -> records.SpendRecord:
    return records.SpendRecord(
        task=d["task"],
        at=datetime.fromisoformat(d["at"]),
        amount=float(d["amount"]),
        kind=d["kind"],
        request_id=d.get("request_id"),
        provider=d.get("provider"),
        model=d.get("model"),
        input_tokens=int(d.get("input_tokens", 0)),
        output_tokens=int(d.get("output_tokens", 0)),
        reservation=d.get("reservation"),
        caller=d.get("caller"),
    )
