"""Feedback end to end over HTTP (``POST /v1/feedback``): a correction becomes the input's
``human`` example, outranking the teacher's label in the training selection and in the
DPO export; on a student answer it is a comparison and an engine observation; bad bodies
get the 4xx naming the problem. Real replay teacher, real store, real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from gw_config import config_dict, make_config
from test_http_models import two_tasks

from apprentice import cli, config, prompts
from apprentice.engine import lifecycle
from apprentice.gateway.http import build_app
from apprentice.reporting import html, report
from apprentice.store import assign_split, input_hash, open_store


def _split(inp: dict[str, Any]) -> str:
    return assign_split(input_hash(inp), 0.2)  # the harness's heldout_fraction


def _inputs(split: str, start: int = 0) -> dict[str, Any]:
    """The first test input (from ``start``) of ``split`` whose first and last words differ."""
    for i in range(start, start + 400):
        inp = gw_rules.make_input(i)
        words = inp["text"].split()
        if _split(inp) == split and words[0] != words[-1]:
            return inp
    raise AssertionError(f"no {split} input")


async def _post(client: Any, body: Any, headers: Any = None) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/feedback", json=body, headers=headers)
    return resp.status, dict(await resp.json())


def _reply(output: dict[str, Any]) -> dict[str, str]:
    return {"role": "assistant", "content": prompts.render_output(output)}


async def test_a_correction_outranks_the_teacher_in_training_data_and_dpo(
    harness_factory: Any,
    tmp_path: Path,
    admin_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    cfg = config.load(path)
    with open_store(cfg.store.url) as store:  # phase 2: teacher serves, student compared
        gw_fakes.promote_v1(store, gw_fakes.write_adapter(tmp_path / "m" / "v1", "last_word"))
    h = await harness_factory(cfg)
    client = await h.serve()
    train, held = _inputs("train"), _inputs("heldout")
    rids = {}
    for inp in (train, held):
        resp = await client.post("/v1/tasks/classify", json={"input": inp})
        rids[_split(inp)] = (await resp.json())["request_id"]
    human = {"label": "refund"}
    for split in ("train", "heldout"):
        status, body = await _post(client, {"request_id": rids[split], "output": human,
                                            "comment": "<b>wrong</b>"})  # fmt: skip
        assert status == 201, body
        assert body["kind"] == "correction" and body["example"] == {
            "provenance": "human", "split": split}  # fmt: skip
        assert body["agreement"] == 0.0  # the teacher's answer vs the human's (exact match)
    store = h.gw.store
    examples = {e.request_id: e for e in store.examples("classify")}
    assert examples[rids["train"]].output == human
    assert examples[rids["train"]].teacher_provider == "human"
    assert examples[rids["heldout"]].split == "heldout"  # the firewall: still held out
    kept = store.feedback("classify")
    assert [f.replaced for f in kept] == [gw_rules.teacher_output(i) for i in (train, held)]

    resp = await client.get("/admin/tasks/classify/training/dataset", headers=admin_env)
    rows = [json.loads(x) for x in (await resp.text()).splitlines()]
    by_user = {r["messages"][1]["content"]: r["messages"][2] for r in rows}
    cfg_task = h.gw.config.tasks[0]
    user = prompts.build_messages(cfg_task, train)[1]["content"]
    assert by_user[user] == _reply(human)  # the human's label, not the teacher's
    held_user = prompts.build_messages(cfg_task, held)[1]["content"]
    assert held_user not in by_user  # a held-out input never trains

    resp = await client.get("/admin/tasks/classify/dataset?format=dpo&split=train",
                            headers=admin_env)  # fmt: skip
    pairs = [json.loads(x) for x in (await resp.text()).splitlines()]
    mine = [p for p in pairs if p["prompt"][1]["content"] == user]
    assert len(mine) == 1
    assert mine[0]["chosen"] == [_reply(human)]
    assert mine[0]["rejected"] == [_reply({"label": train["text"].split()[-1]})]

    shown = report.build_report(store, h.gw.config)
    summary = shown.tasks[0].to_json()["feedback"]
    assert (summary["count"], summary["corrections"], summary["mean_agreement"]) == (2, 2, 0.0)
    page = html.render_html(shown)
    assert "<h3>Feedback</h3>" in page and "&lt;b&gt;wrong&lt;/b&gt;" in page
    assert "<b>wrong</b>" not in page  # a person's comment is text, never markup

    argv = ["feedback", "-c", str(path), "--task", "classify", "--json"]
    assert await asyncio.to_thread(cli.main, argv) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(f["request_id"], f["output"], f["comment"]) for f in listed] == [
        (rids["train"], human, "<b>wrong</b>"), (rids["heldout"], human, "<b>wrong</b>")]  # fmt: skip
    assert await asyncio.to_thread(cli.main, argv[:-1]) == 0
    assert "2 feedback (2 corrections, 0 scores" in capsys.readouterr().out


def _steady(cfg: config.ApprenticeConfig, tmp_path: Path, rule: str) -> None:
    params = lifecycle.TaskParams.from_config(cfg, "classify")
    state = lifecycle.version_promoted(lifecycle.initial(params), "v1")
    for i in range(params.detectors.window_size):
        state, _ = lifecycle.observe(state, 1.0, index=i)
    with open_store(cfg.store.url) as store:
        gw_fakes.promote_v1(store, gw_fakes.write_adapter(tmp_path / "m" / "v1", rule))
        store.save_task_state("classify", state.to_dict())


async def _student_answers(client: Any, h: Any, n: int) -> list[tuple[dict[str, Any], str]]:
    """``n`` (input, request id) pairs the student served alone (local-only)."""
    found = []
    for i in range(300):
        inp = gw_rules.make_input(i)
        resp = await client.post("/v1/tasks/classify", json={"input": inp})
        await h.gw.flush()
        last = h.gw.store.requests("classify")[-1]
        if last.served_by == "student" and last.route == "local_only":
            found.append((inp, (await resp.json())["request_id"]))
            if len(found) == n:
                return found
    raise AssertionError("the student never served alone")


async def test_feedback_on_student_answers_counts_in_agreement_and_confidence(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    cfg = make_config(tmp_path)
    _steady(cfg, tmp_path, "last_word")
    h = await harness_factory(cfg)
    client = await h.serve()
    (inp, rid), (scored_input, scored) = await _student_answers(client, h, 2)
    store = h.gw.store
    before = len(store.comparisons("classify"))
    engine = h.gw.tasks["classify"].engine
    observed = engine.state.comparisons
    served = {"label": inp["text"].split()[-1]}
    status, body = await _post(client, {"request_id": rid, "output": served})
    assert status == 201 and body["agreement"] == 1.0  # the human agrees with the student
    status, body = await _post(client, {"request_id": scored, "score": 0.25, "comment": "meh"})
    assert status == 201 and body["kind"] == "score" and body["example"] is None
    found = store.comparisons("classify")[before:]
    assert [(c.request_id, c.score) for c in found] == [(rid, 1.0), (scored, 0.25)]
    assert all(c.details["source"] == "feedback" for c in found)
    assert found[0].details["student_output"] == served
    (example,) = [e for e in store.examples("classify") if e.request_id == rid]
    assert example.teacher_provider == "human" and example.input == inp
    assert engine.state.comparisons == observed + 2  # two observations for the engine
    await h.gw.flush()
    assert store.load_task_state("classify")["confidence"]["comparisons"] == observed + 2
    summary = store.feedback_summary("classify")
    assert (summary.count, summary.corrections, summary.scores) == (2, 1, 1)
    assert summary.mean_score == 0.25 and summary.comments[0][1] == "meh"

    # Another app (no state of the first's) corrects a local-only answer: the request's
    # row holds its input and answer (real second gateways: test_http_feedback_replicas.py).
    other = TestClient(TestServer(build_app(h.gw)))
    await other.start_server()
    try:
        agreed = {"label": scored_input["text"].split()[-1]}  # what the student answered
        status, body = await _post(other, {"request_id": scored, "output": agreed})
        assert (status, body["kind"], body["agreement"]) == (201, "correction", 1.0), body
        status, _ = await _post(other, {"request_id": scored, "score": 1.0})
        assert status == 201  # a score needs no input
    finally:
        await other.close()


async def test_bad_feedback_gets_the_right_4xx(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    h = await harness_factory(two_tasks(tmp_path, require_api_keys=True))
    client = await h.serve()
    keys = {}
    for task in ("classify", "triage"):
        resp = await client.post("/admin/keys", json={"tasks": [task]}, headers=admin_env)
        keys[task] = {"Authorization": f"Bearer {(await resp.json())['key']}"}
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(3)},
                             headers=keys["classify"])  # fmt: skip
    rid = (await resp.json())["request_id"]

    async def bad(body: Any, status: int, kind: str, headers: Any = None) -> dict[str, Any]:
        got, answer = await _post(client, body, headers or keys["classify"])
        assert (got, answer["error"]["type"]) == (status, kind), answer
        return dict(answer["error"])

    await bad({"request_id": rid, "score": 1.0}, 401, "api_key_missing", {"X": "y"})
    e = await bad({"request_id": "nope-123", "score": 1.0}, 404, "unknown_request")
    assert e["details"] == {"request_id": "nope-123"} and "nope-123" in e["message"]
    e = await bad({"request_id": rid, "score": 1.0, "output": {"label": "x"}}, 400,
                  "bad_request")  # fmt: skip
    assert "output" in e["message"] and "score" in e["message"]
    e = await bad({"request_id": rid}, 400, "bad_request")
    assert "exactly one of output" in e["message"]
    e = await bad({"request_id": rid, "score": 1.5}, 400, "bad_request")
    assert e["details"][0]["path"] == "score"
    e = await bad({"request_id": rid, "score": 0.5, "comment": "x" * 2001}, 400, "bad_request")
    assert e["details"][0]["path"] == "comment"
    e = await bad({"score": 0.5}, 400, "bad_request")
    assert e["details"][0]["path"] == "request_id"
    e = await bad({"request_id": rid, "output": {"label": 3}}, 422, "invalid_correction")
    assert e["details"][0]["path"] == "label"
    e = await bad({"request_id": rid, "score": 1.0}, 403, "api_key_wrong_task", keys["triage"])
    assert e["details"]["task"] == "classify"
    assert h.gw.store.feedback("classify") == []  # nothing bad was kept
    status, _ = await _post(client, {"request_id": rid, "score": 1.0}, keys["classify"])
    assert status == 201
    chat = {"model": "classify", "messages": [{"role": "user", "content": json.dumps(
        gw_rules.make_input(4))}]}  # fmt: skip
    resp = await client.post("/v1/chat/completions", json=chat, headers=keys["classify"])
    completion = await resp.json()
    status, body = await _post(client, {"request_id": completion["id"], "output": {"label": "x"}},
                               keys["classify"])  # fmt: skip
    assert status == 201 and body["request_id"] == completion["id"].removeprefix("chatcmpl-")
    assert body["kind"] == "correction"  # the chat answer's input is on its row
