"""An API key's budget scope in the store, on both backends (SQLite and PostgreSQL):
reservations and spend lines carry the key, and a budget transaction sees the key's
caps, window spend and open holds, and books a crashed hold's worst case to the key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apprentice.store import open_store
from apprentice.store.api_keys import ApiKeyRecord
from apprentice.store.budget import BudgetTotals
from apprentice.store.records import ReservationRecord, SpendRecord

NOW = datetime(2025, 3, 10, 12, tzinfo=UTC)
DAY = [(NOW.replace(hour=0).timestamp(), (NOW.replace(hour=0) + timedelta(days=1)).timestamp())]
KEY = "0123456789ab"
SCOPE = f"key:{KEY}"


def _hold(rid: str, amount: float, caller: str | None = KEY) -> ReservationRecord:
    return ReservationRecord(
        id=rid, task="t", amount=amount, owner="gw-a", created_at=NOW,
        expires_at=NOW + timedelta(minutes=10), request_id=f"r-{rid}", caller=caller,
    )  # fmt: skip


def test_a_key_s_caps_spend_and_holds_in_one_budget_transaction(store_url: str) -> None:
    seen: list[BudgetTotals] = []
    scopes = ["t", "*", SCOPE]
    with open_store(store_url) as store:
        budget = {"daily": 0.5, "monthly": 3.0}
        store.add_api_key(ApiKeyRecord(KEY, "f" * 64, ("t",), None, NOW, budget=budget))
        stored = store.api_key(KEY)
        assert stored is not None and stored.budget == budget
        line = SpendRecord(task="t", at=NOW, amount=0.25, request_id="r0", caller=KEY)
        store.record_spend([line, SpendRecord(task="t", at=NOW, amount=0.125)])
        store.budget_reserve(_hold("h1", 0.0625), scopes=scopes, windows=DAY, admit=seen.append)
        store.budget_reserve(_hold("h2", 1.0, None), scopes=scopes, windows=DAY, admit=seen.append)
        totals = store.budget_totals(scopes, DAY)
        assert totals.spent[SCOPE] == (0.25,) and totals.spent["t"] == (0.375,)
        assert totals.pending[SCOPE] == 0.0625 and totals.pending["t"] == 1.0625
        assert totals.key_caps == {SCOPE: (0.5, None, 3.0)}
        assert seen[0].key_caps == {SCOPE: (0.5, None, 3.0)} and SCOPE not in seen[0].pending
        assert store.budget_totals(["t", "*"], DAY).key_caps == {}  # no key asked: no key read
        # A crash: the hold's worst case is booked to the key, and its row is gone.
        store.budget_recover(owner="gw-a", now=NOW)
        after = store.budget_totals(scopes, DAY)
        assert after.spent[SCOPE] == (0.3125,) and SCOPE not in after.pending
        charged = [e for e in store.spend_entries("t") if e.caller == KEY]
        assert sorted(e.amount for e in charged) == [0.0625, 0.25]


def test_a_refused_reservation_leaves_nothing_held(store_url: str) -> None:
    def refuse(totals: BudgetTotals) -> None:
        raise RuntimeError(f"over {totals.key_caps[SCOPE]}")

    with open_store(store_url) as store:
        store.add_api_key(ApiKeyRecord(KEY, "f" * 64, ("t",), None, NOW, budget={"daily": 1.0}))
        with pytest.raises(RuntimeError, match="over"):
            store.budget_reserve(_hold("h1", 0.5), scopes=["t", "*", SCOPE], windows=DAY,
                                 admit=refuse)  # fmt: skip
        assert store.reservations() == []
