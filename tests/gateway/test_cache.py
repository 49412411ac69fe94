"""The answer cache over HTTP: a loopback gateway, a loopback teacher that counts its calls.

A repeat is answered with no teacher call and the same output (its own request id and
row, counted in the store, the status' savings and the metrics); the TTL runs on an
injected clock; fifty identical requests in flight make one call; a promotion empties the
task's cache; a task without ``cache.enabled`` calls the teacher every time.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import gw_rules
from billing_teacher import BillingTeacher, provider_block
from gw_config import make_config
from test_steady import seed_steady_state

from apprentice.reporting import timeline


class Clock:
    """Seconds the test moves by hand (the cache's TTL clock)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _config(
    tmp_path: Path, fake: BillingTeacher, store_url: str | None = None, **cache: Any
) -> Any:
    task = {"cache": {"enabled": True, "ttl_s": 60, **cache}} if cache.get("enabled", True) else {}
    return make_config(
        tmp_path, store_url=store_url, remote=provider_block(fake.base_url), task=task
    )


async def _ask(client: Any, i: int) -> dict[str, Any]:
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def _joined(h: Any, n: int, calls: list[asyncio.Future[Any]]) -> None:
    """Yield to the loop until ``n`` callers await another's flight (or a call ended early:
    the test's assertions then say what went wrong instead of a hang)."""
    cache = h.gw.pipeline.cache
    while cache.waiting("classify") < n and not any(c.done() for c in calls):  # noqa: ASYNC110
        await asyncio.sleep(0)  # no event to wait on: the cache only counts its waiters


async def _serve(harness_factory: Any, cfg: Any) -> tuple[Any, Any, Clock]:
    h = await harness_factory(cfg)
    clock = Clock()
    h.gw.pipeline.cache.clock = clock
    return h, await h.serve(), clock


async def test_a_repeat_calls_nobody_and_counts_as_saved(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    async with BillingTeacher() as fake:
        h, client, _ = await _serve(harness_factory, _config(tmp_path, fake, store_url))
        first = await _ask(client, 1)
        again = [await _ask(client, 1) for _ in range(3)]
        assert fake.requests == 1
        assert all(a["output"] == first["output"] for a in again)
        ids = {first["request_id"], *(a["request_id"] for a in again)}
        assert len(ids) == 4  # every answer its own request

        await h.gw.flush()
        rows = {r.id: r for r in h.gw.store.requests("classify")}
        assert [rows[a["request_id"]].served_by for a in again] == ["cache"] * 3
        assert all(rows[a["request_id"]].cost == 0 for a in again)
        counts = h.gw.store.request_counts("classify")
        assert (counts.requests, counts.teacher_calls, counts.cache_hits) == (4, 1, 3)
        # No new information: one example (the teacher's), no comparison.
        assert sum(h.gw.store.example_counts("classify").values()) == 1
        assert counts.comparisons == 0

        state = await (await client.get("/v1/tasks/classify/state")).json()
        assert state["estimated_savings"] > 0  # three hits at the teacher's average cost
        report = timeline.collect(h.gw.store, "classify")  # the report's "saved"
        cost = report.teacher_spend
        assert math.isclose(report.all_teacher_estimate - cost, 3 * cost, rel_tol=1e-6)
        text = await (await client.get("/metrics")).text()
        assert 'apprentice_cache_lookups_total{result="hit",task="classify"} 3.0' in text
        assert 'apprentice_cache_lookups_total{result="miss",task="classify"} 1.0' in text
        assert 'apprentice_savings_usd_total{task="classify"}' in text


async def test_an_expired_answer_calls_again(harness_factory: Any, tmp_path: Path) -> None:
    async with BillingTeacher() as fake:
        _, client, clock = await _serve(harness_factory, _config(tmp_path, fake))
        await _ask(client, 2)
        clock.now += 59.9
        await _ask(client, 2)
        assert fake.requests == 1
        clock.now += 0.2  # 60.1 s after the answer: expired
        await _ask(client, 2)
        assert fake.requests == 2
        await _ask(client, 2)
        assert fake.requests == 2  # the new answer is cached again


async def test_fifty_identical_requests_make_one_call(harness_factory: Any, tmp_path: Path) -> None:
    async with BillingTeacher() as fake:
        fake.gate = asyncio.Event()  # the teacher holds its answer until all fifty wait
        h, client, _ = await _serve(harness_factory, _config(tmp_path, fake))
        calls = [asyncio.ensure_future(_ask(client, 3)) for _ in range(50)]
        await _joined(h, 49, calls)  # the other 49 wait on the first one's call
        fake.gate.set()
        answers = await asyncio.gather(*calls)
        assert fake.requests == 1
        assert len({a["request_id"] for a in answers}) == 50
        assert all(a["output"] == answers[0]["output"] for a in answers)
        text = await (await client.get("/metrics")).text()
        assert 'apprentice_cache_lookups_total{result="shared",task="classify"} 49.0' in text


async def test_a_promotion_empties_the_cache(harness_factory: Any, tmp_path: Path) -> None:
    async with BillingTeacher() as fake:
        h, client, _ = await _serve(harness_factory, _config(tmp_path, fake))
        await _ask(client, 4)
        await _ask(client, 4)
        assert fake.requests == 1
        await h.gw.version_promoted("classify", "v1")
        await _ask(client, 4)
        assert fake.requests == 2  # the old version's answers are gone
        await _ask(client, 4)
        assert fake.requests == 2


async def test_off_means_every_request_is_called(harness_factory: Any, tmp_path: Path) -> None:
    async with BillingTeacher() as fake:
        h, client, _ = await _serve(harness_factory, _config(tmp_path, fake, enabled=False))
        assert h.gw.config.tasks[0].cache.enabled is False  # the default
        for _ in range(3):
            await _ask(client, 5)
        assert fake.requests == 3
        text = await (await client.get("/metrics")).text()
        assert "apprentice_cache_lookups_total{" not in text


async def test_a_failure_is_shared_and_never_cached(harness_factory: Any, tmp_path: Path) -> None:
    async with BillingTeacher() as fake:
        fake.script("500")
        fake.gate = asyncio.Event()
        h, client, _ = await _serve(harness_factory, _config(tmp_path, fake))
        url, body = "/v1/tasks/classify", {"input": gw_rules.make_input(6)}
        calls = [asyncio.ensure_future(client.post(url, json=body)) for _ in range(5)]
        await _joined(h, 4, calls)
        fake.gate.set()
        statuses = {r.status for r in await asyncio.gather(*calls)}
        assert len(statuses) == 1 and statuses.pop() >= 500  # one error for all five
        assert fake.requests == 1
        await _ask(client, 6)  # the error was not stored: this one calls
        assert fake.requests == 2


async def test_a_cancelled_first_caller_leaves_the_others_served(
    harness_factory: Any, tmp_path: Path
) -> None:
    async with BillingTeacher() as fake:
        fake.gate = asyncio.Event()
        h, _, _ = await _serve(harness_factory, _config(tmp_path, fake))
        inp = gw_rules.make_input(7)
        first = asyncio.ensure_future(h.gw.run("classify", inp))
        async with asyncio.timeout(30):  # a guard against a hang, not a synchronisation
            await fake.arrived.wait()
        second = asyncio.ensure_future(h.gw.run("classify", inp))
        await _joined(h, 1, [first, second])
        first.cancel()
        fake.gate.set()
        result = await second
        assert result.output == gw_rules.teacher_output(inp)
        assert first.cancelled()
        assert fake.requests == 2  # the second caller asked again itself


async def test_a_hit_is_served_at_the_budget_cap(harness_factory: Any, tmp_path: Path) -> None:
    async with BillingTeacher() as fake:
        cfg = make_config(
            tmp_path,
            remote=provider_block(fake.base_url),
            task={"cache": {"enabled": True}, "budget": {"daily": 0.01}},
        )
        h, client, _ = await _serve(harness_factory, cfg)
        first = await _ask(client, 8)  # spends 0.002 of 0.01; a worst case is about 0.0085
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(9)})
        assert resp.status == 429, await resp.text()  # a new input: no room for a call
        assert (await _ask(client, 8))["output"] == first["output"]  # a repeat costs nothing
        assert fake.requests == 1
        assert len(h.gw.store.spend_entries("classify")) == 1


