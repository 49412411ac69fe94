"""The DPO and metadata variants of ``GET /admin/tasks/{task}/dataset`` and ``apprentice export``.

The plain formats (chat, openai, alpaca) stay the gateway's ``export_dataset``; this adds
``format=dpo`` (preference pairs from the comparisons the student lost) and
``metadata=true`` (a ``metadata`` object per line), built by :mod:`apprentice.training.export`
from the store. Bad values are a 400 naming the parameter and what it accepts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

from apprentice.config import ApprenticeConfig
from apprentice.gateway import errors
from apprentice.store import Store
from apprentice.store.records import SPLITS
from apprentice.training import export

__all__ = ["FORMATS", "dataset_lines", "wants_own_path"]

_PLAIN = tuple(f.value for f in export.ExportFormat)
FORMATS = (*_PLAIN, export.DPO)
_FLAGS = {"true": True, "1": True, "false": False, "0": False}


class _Gateway(Protocol):
    config: ApprenticeConfig
    store: Any


def flag(value: str) -> bool:
    """``metadata=true|false|1|0``; anything else is a 400."""
    if value.lower() not in _FLAGS:
        raise errors.BadRequest(f"metadata must be true or false, got {value!r}")
    return _FLAGS[value.lower()]


def wants_own_path(fmt: str, metadata: str | None) -> bool:
    """Whether this module answers (DPO, metadata, or a format to refuse with the whole
    list), not ``Gateway.export_dataset``."""
    return fmt not in _PLAIN or metadata is not None


def _lines(store: Store, gw: _Gateway, task: str, split: Any, fmt: str, meta: bool) -> list[str]:
    cfg = next(t for t in gw.config.tasks if t.name == task)
    examples = store.iter_examples(task, split)
    if fmt == export.DPO:
        rows = export.dpo_rows(cfg, examples, store.comparisons(task), meta)
        return [json.dumps(r, ensure_ascii=False) for r in rows]
    tagged = {r.id: r.tags for r in store.requests(task) if r.tags} if meta else {}
    out = []
    for e in examples:
        row = export.record(cfg, e.input, e.output, fmt)
        if meta:
            row["metadata"] = {**export.metadata(e), "tags": tagged.get(e.request_id or "", {})}
        out.append(json.dumps(row, ensure_ascii=False))
    return out


async def dataset_lines(
    gw: _Gateway, task: str, split: str, fmt: str, metadata: str | None
) -> list[str]:
    """The export's JSONL lines (without newlines) for a configured ``task``."""
    if split not in SPLITS:
        raise errors.BadRequest(f"split must be train or heldout, got {split!r}")
    if fmt not in FORMATS:
        raise errors.BadRequest(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    meta = flag(metadata) if metadata is not None else False
    return await asyncio.to_thread(_lines, gw.store, gw, task, split, fmt, meta)
