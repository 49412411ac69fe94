"""Steady state (phase 3): the student serves; what happens when it cannot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
from gw_config import make_config

from apprentice import config, prompts
from apprentice.engine import lifecycle
from apprentice.store import open_store


def seed_steady_state(cfg: config.ApprenticeConfig, tmp_path: Path, rule: str) -> None:
    """A store as a server in steady state on v1 would have left it."""
    params = lifecycle.TaskParams.from_config(cfg, "classify")
    state = lifecycle.version_promoted(lifecycle.initial(params), "v1")
    for i in range(params.detectors.window_size):
        state, _ = lifecycle.observe(state, 1.0, index=i)
    assert state.phase is lifecycle.Phase.steady_state
    path = gw_fakes.write_adapter(tmp_path / "models" / "classify" / "v1", rule)
    with open_store(cfg.store.url) as store:
        gw_fakes.promote_v1(store, path)
        store.save_task_state("classify", state.to_dict())


async def _local_request(client: Any, h: Any, start: int) -> tuple[int, dict[str, Any], Any]:
    """Send until one request is routed local-only by the engine; returns it."""
    for i in range(start, start + 200):
        inp = gw_rules.make_input(i)
        resp = await client.post("/v1/tasks/classify", json={"input": inp})
        await h.gw.flush()
        last = h.gw.store.requests("classify")[-1]
        if last.route != "both":
            return resp.status, await resp.json(), last
    raise AssertionError("the engine never routed local-only")


async def test_phase_3_student_serves(harness_factory: Any, tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    seed_steady_state(cfg, tmp_path, "first_word")
    h = await harness_factory(cfg)
    client = await h.serve()
    status, _body, last = await _local_request(client, h, 0)
    assert status == 200 and last.route == "local_only" and last.served_by == "student"
    assert last.cost == 0.0 and last.student_version == "v1"
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["phase"] == "steady_state" and state["sampling_rate"] < 1.0


async def test_a_student_answer_reports_the_students_tokens(
    harness_factory: Any, tmp_path: Path
) -> None:
    """Chat ``usage`` of an answer the student served: its own token counts, not zeros."""
    cfg = make_config(tmp_path)
    seed_steady_state(cfg, tmp_path, "first_word")
    h = await harness_factory(cfg)
    client = await h.serve()
    for i in range(200):
        inp = gw_rules.make_input(i)
        messages = [{"role": "user", "content": json.dumps(inp)}]
        resp = await client.post(
            "/v1/chat/completions", json={"model": "classify", "messages": messages}
        )
        body = await resp.json()
        await h.gw.flush()
        if h.gw.store.requests("classify")[-1].served_by == "student":
            break
    else:
        raise AssertionError("the student never served")
    answer = body["choices"][0]["message"]["content"]
    assert body["usage"] == {
        "prompt_tokens": len(prompts.canonical_json(inp).encode()),
        "completion_tokens": len(answer.encode()),
        "total_tokens": len(prompts.canonical_json(inp).encode()) + len(answer.encode()),
    }
    assert body["usage"]["completion_tokens"] > 0


async def test_invalid_local_answer_falls_back_to_the_teacher_and_scores_0(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    seed_steady_state(cfg, tmp_path, "invalid")
    h = await harness_factory(cfg)
    client = await h.serve()
    for i in range(12):
        inp = gw_rules.make_input(i)
        resp = await client.post("/v1/tasks/classify", json={"input": inp})
        assert (await resp.json())["output"] == gw_rules.teacher_output(inp)
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["emergency"] is True and state["phase"] == "reinforcement"
    assert any(a["kind"] == "emergency" for a in state["alarms"])
    assert h.gw.metrics.value("apprentice_alerts_total", {"kind": "emergency"}) == 1.0
    await h.gw.flush()
    compared = [r for r in h.gw.store.requests("classify") if r.route == "both"]
    assert compared, "a local-only answer that failed validation must be compared"
    first = compared[0]
    assert first.served_by == "teacher" and first.cost > 0
    comparisons = h.gw.store.comparisons("classify")
    assert comparisons and comparisons[0].score == 0.0
    assert comparisons[0].request_id == first.id


async def test_student_down_in_phase_3_teacher_answers(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path)
    seed_steady_state(cfg, tmp_path, "first_word")
    h = await harness_factory(cfg, student=lambda: gw_fakes.RuleStudent(fail=True))
    client = await h.serve()
    for i in range(10):
        inp = gw_rules.make_input(i)
        resp = await client.post("/v1/tasks/classify", json={"input": inp})
        assert resp.status == 200
        assert (await resp.json())["output"] == gw_rules.teacher_output(inp)
    await h.gw.flush()
    assert {r.served_by for r in h.gw.store.requests("classify")} == {"teacher"}


async def test_student_down_and_budget_gone_is_503(harness_factory: Any, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, task={"budget": {"daily": 0.0000001}})
    seed_steady_state(cfg, tmp_path, "first_word")
    h = await harness_factory(cfg, student=lambda: gw_fakes.RuleStudent(fail=True))
    client = await h.serve()
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
    assert resp.status == 503
    body = await resp.json()
    assert body["error"]["type"] == "student_unavailable"
    assert body["error"]["details"]["reason"] == "StudentUnavailable"
    assert h.gw.store.spend_entries("classify") == []


async def test_past_max_concurrency_requests_get_503_overloaded(
    harness_factory: Any, tmp_path: Path
) -> None:
    import asyncio

    cfg = make_config(
        tmp_path, gateway={"max_concurrency": 2, "admin_token_env": "GW_TEST_ADMIN_TOKEN"}
    )
    seed_steady_state(cfg, tmp_path, "first_word")
    gate = asyncio.Event()
    h = await harness_factory(cfg, student=lambda: gw_fakes.RuleStudent(gate=gate))
    client = await h.serve()
    student = h.students["classify"]
    held = [
        asyncio.ensure_future(
            client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        )
        for i in range(2)
    ]
    while student.inside < 2:  # both requests are inside the student now
        student.inside_changed.clear()
        await student.inside_changed.wait()
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(9)})
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"]["type"] == "overloaded"
    assert (await client.get("/healthz")).status == 200  # probes are not counted
    gate.set()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
