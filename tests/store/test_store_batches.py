"""One group commit for request transactions and reservations (store/batches.py), on both
backends: one transaction for the mixed batch; settles go first, so a reservation in the
same batch sees the budget they freed; each reservation sees those admitted before it;
a failing request write, a refused reservation or a failing block of reservations each
fail alone."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from apprentice import config
from apprentice.engine.budget import BudgetExhausted
from apprentice.gateway.spending import Hold, SharedBudget
from apprentice.gateway.writer import Ask
from apprentice.store import DuplicateRequestError, RequestRecord, open_store
from apprentice.store.budget import BudgetTotals
from apprentice.store.records import RecordResult
from apprentice.store.sql import SqlStore, Tx

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
CAP = 1.0


def _budget(store_url: str, store: Any) -> SharedBudget:
    cfg = config.ApprenticeConfig.model_validate(
        {
            "tasks": [
                {
                    "name": "t",
                    "input_schema": {"text": "str"},
                    "output_schema": {"label": "str"},
                    "budget": {"daily": CAP},
                }
            ],
            "remote": {"provider": "replay", "path": "/dev/null", "price_as": "gpt-4o"},
            "store": {"url": store_url},
        }
    )
    return SharedBudget(cfg, store, owner="gw", ttl_s=600)


def _ask(budget: SharedBudget, amount: float) -> tuple[Hold, Ask]:
    return budget._ask("t", amount, NOW, "teacher", None)


def _request(rid: str) -> RequestRecord:
    return RequestRecord(id=rid, task="t", received_at=NOW, route="cold_start", served_by="teacher")


@contextlib.contextmanager
def _transactions(store: SqlStore) -> Iterator[list[int]]:
    """Counts the write transactions ``store`` opens meanwhile."""
    opened: list[int] = []
    write = store._write

    @contextlib.contextmanager
    def counted() -> Iterator[Tx]:
        opened.append(1)
        with write() as tx:
            yield tx

    store._write = counted  # type: ignore[method-assign]
    try:
        yield opened
    finally:
        del store._write


def test_a_settle_frees_budget_for_a_reservation_in_the_same_commit(store_url: str) -> None:
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        budget = _budget(store_url, store)
        first, ask = _ask(budget, 0.8)
        assert isinstance(store.budget_reserve_many([ask])[0], BudgetTotals)
        # Alone, a second 0.8 would cross the 1.0 cap (0.8 held): it is refused.
        _, too_much = _ask(budget, 0.8)
        assert isinstance(store.budget_reserve_many([too_much])[0], BudgetExhausted)
        # In one commit with the settle of the first at 0.1, it fits: 0.1 spent + 0.8.
        settle = {"request": _request("r1"), "spend": [budget.line(first, "t", 0.1, NOW)]}
        second, fits = _ask(budget, 0.8)
        _, third = _ask(budget, 0.2)  # sees the second, admitted before it: 1.1 > 1.0
        with _transactions(store) as opened:
            out = store.record_requests([settle], [fits, third])
        assert len(opened) == 1  # one transaction, one durable commit
        assert isinstance(out[0], RecordResult)
        seen = out[1]
        assert isinstance(seen, BudgetTotals)
        assert seen.pending.get("t", 0.0) == 0.0  # the first's hold was already settled
        assert seen.spent["t"][0] == pytest.approx(0.1)
        assert isinstance(out[2], BudgetExhausted)
        assert [r.id for r in store.reservations()] == [second.id]
        assert store.spend_total(NOW.replace(hour=0), NOW.replace(hour=23)) == pytest.approx(0.1)


def test_a_failing_request_write_fails_alone_in_a_mixed_batch(store_url: str) -> None:
    with open_store(store_url) as store:
        budget = _budget(store_url, store)
        store.record_request(_request("taken"))
        held, ask = _ask(budget, 0.3)
        _, refused = _ask(budget, 0.9)  # 0.3 + 0.9 > 1.0: refused, not a failure
        writes: list[dict[str, Any]] = [
            {"request": _request("a")},
            {"request": _request("taken"), "spend": []},  # a duplicate id: fails
            {"request": _request("b"), "task_state": {"n": 2}},
        ]
        out = store.record_requests(writes, [ask, refused])
        assert isinstance(out[0], RecordResult) and isinstance(out[2], RecordResult)
        assert isinstance(out[1], DuplicateRequestError)
        assert isinstance(out[3], BudgetTotals) and isinstance(out[4], BudgetExhausted)
        assert sorted(r.id for r in store.requests("t")) == ["a", "b", "taken"]
        assert store.load_task_state("t") == {"n": 2}
        assert [r.id for r in store.reservations()] == [held.id]
        assert store.request_counts("t").requests == 3  # the failed write counted nothing


def test_a_failing_block_of_reservations_fails_only_its_asks(store_url: str) -> None:
    with open_store(store_url) as store:
        budget = _budget(store_url, store)
        held, ask = _ask(budget, 0.1)
        assert isinstance(store.budget_reserve_many([ask])[0], BudgetTotals)
        _, again = _ask(budget, 0.1)
        duplicate: Ask = (ask[0], *again[1:])  # the first's reservation id again: fails
        out = store.record_requests([{"request": _request("a")}], [again, duplicate])
        assert isinstance(out[0], RecordResult)
        assert isinstance(out[1], Exception) and out[1] is out[2]  # every asker hears it
        assert [r.id for r in store.requests("t")] == ["a"]
        assert [r.id for r in store.reservations()] == [held.id]  # nothing of the block kept
