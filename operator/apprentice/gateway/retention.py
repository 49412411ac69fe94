"""The periodic prune of request rows older than ``store.request_retention_days``.

Every answered request keeps a ``requests`` row with its input and answer (feedback
reads them); kept forever, the store would hold every caller's input. A serving gateway
prunes rows older than the window at start and then every :data:`PRUNE_INTERVAL_S`,
one task and :data:`BATCH_ROWS` rows per transaction, pausing between batches so the
store writer's group commits go on (:mod:`apprentice.store.retention`). Examples,
comparisons, spend and feedback are never pruned. ``0`` or ``null`` keeps every row.

Several replicas on one PostgreSQL store each prune; the deletes are idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from apprentice.config import StoreConfig
from apprentice.store import Store, StoreError

__all__ = ["BATCH_ROWS", "PRUNE_INTERVAL_S", "RequestPruner", "start"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PRUNE_INTERVAL_S = 3600.0
"""How often a serving gateway prunes (and once at start)."""
BATCH_ROWS = 1000
"""Rows per delete transaction: a few milliseconds of the SQLite write lock."""
BATCH_PAUSE_S = 0.01
"""Between two batches: the store writer takes the lock in between."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _finished(work: Coroutine[object, object, _T]) -> _T:
    """``work``'s result; cancelled meanwhile, the store call (one short transaction) still
    ends before the cancellation goes on, so the gateway never closes the store under it."""
    job = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait([job])
        raise


class RequestPruner:
    """Deletes one store's request rows older than ``days``; ``clock`` is passed in."""

    def __init__(
        self,
        store: Store,
        days: float | None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        batch: int = BATCH_ROWS,
        pause_s: float = BATCH_PAUSE_S,
        on_pruned: Callable[[str, int], None] | None = None,
    ) -> None:
        if batch <= 0:
            raise ValueError(f"batch must be positive, got {batch}")
        self.store = store
        self.days = days or None  # 0 keeps every row, as null does
        self.clock = clock
        self.batch = batch
        self.pause_s = pause_s
        self.on_pruned = on_pruned  # (task, rows) after each batch that deleted some: metrics
        self.first_pass = asyncio.Event()  # set once the first pass ended (tests, probes)

    def cutoff(self) -> datetime | None:
        """Rows received before this go; ``None``: retention is off."""
        return None if self.days is None else self.clock() - timedelta(days=self.days)

    async def prune(self) -> int:
        """One pass over every task the store knows; returns how many rows went."""
        cutoff = self.cutoff()
        if cutoff is None:
            return 0
        total = 0
        for task in await _finished(asyncio.to_thread(self.store.tasks)):
            while True:
                gone = await _finished(
                    asyncio.to_thread(self.store.prune_requests, task, cutoff, self.batch)
                )
                total += gone
                if gone and self.on_pruned is not None:
                    self.on_pruned(task, gone)
                if gone < self.batch:
                    break
                await asyncio.sleep(self.pause_s)  # pacing: let request writes in
        return total

    async def run(self, interval_s: float = PRUNE_INTERVAL_S) -> None:
        """Prune now and every ``interval_s`` until cancelled; a store failure is logged
        and retried at the next pass (the rows are only older by then)."""
        while True:
            try:
                gone = await self.prune()
            except StoreError as exc:
                log.warning("request retention: prune failed, retrying later: %s", exc)
            else:
                if gone:
                    log.info(
                        "request retention: pruned %d request rows older than %s days",
                        gone, self.days,
                    )  # fmt: skip
            self.first_pass.set()
            await asyncio.sleep(interval_s)


def start(
    store: Store,
    cfg: StoreConfig,
    background: set[asyncio.Task[None]],
    on_pruned: Callable[[str, int], None] | None = None,
) -> RequestPruner | None:
    """Start the serving gateway's pruner, its task added to ``background`` (the gateway
    cancels those at close); None when retention is off."""
    pruner = RequestPruner(store, cfg.request_retention_days, on_pruned=on_pruned)
    if pruner.days is None:
        return None
    background.add(asyncio.get_running_loop().create_task(pruner.run(), name="request-retention"))
    return pruner
