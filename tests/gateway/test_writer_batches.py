"""Reservations in the writer's queue, on a real SQLite store: a reservation and request
transactions queued together are one group commit; a hold is durable (another connection
sees it) when ``hold`` returns, before the call it covers; the engine state's order holds
across mixed runs; close finishes queued reservations; a refusal is the cap crossed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apprentice import config
from apprentice.engine.budget import BudgetExhausted
from apprentice.gateway.spending import Hold, SharedBudget
from apprentice.gateway.writer import StoreWriter
from apprentice.store import RequestRecord, Store, open_store
from apprentice.store.budget import BudgetTotals

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _cfg(url: str) -> config.ApprenticeConfig:
    return config.ApprenticeConfig.model_validate(
        {
            "tasks": [
                {
                    "name": "t",
                    "input_schema": {"text": "str"},
                    "output_schema": {"label": "str"},
                    "budget": {"daily": 1.0},
                }
            ],
            "remote": {"provider": "replay", "path": "/dev/null", "price_as": "gpt-4o"},
            "store": {"url": url},
        }
    )


def _request(rid: str) -> RequestRecord:
    return RequestRecord(id=rid, task="t", received_at=NOW, route="cold_start", served_by="teacher")


class Groups:
    """Records each group commit the writer sends: (request writes, reservations)."""

    def __init__(self, store: Store) -> None:
        self.sent: list[tuple[int, int]] = []
        self._commit = store.record_requests
        store.record_requests = self  # type: ignore[method-assign]

    def __call__(self, writes: Sequence[Any], reservations: Sequence[Any] = ()) -> list[Any]:
        self.sent.append((len(writes), len(reservations)))
        return self._commit(writes, reservations)


async def test_a_reservation_shares_the_commit_and_is_durable_before_the_call(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    with open_store(url) as store, open_store(url) as other:
        groups = Groups(store)
        writer = StoreWriter(store)
        writer.start()
        budget = SharedBudget(_cfg(url), store, writer=writer)
        hold, ask = budget._ask("t", 0.4, NOW, "teacher", None)
        queued = [
            writer.submit_request(request=_request("r1"), task_state={"n": 1}),
            writer.submit_reservation(ask),  # what budget.hold queues
            writer.submit_request(request=_request("r2"), task_state={"n": 2}),
        ]
        await asyncio.gather(*queued)
        assert groups.sent == [(2, 1)]  # r1, the reservation, r2: ONE transaction
        assert other.load_task_state("t") == {"n": 2}  # the engine state's order kept
        assert [r.id for r in other.reservations()] == [hold.id]
        got = await budget.hold("t", 0.5, NOW)
        assert isinstance(got, Hold)
        # Durable as the caller resumes: another connection to the file already sees it.
        assert sorted(r.id for r in other.reservations()) == sorted([hold.id, got.id])
        assert groups.sent == [(2, 1)]  # alone, it was its own budget_reserve transaction
        refused = await budget.hold("t", 0.2, NOW)  # 0.9 held + 0.2 > 1.0
        assert isinstance(refused, BudgetExhausted)
        await writer.close()
        await budget.close()


async def test_close_finishes_queued_reservations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    with open_store(url) as store:
        writer = StoreWriter(store)
        writer.start()
        budget = SharedBudget(_cfg(url), store, writer=writer)
        holds = [budget._ask("t", 0.1, NOW, "teacher", None) for _ in range(3)]
        futures = [writer.submit_reservation(ask) for _, ask in holds]
        await writer.close()
        assert all(isinstance(f.result(), BudgetTotals) for f in futures)
        assert sorted(r.id for r in store.reservations()) == sorted(h.id for h, _ in holds)


async def test_without_a_serving_writer_the_budget_queues_in_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/a.db"
    with open_store(url) as store:
        idle = StoreWriter(store)  # built, never started: not serving
        budget = SharedBudget(_cfg(url), store, writer=idle)
        got = await asyncio.gather(*(budget.hold("t", 0.3, NOW) for _ in range(4)))
        assert [isinstance(g, Hold) for g in got] == [True, True, True, False]  # 4 x 0.3 > 1
        assert not idle.running
        await budget.close()
        assert len(store.reservations()) == 3