async def test_the_oldest_answer_is_evicted_past_max_entries(
    harness_factory: Any, tmp_path: Path
) -> None:
    async with BillingTeacher() as fake:
        _, client, _ = await _serve(harness_factory, _config(tmp_path, fake, max_entries=2))
        for i in (10, 11, 10, 12):  # 10 is used again, so 11 is the oldest when 12 comes
            await _ask(client, i)
        assert fake.requests == 3
        await _ask(client, 10)
        assert fake.requests == 3
        await _ask(client, 11)
        assert fake.requests == 4


async def test_a_student_answer_is_cached_too(harness_factory: Any, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, task={"cache": {"enabled": True}})
    seed_steady_state(cfg, tmp_path, "first_word")
    h, client, _ = await _serve(harness_factory, cfg)
    student = h.students["classify"]
    for i in range(200):  # until the engine routes one local-only (the student alone)
        answer = await _ask(client, i)
        await h.gw.flush()
        if h.gw.store.requests("classify")[-1].served_by == "student":
            break
    else:
        raise AssertionError("the engine never routed local-only")
    calls = student.calls
    for _ in range(3):
        assert (await _ask(client, i))["output"] == answer["output"]
    assert student.calls == calls  # served from the cache: the student was not asked
    await h.gw.flush()
    assert [r.served_by for r in h.gw.store.requests("classify")[-3:]] == ["cache"] * 3


async def test_each_hit_gets_its_own_copy(harness_factory: Any, tmp_path: Path) -> None:
    async with BillingTeacher() as fake:
        h, _, _ = await _serve(harness_factory, _config(tmp_path, fake))
        inp = gw_rules.make_input(5)
        first = await h.gw.run("classify", inp)
        hit = await h.gw.run("classify", inp)
        assert fake.requests == 1 and first.output
        assert hit.output == first.output and hit.output is not first.output
        hit.output.clear()  # a caller changing its answer changes no one else's
        again = await h.gw.run("classify", inp)
        assert again.output == first.output and again.output is not hit.output
