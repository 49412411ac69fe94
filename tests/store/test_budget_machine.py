"""A state machine over reserve/settle/release/crash/restart/expiry with two ledgers, one store.

Two :class:`~apprentice.gateway.spending.SharedBudget` instances (two gateways,
each with its own store connection) share one SQLite file. Hypothesis drives
any interleaving of: reserve (any task, any amount), settle (any actual up to
the reservation), release, extend, crash (a gateway forgets its holds; their
rows stay), restart (the same owner books its rows at worst case) and lease
expiry (every row older than the lease is booked at worst case). After every
step the store must show: booked + reserved <= cap in every capped scope, and
booked = exactly what the model says was billed or booked at worst case.
"""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from apprentice import config
from apprentice.gateway.spending import Hold, SharedBudget
from apprentice.store import open_store

TASK_CAP, GLOBAL_CAP = 1.0, 1.5
TASKS = ("a", "b")


def _config(url: str) -> config.ApprenticeConfig:
    def task(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "input_schema": {"text": "str"},
            "output_schema": {"label": "str"},
            "budget": {"daily": TASK_CAP},
        }

    return config.ApprenticeConfig.model_validate(
        {
            "tasks": [task(n) for n in TASKS],
            "remote": {"provider": "replay", "path": "/dev/null", "price_as": "gpt-4o"},
            "budget": {"daily": GLOBAL_CAP},
            "store": {"url": url},
        }
    )


class TwoLedgers(RuleBasedStateMachine):
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(self.dir.name) / 'budget.db'}"
        self.cfg = _config(url)
        self.stores = [open_store(url), open_store(url)]
        self.ledgers = [SharedBudget(self.cfg, s, owner=f"gw{i}", ttl_s=600) for i, s in
                        enumerate(self.stores)]  # fmt: skip
        self.now = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
        self.owner_of: dict[str, int] = {}
        self.open: dict[str, Hold] = {}  # rows the model says are in the store
        self.forgotten: set[str] = set()  # holds of a crashed gateway
        self.booked = 0.0  # what the model says the store booked

    def teardown(self) -> None:
        for s in self.stores:
            s.close()
        self.dir.cleanup()

    @rule(
        target=holds,
        who=st.integers(0, 1),
        task=st.sampled_from(TASKS),
        amount=st.floats(0.0, 0.7, allow_nan=False),
    )
    def reserve(self, who: int, task: str, amount: float) -> Any:
        self._sweep_model()  # a reservation also books expired rows first
        hold = self.ledgers[who].reserve_now(task, amount, self.now)
        if hold is None:
            return multiple()
        self.owner_of[hold.id] = who
        self.open[hold.id] = hold
        return hold

    @rule(
        target=holds,
        who=st.integers(0, 1),
        asks=st.lists(
            st.tuples(st.sampled_from(TASKS), st.floats(0.0, 0.7, allow_nan=False)),
            min_size=1,
            max_size=5,
        ),
    )
    def reserve_together(self, who: int, asks: list[tuple[str, float]]) -> Any:
        """A group commit of reservations (what the gateway's batcher sends)."""
        self._sweep_model()
        ledger = self.ledgers[who]
        made = [ledger._ask(task, amount, self.now, "teacher", None) for task, amount in asks]
        outcomes = self.stores[who].budget_reserve_many([ask for _, ask in made])
        admitted = []
        for (hold, _), outcome in zip(made, outcomes, strict=True):
            if not isinstance(outcome, Exception):
                self.owner_of[hold.id] = who
                self.open[hold.id] = hold
                admitted.append(hold)
        return multiple(*admitted)

    @rule(hold=consumes(holds), fraction=st.floats(0.0, 1.0))
    def settle(self, hold: Hold, fraction: float) -> None:
        if hold.id in self.forgotten:
            return  # its gateway crashed: nobody can settle it any more
        actual = hold.amount * fraction
        hold.called = True
        self.ledgers[self.owner_of[hold.id]].settle_now(hold, actual, self.now)
        if hold.id in self.open:  # else it was already booked at its worst case
            del self.open[hold.id]
            self.booked += actual

    @rule(hold=consumes(holds))
    def release(self, hold: Hold) -> None:
        if hold.id in self.forgotten:
            return
        self.ledgers[self.owner_of[hold.id]].release_now(hold)
        self.open.pop(hold.id, None)

    @rule(hold=holds, more=st.floats(0.0, 0.5, allow_nan=False))
    def extend(self, hold: Hold, more: float) -> None:
        if hold.id in self.forgotten or hold.done:
            return
        before = hold.amount
        ok = self.ledgers[self.owner_of[hold.id]].extend_now(hold, more, self.now)
        assert hold.amount == (before + more if ok else before)
        if not ok:
            assert hold.id not in self.open or self._would_cross(hold.task, more)

    @rule(who=st.integers(0, 1))
    def crash(self, who: int) -> None:
        for hid, owner in self.owner_of.items():
            if owner == who and hid in self.open:
                self.forgotten.add(hid)

    @rule(who=st.integers(0, 1))
    def restart(self, who: int) -> None:
        self.crash(who)
        self.ledgers[who] = SharedBudget(self.cfg, self.stores[who], owner=f"gw{who}", ttl_s=600)
        self._sweep_model()
        self.ledgers[who].recover_now(self.now)
        for hid in list(self.open):
            if self.owner_of[hid] == who:
                self.booked += self.open.pop(hid).amount

    @rule(minutes=st.integers(1, 20))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    def _sweep_model(self) -> None:
        for hid in list(self.open):
            created = self._created.get(hid)
            if created is not None and created + timedelta(seconds=600) < self.now:
                self.booked += self.open.pop(hid).amount

    @property
    def _created(self) -> dict[str, datetime]:
        return {r.id: r.created_at for r in self.stores[0].reservations()}

    def _would_cross(self, task: str, more: float) -> bool:
        spent, pending = self._totals()
        return (
            spent[task] + pending[task] + more > TASK_CAP
            or spent["*"] + pending["*"] + more > GLOBAL_CAP
        )

    def _totals(self) -> tuple[dict[str, float], dict[str, float]]:
        ledger = self.ledgers[0]
        windows = ledger._windows(self.now.timestamp())
        totals = self.stores[0].budget_totals([*TASKS, "*"], windows)
        spent = {s: totals.spent.get(s, (0.0, 0.0, 0.0))[0] for s in (*TASKS, "*")}
        pending = {s: totals.pending.get(s, 0.0) for s in (*TASKS, "*")}
        return spent, pending

    @invariant()
    def never_overspends(self) -> None:
        spent, pending = self._totals()
        for task in TASKS:
            assert spent[task] + pending[task] <= TASK_CAP + 1e-9
        assert spent["*"] + pending["*"] <= GLOBAL_CAP + 1e-9

    @invariant()
    def books_exactly_what_the_model_says(self) -> None:
        entries = self.stores[1].spend_entries()
        assert math.fsum(e.amount for e in entries) == pytest.approx(self.booked, abs=1e-9)
        rows = {r.id for r in self.stores[1].reservations()}
        assert rows == set(self.open)


TwoLedgers.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, print_blob=True
)
test_two_ledgers_sharing_a_store_never_overspend = TwoLedgers.TestCase
