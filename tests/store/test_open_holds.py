"""OpenHolds (a batch of asks in one store transaction) answers exactly what summing the
open reservations afresh at each ask answers, whatever the order of asks and adds:
its per-task sums are kept between asks, and an answer already given never changes."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from apprentice.store import open_store
from apprentice.store.budget import GLOBAL, OpenHolds, totals
from apprentice.store.records import ReservationRecord, SpendRecord
from apprentice.store.sql import SqlStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TASKS = ("a", "b", "c")
amounts = st.floats(min_value=0.0, max_value=3.0, allow_nan=False).map(lambda v: round(v, 4))
ops = st.lists(st.one_of(st.just(None), st.tuples(st.sampled_from(TASKS), amounts)), max_size=25)


class _Rollback(Exception):
    """Ends the test's transaction without keeping what it added."""


def _row(n: int, task: str, amount: float) -> ReservationRecord:
    return ReservationRecord(
        id=f"r{n}", task=task, amount=amount, owner="o", created_at=NOW,
        expires_at=NOW + timedelta(hours=1), kind="teacher",
    )  # fmt: skip


def _fresh(stored: list[tuple[str, float]], added: list[tuple[str, float]]) -> dict[str, float]:
    """What by_task answered before it kept sums: every task's fsum afresh, then GLOBAL
    (``stored``: the SQL sum of each task's rows, as one part)."""
    parts: dict[str, list[float]] = {task: [amount] for task, amount in stored}
    for task, amount in added:
        parts.setdefault(task, []).append(amount)
    pending = {task: math.fsum(p) for task, p in parts.items()}
    pending[GLOBAL] = math.fsum(pending.values())
    return pending


@settings(max_examples=60, deadline=None)
@given(stored=st.lists(st.tuples(st.sampled_from(TASKS[:2]), amounts), max_size=4), steps=ops)
def test_by_task_is_the_fresh_sum_at_every_ask(
    stored: list[tuple[str, float]], steps: list[tuple[str, float] | None]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/s.db")
        assert isinstance(store, SqlStore)
        if stored:
            rows = [_row(i, t, a) for i, (t, a) in enumerate(stored)]
            store.budget_reserve(rows[0], scopes=[GLOBAL], windows=[], admit=lambda _: None)
            for r in rows[1:]:
                store.budget_reserve(r, scopes=[GLOBAL], windows=[], admit=lambda _: None)
        try:
            with store._write() as tx:
                held = OpenHolds(tx)
                sums = tx.all("SELECT task, SUM(amount) FROM budget_reservations GROUP BY task")
                sql = [(str(t), float(a)) for t, a in sums]
                added: list[tuple[str, float]] = []
                answers: list[tuple[dict[str, float], dict[str, float]]] = []
                for n, step in enumerate(steps, start=100):
                    if step is None:  # an ask: what it sees, kept to check it later
                        seen = dict(held.by_task())
                        assert seen == _fresh(sql, added)
                        answers.append((held.by_task(), seen))
                    else:
                        held.add(_row(n, *step))
                        added.append(step)
                for given_dict, copy in answers:  # an answer given never changes after
                    assert given_dict == copy
                raise _Rollback
        except _Rollback:
            pass
        finally:
            store.close()


def test_totals_bounds_follow_the_windows_asked() -> None:
    """The memoised bucket bounds are per windows value: another window, another read."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{tmp}/s.db")
        assert isinstance(store, SqlStore)
        store.record_spend([SpendRecord(task="a", at=NOW, amount=0.5)])
        day = NOW.replace(hour=0).timestamp()
        with store._read() as tx:
            inside = totals(tx, ["a", GLOBAL], [(day, day + 86_400)])
            before = totals(tx, ["a", GLOBAL], [(day - 86_400, day)])
        store.close()
    assert inside.spent["a"] == (0.5,) and inside.spent[GLOBAL] == (0.5,)
    assert before.spent.get("a", (0.0,)) == (0.0,)
