"""Retries ask the budget first: one hold covers every call under it, never past the cap.

Two real ``openai_compatible`` clients (a panel of judges, say) run concurrently
under ONE reservation against a loopback server that always answers 500 (each
attempt may have been billed: booked at its worst case). The cap leaves room
for a few retries only; the clients must stop retrying there, and what is booked
stays within the cap.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from billing_teacher import BillingTeacher, provider_block
from gw_config import make_config

from apprentice.config import ProviderConfig
from apprentice.gateway import spending
from apprentice.store import open_store
from apprentice.teachers import billing, build_teacher
from apprentice.teachers.errors import ProviderError

CAP = 0.05


async def test_concurrent_calls_under_one_hold_stop_retrying_at_the_cap(tmp_path: Path) -> None:
    async with BillingTeacher("500") as fake:
        cfg = make_config(tmp_path, task={"budget": {"daily": CAP}})
        store = open_store(cfg.store.url)
        budget = spending.SharedBudget(cfg, store)
        block = provider_block(fake.base_url, max_retries=20)
        teacher = build_teacher(ProviderConfig.model_validate(block), sleep=_no_wait)
        messages = [{"role": "user", "content": "grade this answer please"}]
        worst = teacher._attempt_worst(messages, 200)  # type: ignore[attr-defined]
        now = datetime.now(UTC)
        hold = await budget.reserve("classify", 2 * worst, now, kind="judge")
        assert hold is not None
        hold.called = True
        token = billing.current.set(spending.CallCover(budget, hold))
        try:
            results = await asyncio.gather(
                *(teacher.complete(messages, max_tokens=200) for _ in range(2)),  # type: ignore[arg-type]
                return_exceptions=True,
            )
        finally:
            billing.current.reset(token)
        assert all(isinstance(r, ProviderError) for r in results)
        costs = [float(r.cost) for r in results if isinstance(r, ProviderError)]
        assert math.fsum(costs) == pytest.approx(fake.requests * worst)
        assert fake.requests < 2 * 21  # retries stopped: the cap had no room for more
        assert math.fsum(costs) <= hold.amount + 1e-12  # the hold grew to cover them all
        await budget.settle(hold, math.fsum(costs), now)
        booked = math.fsum(e.amount for e in store.spend_entries("classify"))
        assert booked <= CAP + 1e-12
        assert booked > CAP - worst  # it stopped only when one more attempt would not fit
        await teacher.aclose()
        await budget.close()
        store.close()


async def _no_wait(_seconds: float) -> None:
    return None
