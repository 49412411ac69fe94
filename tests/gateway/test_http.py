"""The HTTP contract: routes, shapes and every error code, on a real loopback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gw_rules
from gw_config import ADMIN_TOKEN, make_config


async def test_task_endpoint_answers_with_teacher_output_in_phase_1(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    inp = gw_rules.make_input(3)
    resp = await client.post("/v1/tasks/classify", json={"input": inp})
    assert resp.status == 200
    body = await resp.json()
    assert body["output"] == gw_rules.teacher_output(inp)
    assert len(body["request_id"]) == 32
    assert set(body) == {"output", "request_id"}  # the caller never learns who answered
    examples = h.gw.store.examples("classify")
    assert [e.request_id for e in examples] == [body["request_id"]]
    assert examples[0].teacher_provider == "replay"


async def test_errors_have_the_contract_shape(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()

    async def err(resp: Any, status: int, kind: str) -> dict[str, Any]:
        assert resp.status == status, await resp.text()
        body = await resp.json()
        assert set(body) == {"error"}
        assert body["error"]["type"] == kind
        assert body["error"]["message"]
        # Every error links to its entry in the errors reference (docs/reference/errors.md).
        assert body["error"]["docs"].endswith(f"/reference/errors/#gateway-{kind}")
        return dict(body["error"])

    await err(await client.post("/v1/tasks/classify", data=b"{not json"), 400, "bad_request")
    e = await err(await client.post("/v1/tasks/classify", json={"text": "x"}), 400, "bad_request")
    assert "input" in e["message"]
    e = await err(await client.post("/v1/tasks/nope", json={"input": {}}), 404, "unknown_task")
    assert e["details"]["tasks"] == ["classify"]
    e = await err(
        await client.post("/v1/tasks/classify", json={"input": {"text": 5}}), 422, "invalid_input"
    )
    assert e["details"][0]["path"] == "text"
    e = await err(
        await client.post("/v1/tasks/classify", json={"input": {"txt": "a"}}), 422, "invalid_input"
    )
    assert any("text" in d["message"] for d in e["details"])
    await err(await client.get("/v1/tasks/nope/state"), 404, "unknown_task")
    await err(await client.get("/no/such/route"), 404, "not_found")
    await err(await client.get("/v1/tasks/classify"), 405, "method_not_allowed")
    # Nothing of the failed requests was stored or paid.
    assert h.gw.store.request_counts("classify").requests == 0


async def test_body_limit_is_413(harness_factory: Any, tmp_path: Path) -> None:
    h = await harness_factory(
        make_config(tmp_path, gateway={"max_body_bytes": 200, "admin_token_env": "X"})
    )
    client = await h.serve()
    big = {"input": {"text": "a" * 500}}
    resp = await client.post("/v1/tasks/classify", json=big)
    assert resp.status == 413
    body = await resp.json()
    assert body["error"]["type"] == "too_large"
    assert body["error"]["details"]["max_body_bytes"] == 200

    async def chunks() -> Any:  # no Content-Length: aiohttp's own limit must hold
        for _ in range(10):
            yield b"x" * 100

    resp = await client.post("/v1/tasks/classify", data=chunks())
    assert resp.status == 413
    assert (await resp.json())["error"]["type"] == "too_large"


async def test_listing_state_health_metrics(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
    tasks = await (await client.get("/v1/tasks")).json()
    assert tasks == {
        "tasks": [
            {
                "name": "classify",
                "description": "Label a ticket by its first word",
                "phase": "cold_start",
            }
        ]
    }
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["task"] == "classify" and state["phase_number"] == 1
    assert state["teacher_calls"] == 1 and state["requests"] == 1
    assert state["examples"]["train"] + state["examples"]["heldout"] == 1
    assert state["spend"]["today"] > 0
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["ready"] is True
    metrics = await client.get("/metrics")
    text = await metrics.text()
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert 'apprentice_requests_total{route="remote_only",task="classify"} 1.0' in text
    assert 'apprentice_phase{task="classify"} 1.0' in text
    assert 'apprentice_budget_spend_usd{scope="classify",window="daily"}' in text
    assert "apprentice_teacher_cost_usd_total" in text


async def test_openapi_describes_every_route_and_task_schema(harness_factory: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    doc = await (await client.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    assert schemas["classify.input"]["properties"] == {"text": {"type": "string"}}
    assert schemas["classify.output"]["required"] == ["label"]
    routes = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    # The templated task route is documented once per task, with that task's schemas.
    assert ("POST", "/v1/tasks/{task}") in served
    assert served - {("POST", "/v1/tasks/{task}")} <= routes
    assert ("POST", "/v1/tasks/classify") in routes
    body = doc["paths"]["/v1/tasks/classify"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"]["properties"]["input"] == {
        "$ref": "#/components/schemas/classify.input"
    }


async def test_admin_needs_the_bearer_token(harness_factory: Any, admin_env: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}):
        resp = await client.get("/admin/tasks/classify/versions", headers=headers)
        assert resp.status == 401
        body = await resp.text()
        assert ADMIN_TOKEN not in body
        assert '"unauthorized"' in body
    resp = await client.get("/admin/tasks/classify/versions", headers=admin_env)
    assert resp.status == 200
    assert await resp.json() == {"versions": [], "active": None}


async def test_admin_pause_resume_and_dataset(harness_factory: Any, admin_env: Any) -> None:
    h = await harness_factory()
    client = await h.serve()
    for i in range(12):
        assert (
            await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        ).status == 200
    resp = await client.post("/admin/tasks/classify/pause", headers=admin_env)
    assert (await resp.json())["paused"] is True
    assert (await (await client.get("/v1/tasks/classify/state")).json())["paused"] is True
    assert h.gw.store.load_task_state("classify")["paused"] is True
    await client.post("/admin/tasks/classify/resume", headers=admin_env)
    assert (await (await client.get("/v1/tasks/classify/state")).json())["paused"] is False

    counts = h.gw.store.example_counts("classify")
    for split in ("train", "heldout"):
        for fmt in ("chat", "openai", "alpaca"):
            resp = await client.get(
                f"/admin/tasks/classify/dataset?split={split}&format={fmt}", headers=admin_env
            )
            assert resp.status == 200
            lines = (await resp.text()).splitlines()
            assert len(lines) == counts[split]
    resp = await client.get("/admin/tasks/classify/dataset?split=bogus", headers=admin_env)
    assert resp.status == 400


async def test_a_bug_is_a_json_500_with_the_traceback_in_the_log(
    harness_factory: Any, caplog: Any
) -> None:
    h = await harness_factory()
    client = await h.serve()

    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("simulated bug")

    h.gw.task_summaries = broken  # a bug stands in: nothing the caller did
    resp = await client.get("/v1/tasks")
    assert resp.status == 500
    assert (await resp.json())["error"]["type"] == "internal_error"
    assert "simulated bug" not in await resp.text()
    assert "simulated bug" in caplog.text
