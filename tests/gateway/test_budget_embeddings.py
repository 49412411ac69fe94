"""Teacher embeddings (``semantic_similarity`` with ``embedding: teacher``) are spend too.

The judge factory the gateway hands to evaluators wraps each teacher so that its
``embed`` is reserved before and booked after, like any paid call. The teacher
is the real ``openai_compatible`` client against a loopback server speaking the
OpenAI embeddings API; the store is real SQLite.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from gw_config import make_config

from apprentice.config import ProviderConfig
from apprentice.evaluators.base import EvaluatorError
from apprentice.gateway import judging, spending
from apprentice.store import open_store
from fakes.teachers import FakeTeacherServer


async def test_embeddings_are_reserved_then_booked_and_refused_at_the_cap(tmp_path: Path) -> None:
    async with FakeTeacherServer("openai") as server:
        cfg = make_config(tmp_path, task={"budget": {"daily": 1.0}})
        store = open_store(cfg.store.url)
        budget = spending.SharedBudget(cfg, store)
        factory = judging.billed_judges(budget, "classify")
        provider = ProviderConfig.model_validate(
            {
                "provider": "openai_compatible",
                "model": "text-embedding-3-small",
                "base_url": server.base_url,
            }
        )
        teacher = factory(provider)
        texts = ["the student said this", "the teacher said that"]
        vectors = await teacher.embed(texts)
        assert len(vectors) == 2 and len(server.received) == 1
        [line] = store.spend_entries("classify")
        assert line.kind == "embedding"
        assert line.amount == pytest.approx(teacher.estimate_embed_cost(texts)) and line.amount > 0
        assert store.reservations() == []

        # Spend the rest of the day's cap: the next embedding call is refused before the wire.
        hold = await budget.reserve("classify", 1.0 - line.amount, datetime.now(UTC))
        assert hold is not None
        with pytest.raises(EvaluatorError, match="no room for teacher embeddings"):
            await teacher.embed(texts)
        assert len(server.received) == 1  # nothing sent, nothing billed
        await budget.release(hold)
        total = math.fsum(e.amount for e in store.spend_entries("classify"))
        assert total == pytest.approx(line.amount)
        await teacher.aclose()
        await budget.close()
        store.close()
