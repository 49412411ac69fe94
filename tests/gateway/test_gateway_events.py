"""Failures that speak: the events table, failed training, budget caps, restarts (issue 10).

A real gateway (real SQLite store, training runs as subprocesses of the
orchestrator) driven over HTTP; the history is read back with ``apprentice
events`` and ``apprentice status``, as an operator would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gw_rules
import yaml
from gw_config import config_dict, trainer

from apprentice import cli, config


async def _send(client: Any, h: Any, start: int, n: int) -> None:
    for i in range(start, start + n):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        assert resp.status in (200, 429), await resp.text()
        await h.app.wait_for_training_idle("classify")


def _config(tmp_path: Path, **over: Any) -> tuple[config.ApprenticeConfig, Path]:
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path, **over)))
    return config.load(path), path


def _cli(capsys: Any, *args: str) -> Any:
    code = cli.main(list(args))
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out) if "--json" in args else out


async def test_the_lifecycle_leaves_its_history_in_the_events_table(
    harness_factory: Any, tmp_path: Path, capsys: Any
) -> None:
    cfg, path = _config(tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    await _send(client, h, 0, 45)
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["phase"] == "steady_state"
    await h.gw.flush()
    events = _cli(capsys, "events", "-c", str(path), "--task", "classify", "--json")
    kinds = [e["kind"] for e in events]
    for kind in ("training_started", "training_finished", "promoted", "phase"):
        assert kind in kinds, kinds
    assert kinds.index("training_started") < kinds.index("training_finished")
    phases = [(e["data"]["before"], e["data"]["after"]) for e in events if e["kind"] == "phase"]
    assert phases == [("cold_start", "reinforcement"), ("reinforcement", "steady_state")]
    assert state["last_training"]["ok"] is True
    text = _cli(capsys, "events", "-c", str(path))
    assert "version v1 promoted" in text and "phase reinforcement -> steady_state" in text
    only = _cli(capsys, "events", "-c", str(path), "--kind", "promoted", "--json")
    assert [e["data"]["version"] for e in only] == ["v1"]


async def test_a_failed_run_alerts_and_status_says_why_and_when_it_retries(
    harness_factory: Any, tmp_path: Path, capsys: Any
) -> None:
    cfg, path = _config(tmp_path)
    h = await harness_factory(cfg, trainer_command=trainer("first_word", "--fail"))
    seen: list[Any] = []
    h.gw.alerts.listen(seen.append)
    client = await h.serve()
    await _send(client, h, 0, 20)
    await h.gw.flush()
    state = await (await client.get("/v1/tasks/classify/state")).json()
    failed = state["last_training"]
    assert failed["ok"] is False
    assert "trainer exited with 3" in failed["reason"] and "out of memory" in failed["reason"]
    assert failed["next_retry"] == "after 40 more teacher examples"  # a whole new batch
    alert = next(a for a in seen if a.kind == "training_failed")
    assert "out of memory" in alert.message and "after 40 more" in alert.message
    # The CLI reads the same from the store, with no gateway involved.
    status = _cli(capsys, "status", "-c", str(path), "--json")["tasks"]["classify"]
    assert status["last_training"] == failed
    table = _cli(capsys, "status", "-c", str(path))
    assert "TRAINING FAILED" in table and "next retry after 40 more teacher examples" in table
    kinds = [e["kind"] for e in _cli(capsys, "events", "-c", str(path), "--json")]
    assert "training_failed" in kinds


async def test_a_spent_budget_shows_which_cap_and_when_it_resets(
    harness_factory: Any, tmp_path: Path, capsys: Any
) -> None:
    cfg, path = _config(tmp_path, budget={"daily": 0.001, "timezone": "UTC"})
    h = await harness_factory(cfg)
    seen: list[Any] = []
    h.gw.alerts.listen(seen.append)
    client = await h.serve()
    await _send(client, h, 0, 10)  # cold start: no student, so requests get 429 once spent
    refused = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(99)})
    assert refused.status == 429
    await h.gw.flush()
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["budget_exhausted"] is True
    cap = state["budget_cap"]
    assert cap["window"] == "daily" and cap["cap"] == 0.001 and cap["scope"] == "global"
    assert cap["resets_at"].endswith("T00:00:00+00:00")
    status = _cli(capsys, "status", "-c", str(path), "--json")["tasks"]["classify"]
    assert status["budget_exhausted"] is True
    assert status["budget_cap"]["window"] == "daily"
    assert status["budget_cap"]["resets_at"] == cap["resets_at"]
    table = _cli(capsys, "status", "-c", str(path))
    assert "BUDGET EXHAUSTED (global daily cap, resets" in table
    # The alert says how much of which cap, not "0.00 of 0.00".
    refusal = next(a for a in seen if a.kind == "budget_100" and "refused" in a.message)
    assert "global daily budget cap reached for classify" in refusal.message
    assert "of 0.0010 USD spent, resets" in refusal.message
    kinds = [e["kind"] for e in _cli(capsys, "events", "-c", str(path), "--json")]
    assert "budget_100" in kinds


async def test_a_run_killed_with_its_gateway_restarts_with_the_gateway(
    harness_factory: Any, tmp_path: Path, capsys: Any
) -> None:
    cfg, path = _config(tmp_path)
    h = await harness_factory(cfg)
    client = await h.serve()
    await _send(client, h, 0, 19)
    await h.gw.flush()
    # The gateway dies with a run in progress: the saved state says so.
    saved = h.gw.store.load_task_state("classify")
    h.gw.store.save_task_state(
        "classify", {**saved, "training_in_progress": True, "trained_examples": saved["examples"]}
    )
    await h.close()
    again = await harness_factory(cfg)
    await again.app.wait_for_training_idle("classify")
    await again.gw.flush()
    assert [v.version for v in again.gw.store.versions("classify")] == ["v1"]
    kinds = [e["kind"] for e in _cli(capsys, "events", "-c", str(path), "--json")]
    # 19 examples: only the resumed run can have made v1 (cold start trains at 20).
    assert kinds[:2] == ["training_interrupted", "training_started"]
    assert "training_finished" in kinds and "promoted" in kinds


async def test_a_deterministic_request_id_source_makes_the_same_decisions(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg, _ = _config(tmp_path)
    h = await harness_factory(cfg)
    ids = (f"run-{i}" for i in range(1000))
    h.gw.new_request_id = ids.__next__
    client = await h.serve()
    await _send(client, h, 0, 3)
    await h.gw.flush()
    assert [r.id for r in h.gw.store.requests("classify")] == ["run-0", "run-1", "run-2"]
