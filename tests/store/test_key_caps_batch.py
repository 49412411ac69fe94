"""A batch of reservations (one group commit) reads each API key's caps once, and every
ask sees the caps its key's row holds: a key with a budget, one without, one unknown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from apprentice.store import open_store
from apprentice.store.api_keys import ApiKeyRecord
from apprentice.store.budget import Ask, BudgetTotals
from apprentice.store.records import ReservationRecord
from apprentice.store.sqlite import SqliteStore

NOW = datetime(2025, 3, 10, 12, tzinfo=UTC)
DAY = [(NOW.replace(hour=0).timestamp(), (NOW.replace(hour=0) + timedelta(days=1)).timestamp())]
CAPPED, OPEN, UNKNOWN = "0123456789ab", "aaaaaaaaaaaa", "bbbbbbbbbbbb"


def _ask(n: int, key: str, seen: list[BudgetTotals]) -> Ask:
    row = ReservationRecord(
        id=f"h{n}", task="t", amount=0.01, owner="gw", created_at=NOW,
        expires_at=NOW + timedelta(minutes=10), request_id=f"r{n}", caller=key,
    )  # fmt: skip
    return row, ["t", "*", f"key:{key}"], DAY, seen.append


def test_each_key_s_caps_are_read_once_a_batch(tmp_path: Path) -> None:
    statements: list[str] = []
    seen: list[BudgetTotals] = []
    with open_store(f"sqlite:///{tmp_path}/s.db") as store:
        assert isinstance(store, SqliteStore)
        store.add_api_key(ApiKeyRecord(CAPPED, "f" * 64, ("t",), None, NOW, budget={"daily": 2.0}))
        store.add_api_key(ApiKeyRecord(OPEN, "e" * 64, ("t",), None, NOW))
        keys = [CAPPED, OPEN, UNKNOWN, CAPPED, OPEN, UNKNOWN, CAPPED]
        store._connection().set_trace_callback(statements.append)
        out = store.record_requests([], [_ask(n, k, seen) for n, k in enumerate(keys)])
        store._connection().set_trace_callback(None)
    assert not any(isinstance(o, Exception) for o in out)
    caps = [s.key_caps for s in seen]
    capped = {f"key:{CAPPED}": (2.0, None, None)}
    assert caps == [capped, {}, {}, capped, {}, {}, capped]
    reads = [s for s in statements if "FROM api_keys" in s]
    assert len(reads) == 3  # one a key, at its first ask, not one an ask (7)
    # The keys' open holds still count each ask admitted before it in the batch.
    assert [s.pending.get(f"key:{CAPPED}", 0.0) for s in seen[::3]] == [0.0, 0.01, 0.02]
