"""Issue 9's table, one test per row: every billed cent booked, every cap held.

The teacher is a loopback OpenAI-compatible server that bills $0.002 a call and
counts what it billed (``billing_teacher``); the client is the real
``openai_compatible`` teacher; the store is real SQLite and PostgreSQL
(``store_url``). Each test asserts booked spend against the provider's bill and
against the cap. Where the provider does not say what a call cost (a timeout, no
``usage``, a 5xx, odd token counts) the policy books the attempt's worst case, so
there the test asserts booked = known bills + worst cases >= billed.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gw_rules
import pytest
from billing_teacher import CALL, BillingTeacher, provider_block
from gw_config import make_config

from apprentice import prompts

CAP = 0.10


def _config(tmp_path: Path, store_url: str, fake: BillingTeacher, **remote: Any) -> Any:
    return make_config(
        tmp_path,
        store_url=store_url,
        remote=provider_block(fake.base_url, **remote),
        task={"budget": {"daily": CAP}},
    )


async def _post(client: Any, i: int) -> int:
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
    await resp.read()
    return int(resp.status)


def _booked(h: Any) -> float:
    return math.fsum(e.amount for e in h.gw.store.spend_entries("classify"))


def _worst(h: Any, i: int) -> float:
    """The most one first attempt for input ``i`` can bill (the policy's unknown cost)."""
    teacher = h.gw.teachers.primary
    task = h.gw.config.task("classify")
    messages = prompts.build_messages(task, gw_rules.make_input(i))
    return float(teacher._attempt_worst(messages, teacher.config.max_output_tokens))


async def _status_today(client: Any) -> float:
    state = await (await client.get("/v1/tasks/classify/state")).json()
    return float(state["spend"]["today"])


async def test_schema_invalid_answers_are_booked_and_counted(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher("invalid") as fake:
        h = await harness_factory(_config(tmp_path, store_url, fake))
        client = await h.serve()
        statuses: list[int] = []
        for wave in range(4):  # waves of concurrent requests, as in the issue
            statuses += await asyncio.gather(*(_post(client, wave * 60 + i) for i in range(60)))
        await h.gw.flush()
        assert set(statuses) <= {502, 429} and 502 in statuses and 429 in statuses
        booked = _booked(h)
        assert fake.requests == 2 * statuses.count(502)  # the answer and its repair
        assert booked == pytest.approx(fake.billed, abs=1e-9)
        assert booked <= CAP + 1e-12
        counts = h.gw.store.request_counts("classify")
        assert counts.errors == statuses.count(502)  # failed requests are recorded
        failed = [r for r in h.gw.store.requests("classify") if r.error]
        assert {r.error for r in failed} == {"InvalidOutput"}
        assert math.fsum(r.cost for r in failed) == pytest.approx(booked, abs=1e-9)
        assert await _status_today(client) == pytest.approx(booked, abs=1e-9)
        assert not h.gw.store.reservations()
        await (await client.get("/metrics")).read()  # refreshes the spend gauges
        m = h.gw.metrics
        assert m.value("apprentice_teacher_cost_usd_total", {"task": "classify"}) == pytest.approx(
            booked, abs=1e-9
        )
        daily = m.value("apprentice_budget_spend_usd", {"scope": "classify", "window": "daily"})
        assert daily == pytest.approx(booked, abs=1e-9)


async def test_a_repair_that_gets_a_500_keeps_the_first_answers_cost(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher() as fake:
        fake.choose = lambda n: "invalid" if n % 2 == 0 else "500"
        h = await harness_factory(_config(tmp_path, store_url, fake))
        client = await h.serve()
        statuses = [await _post(client, i) for i in range(20)]
        await h.gw.flush()
        failed = statuses.count(503)  # a 5xx is transient: 503, retry later
        assert set(statuses) == {503, 429} and failed > 5  # then the cap: 429
        booked = _booked(h)
        # The invalid answer was billed; the 500 maybe (the model may have run): worst case.
        assert fake.billed == pytest.approx(failed * CALL)
        repair_worst = [e.amount - CALL for e in h.gw.store.spend_entries("classify")]
        assert all(w > 0 for w in repair_worst)
        assert booked >= fake.billed
        assert booked <= CAP + 1e-12
        assert h.gw.store.request_counts("classify").errors == failed


async def test_timeouts_and_their_retries_are_booked_at_worst_case_within_the_cap(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher("hang", hang_s=1.0) as fake:
        cfg = _config(tmp_path, store_url, fake, timeout_s=0.2, max_retries=2)
        h = await harness_factory(cfg)
        client = await h.serve()
        statuses = await asyncio.gather(*(_post(client, i) for i in range(40)))
        await h.gw.flush()
        assert set(statuses) <= {503, 429} and 503 in statuses
        booked = _booked(h)
        # Each attempt that reached the model is booked at its worst case.
        worst = {round(e.amount, 9) for e in h.gw.store.spend_entries("classify")}
        assert booked >= fake.billed > 0
        assert booked <= CAP + 1e-12  # retries asked the budget first
        per_attempt = _worst(h, 0)
        expected = fake.requests * per_attempt
        assert booked == pytest.approx(expected, rel=0.05), worst
        assert not h.gw.store.reservations()


async def test_an_answer_without_usage_is_never_free(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher("no_usage") as fake:
        h = await harness_factory(_config(tmp_path, store_url, fake))
        client = await h.serve()
        statuses = [await _post(client, i) for i in range(10)]
        await h.gw.flush()
        assert set(statuses) == {200}
        entries = h.gw.store.spend_entries("classify")
        assert len(entries) == 10
        for i, e in enumerate(entries):
            assert e.amount == pytest.approx(_worst(h, i))  # the attempt's worst case
        assert _booked(h) >= fake.billed == pytest.approx(10 * CALL)
        assert _booked(h) <= CAP


async def test_negative_token_counts_are_a_provider_error_never_a_500_or_a_refund(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher("negative") as fake:
        h = await harness_factory(_config(tmp_path, store_url, fake))
        client = await h.serve()
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
        body = await resp.json()
        assert resp.status == 502, body
        assert body["error"]["details"]["reason"] == "ProviderError"
        assert "openai_compatible" in body["error"]["message"]  # names the provider
        assert "token count -1000" in body["error"]["message"]
        await h.gw.flush()
        [entry] = h.gw.store.spend_entries("classify")
        assert entry.amount == pytest.approx(_worst(h, 1)) and entry.amount >= fake.billed
        assert h.gw.store.request_counts("classify").errors == 1


async def test_two_gateways_on_one_store_share_the_cap(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher("ok") as fake:
        cfg = _config(tmp_path, store_url, fake)
        first = await harness_factory(cfg)
        second = await harness_factory(cfg)
        a, b = await first.serve(), await second.serve()
        statuses = await asyncio.gather(
            *(_post(a if i % 2 else b, i) for i in range(220))  # 220 concurrent, as in the issue
        )
        await first.gw.flush()
        await second.gw.flush()
        assert set(statuses) == {200, 429}
        booked = _booked(first)
        assert booked == pytest.approx(fake.billed, abs=1e-9)
        assert booked <= CAP + 1e-12
        assert statuses.count(200) == fake.requests
        # Status on either gateway shows both gateways' spend.
        assert await _status_today(a) == pytest.approx(booked, abs=1e-9)
        assert await _status_today(b) == pytest.approx(booked, abs=1e-9)


async def test_a_store_write_failing_after_payment_books_the_spend_and_keeps_the_answer(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher("ok") as fake:
        h = await harness_factory(_config(tmp_path, store_url, fake))
        client = await h.serve()
        assert await _post(client, 0) == 200
        _break_examples(h.gw.store, store_url)  # every example write now fails
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
        body = await resp.json()
        assert resp.status == 503, body
        assert body["error"]["type"] == "store_unavailable"
        assert body["error"]["details"]["output"] == {
            "label": gw_rules.make_input(1)["text"].split()[0]
        }
        await h.gw.flush()
        assert _booked(h) == pytest.approx(fake.billed, abs=1e-9) == pytest.approx(2 * CALL)
        assert not h.gw.store.reservations()


async def test_when_even_the_spend_line_cannot_be_stored_it_is_journaled_and_replayed(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher("ok") as fake:
        cfg = _config(tmp_path, store_url, fake)
        h = await harness_factory(cfg)
        client = await h.serve()
        assert await _post(client, 0) == 200
        _break_examples(h.gw.store, store_url, also_spend=True)  # "disk full" for spend too
        statuses = await asyncio.gather(*(_post(client, i) for i in range(1, 6)))
        assert statuses == [503] * 5
        assert _booked(h) == pytest.approx(CALL)  # only the first made it
        await h.close()
        _repair(cfg.store.url, store_url)  # the disk has room again
        again = await harness_factory(cfg)  # start replays the journal at exact cost
        assert _booked(again) == pytest.approx(fake.billed, abs=1e-9) == pytest.approx(6 * CALL)
        assert not again.gw.store.reservations()
        today = again.gw.budget.windows("classify", datetime.now(UTC))["daily"]
        assert today == pytest.approx(6 * CALL)


async def test_a_store_that_cannot_reserve_answers_503_and_pays_nothing(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher("ok") as fake:
        h = await harness_factory(_config(tmp_path, store_url, fake))
        client = await h.serve()
        _break_examples(h.gw.store, store_url, tables=["budget_reservations"])
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
        body = await resp.json()
        assert resp.status == 503 and body["error"]["type"] == "store_unavailable", body
        assert fake.requests == 0 and _booked(h) == 0.0


async def test_a_nul_input_is_refused_before_paying_on_postgresql(
    harness_factory: Any, tmp_path: Path, postgresql_url: str
) -> None:
    async with BillingTeacher("ok") as fake:
        h = await harness_factory(_config(tmp_path, postgresql_url, fake))
        client = await h.serve()
        resp = await client.post("/v1/tasks/classify", json={"input": {"text": "bad\u0000byte"}})
        body = await resp.json()
        assert resp.status == 400, body
        assert "NUL" in body["error"]["message"] and "input.text" in body["error"]["message"]
        assert fake.requests == 0 and _booked(h) == 0.0
        # A NUL in the teacher's *answer* cannot be stored either: booked, 503 with it.
        fake.script("nul")
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(3)})
        body = await resp.json()
        assert resp.status == 503 and body["error"]["details"]["output"] == {"label": "a\u0000b"}
        await h.gw.flush()
        assert _booked(h) == pytest.approx(fake.billed) == pytest.approx(CALL)


def _break_examples(
    store: Any, url: str, *, also_spend: bool = False, tables: list[str] | None = None
) -> None:
    """Make the store refuse writes from now on, the way a full disk does (a real SQL error)."""
    if tables is None:
        tables = ["examples", "spend"] if also_spend else ["examples"]
    with store._write() as tx:
        for table in tables:
            if url.startswith("sqlite"):
                tx.execute(
                    f"CREATE TRIGGER full_{table} BEFORE INSERT ON {table}"
                    " BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
                )
            else:
                tx.execute(
                    "CREATE OR REPLACE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device';"
                    " END $$"
                )
                tx.execute(
                    f"CREATE TRIGGER full_{table} BEFORE INSERT ON {table}"
                    " FOR EACH ROW EXECUTE FUNCTION disk_full()"
                )


def _repair(url: str, kind: str) -> None:
    from apprentice.store import open_store

    with open_store(url) as store, store._write() as tx:  # type: ignore[attr-defined]
        for table in ("examples", "spend"):
            if kind.startswith("sqlite"):
                tx.execute(f"DROP TRIGGER IF EXISTS full_{table}")
            else:
                tx.execute(f"DROP TRIGGER IF EXISTS full_{table} ON {table}")
