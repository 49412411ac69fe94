"""The lifecycle through the HTTP API: phase 1 -> 2 -> 3, training runs, versions.

Training runs are real subprocesses of the orchestrator (``gw_trainer.py`` stands in
for ``python -m apprentice.training.run`` with the same spec and outputs); held-out
validation scores a private student instance with the task's real evaluator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gw_rules
from gw_config import make_config, trainer


async def _send(client: Any, h: Any, start: int, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(start, start + n):
        inp = gw_rules.make_input(i)
        resp = await client.post("/v1/tasks/classify", json={"input": inp})
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["output"] == gw_rules.teacher_output(inp)
        out.append(body)
        await h.app.wait_for_training_idle("classify")
    return out


async def test_phase_1_to_2_to_3_with_training_and_promotion(
    harness_factory: Any, admin_env: Any
) -> None:
    h = await harness_factory()
    client = await h.serve()
    await _send(client, h, 0, 20)  # phase1_to_phase2 = 20 examples -> first run
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["phase"] == "reinforcement", state
    assert state["active_version"] == "v1"
    versions = await (await client.get("/admin/tasks/classify/versions", headers=admin_env)).json()
    assert versions["active"] == "v1"
    v1 = versions["versions"][0]
    assert v1["state"] == "promoted" and v1["heldout_score"] == 1.0
    meta = json.loads((Path(v1["path"]) / "metadata.json").read_text())
    assert meta["examples_used"] == state["examples"]["train"]
    assert meta["data_hash"].startswith("sha256:")
    assert h.students["classify"].active_version() == "v1"

    # Phase 2: every request compared; graduation on the Wilson lower bound.
    await _send(client, h, 20, 20)
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["phase"] == "steady_state", state
    assert state["confidence_lower_bound"] >= 0.8
    assert state["comparisons"] >= 10

    # Phase 3: the student serves most requests; the answers stay the teacher's.
    calls_before = state["teacher_calls"]
    await _send(client, h, 40, 40)
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["teacher_calls"] - calls_before < 30
    assert state["student_answers"] > 0
    assert state["estimated_savings"] > 0
    await h.gw.flush()
    served = h.gw.store.requests("classify")
    assert {r.route for r in served[-40:]} >= {"local_only"}
    # Every teacher answer paid for became an example (or collapsed into a duplicate).
    paid = [r for r in served if r.cost > 0]
    assert len(h.gw.store.spend_entries("classify")) == len(paid)


async def _until_version(client: Any, h: Any, version: str, start: int = 20) -> int:
    """Send requests until ``version`` exists (bounded); returns the next input index."""
    i = start
    while i < 500 and not any(v.version == version for v in h.gw.store.versions("classify")):
        await _send(client, h, i, 1)
        i += 1
    return i


async def test_worse_version_is_rejected_and_never_served(
    harness_factory: Any, admin_env: Any, tmp_path: Path
) -> None:
    # Run 1 learns the right rule; run 2 learns a worse one.
    cfg = make_config(tmp_path, local={"fine_tune_batch_size": 10})
    h = await harness_factory(cfg, rule="seq:first_word,last_word")
    client = await h.serve()
    await _send(client, h, 0, 20)
    assert h.students["classify"].active_version() == "v1"
    await _until_version(client, h, "v2")
    versions = await (await client.get("/admin/tasks/classify/versions", headers=admin_env)).json()
    by = {v["version"]: v for v in versions["versions"]}
    assert by["v2"]["state"] == "rejected", by
    assert "below the threshold" in by["v2"]["reason"] or "loses to" in by["v2"]["reason"]
    assert versions["active"] == "v1"
    serving = h.students["classify"]
    assert "v2" not in serving.loaded  # never loaded into the serving student
    resp = await client.post("/admin/tasks/classify/versions/v2/promote", headers=admin_env)
    assert resp.status == 409
    assert (await resp.json())["error"]["type"] == "conflict"
    assert serving.active_version() == "v1"


async def test_a_version_that_passes_but_loses_to_current_is_rejected(
    harness_factory: Any, admin_env: Any, tmp_path: Path
) -> None:
    # A low validation threshold: only "does not lose to the current version" can reject.
    cfg = make_config(tmp_path, local={"fine_tune_batch_size": 10})
    h = await harness_factory(cfg, rule="seq:first_word,constant", validation_threshold=0.0)
    client = await h.serve()
    await _send(client, h, 0, 20)
    await _until_version(client, h, "v2")
    v2 = h.gw.store.version("classify", "v2")
    assert v2.state == "rejected"
    assert "loses to the active v1" in v2.reason
    assert h.students["classify"].active_version() == "v1"


async def test_failed_training_leaves_phase_and_is_counted(
    harness_factory: Any, tmp_path: Path
) -> None:
    h = await harness_factory(trainer_command=trainer("first_word", "--fail"))
    client = await h.serve()
    await _send(client, h, 0, 20)
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["phase"] == "cold_start"
    assert state["training_in_progress"] is False
    assert h.gw.store.versions("classify") == []
    assert (
        h.gw.metrics.value(
            "apprentice_training_runs_total", {"task": "classify", "result": "failed"}
        )
        == 1.0
    )
    log = (tmp_path / "models" / "classify" / ".runs" / "v1" / "train.log").read_text()
    assert "out of memory" in log


async def test_operator_mode_register_validate_promote_rollback(
    harness_factory: Any, admin_env: Any, tmp_path: Path
) -> None:
    import gw_fakes

    cfg = make_config(
        tmp_path, gateway={"orchestrator": "operator", "admin_token_env": "GW_TEST_ADMIN_TOKEN"}
    )
    h = await harness_factory(cfg)
    client = await h.serve()
    await _send(client, h, 0, 25)
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["training_due"] is True and state["phase"] == "cold_start"
    assert h.gw.store.versions("classify") == []  # the gateway never trains in operator mode

    base = "/admin/tasks/classify"
    assert (await client.post(f"{base}/training/started", headers=admin_env)).status == 200
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["training_due"] is False
    good = gw_fakes.write_adapter(tmp_path / "shared" / "classify" / "v1", "first_word")
    resp = await client.post(
        f"{base}/versions", headers=admin_env, json={"path": str(good), "metrics": {"loss": 0.1}}
    )
    assert resp.status == 201
    assert (await resp.json())["state"] == "candidate"
    again = await client.post(
        f"{base}/versions", headers=admin_env, json={"version": "v1", "path": str(good)}
    )
    assert again.status == 201 and (await again.json())["version"] == "v1"  # idempotent
    clash = await client.post(
        f"{base}/versions", headers=admin_env, json={"version": "v1", "path": str(tmp_path)}
    )
    assert clash.status == 409
    resp = await client.post(f"{base}/training/finished", headers=admin_env, json={"ok": True})
    assert resp.status == 200
    # Promote before validation is refused.
    assert (await client.post(f"{base}/versions/v1/promote", headers=admin_env)).status == 409
    result = await (await client.post(f"{base}/versions/v1/validate", headers=admin_env)).json()
    assert result == {"version": "v1", "heldout_score": 1.0, "passed": True, "reason": None}
    assert await (await client.post(f"{base}/versions/v1/promote", headers=admin_env)).json() == {
        "active": "v1"
    }
    assert h.students["classify"].active_version() == "v1"

    v2 = gw_fakes.write_adapter(tmp_path / "shared" / "classify" / "v2", "first_word")
    await client.post(
        f"{base}/versions", headers=admin_env, json={"path": str(v2), "version": "v2"}
    )
    await client.post(f"{base}/versions/v2/validate", headers=admin_env)
    assert (await (await client.post(f"{base}/versions/v2/promote", headers=admin_env)).json())[
        "active"
    ] == "v2"
    resp = await client.post(f"{base}/rollback", headers=admin_env)
    assert await resp.json() == {"active": "v1"}
    assert h.students["classify"].active_version() == "v1"
    resp = await client.post(f"{base}/rollback", headers=admin_env)
    assert resp.status == 409  # nothing before v1
    resp = await client.post(f"{base}/versions/v9/validate", headers=admin_env)
    assert resp.status == 404
