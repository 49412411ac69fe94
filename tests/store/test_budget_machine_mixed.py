"""The two-ledger budget machine (test_budget_machine.py) with one more step: a request
transaction settling a hold and new reservations in ONE group commit (what the gateway's
writer sends when both are queued together). The model applies the settle first, then
the lease sweep, then the reservations, as store/batches.py documents; the machine's
invariants (never over a cap, booked exactly what the model says) must still hold."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import consumes, multiple, rule
from test_budget_machine import TASKS, TwoLedgers

from apprentice.gateway.spending import Hold
from apprentice.store import RequestRecord
from apprentice.store.records import RecordResult


class MixedLedgers(TwoLedgers):
    @rule(
        target=TwoLedgers.holds,
        hold=consumes(TwoLedgers.holds),
        fraction=st.floats(0.0, 1.0),
        asks=st.lists(
            st.tuples(st.sampled_from(TASKS), st.floats(0.0, 0.7, allow_nan=False)),
            min_size=1,
            max_size=4,
        ),
    )
    def settle_and_reserve_together(
        self, hold: Hold, fraction: float, asks: list[tuple[str, float]]
    ) -> Any:
        if hold.id in self.forgotten:
            return multiple()  # its gateway crashed: nobody can settle it any more
        who = self.owner_of[hold.id]
        ledger = self.ledgers[who]
        created = self._created  # before the batch books expired leases
        actual = hold.amount * fraction
        hold.called = True
        row = RequestRecord(
            id=uuid.uuid4().hex, task=hold.task, received_at=self.now, route="cold_start",
            served_by="teacher",
        )  # fmt: skip
        write = {"request": row, "spend": [ledger.line(hold, hold.task, actual, self.now)]}
        made = [ledger._ask(task, amount, self.now, "teacher", None) for task, amount in asks]
        outcomes = self.stores[who].record_requests([write], [ask for _, ask in made])
        assert isinstance(outcomes[0], RecordResult)
        if hold.id in self.open:  # 1. the settle (else it was booked at its worst case)
            del self.open[hold.id]
            self.booked += actual
        for hid in list(self.open):  # 2. the leases the reservations' sweep books
            started = created.get(hid)
            if started is not None and started + timedelta(seconds=600) < self.now:
                self.booked += self.open.pop(hid).amount
        admitted = []  # 3. the reservations, each against those before it
        for (new, _), outcome in zip(made, outcomes[1:], strict=True):
            if not isinstance(outcome, Exception):
                self.owner_of[new.id] = who
                self.open[new.id] = new
                admitted.append(new)
        return multiple(*admitted)


MixedLedgers.TestCase.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, print_blob=True
)
test_a_mixed_group_commit_never_overspends = MixedLedgers.TestCase
