"""Corrections find what was asked and answered in the store, not in a gateway's memory:
over HTTP, a student-only answer (task API and chat API) and an answer-cache hit are
corrected from a second gateway on the same store while the first still runs, and after
the first is gone (a restart), on SQLite and PostgreSQL. A store from before the
migration: an old teacher answer is still corrected from its example; an old student
answer and a failed request are the 409 saying why, and a score is taken. Real replay
teacher, real store, real HTTP on loopback."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gw_rules
import pytest
from gw_config import make_config
from test_http_feedback import _post, _steady, _student_answers

from apprentice.store import ExampleRecord, assign_split, input_hash, open_store, schema
from apprentice.store.sql import SqlStore


async def _student_chat(client: Any, h: Any) -> tuple[dict[str, Any], str]:
    """A chat completion the student served alone: (its task input, its completion id)."""
    for i in range(300, 600):
        inp = gw_rules.make_input(i)
        chat = {"model": "classify", "messages": [{"role": "user", "content": json.dumps(inp)}]}
        resp = await client.post("/v1/chat/completions", json=chat)
        await h.gw.flush()
        last = h.gw.store.requests("classify")[-1]
        if last.served_by == "student" and last.route == "local_only":
            return inp, str((await resp.json())["id"])
    raise AssertionError("the student never served a chat completion alone")


def _human_example(h: Any, rid: str) -> ExampleRecord:
    (found,) = [e for e in h.gw.store.examples("classify") if e.request_id == rid]
    assert found.teacher_provider == "human"
    return found


async def test_a_student_answer_is_corrected_from_another_gateway_and_after_a_restart(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    cfg = make_config(tmp_path, store_url=store_url, task={"cache": {"enabled": True}})
    _steady(cfg, tmp_path, "last_word")
    first = await harness_factory(cfg)
    client = await first.serve()
    (a_input, a_rid), (b_input, b_rid) = await _student_answers(client, first, 2)
    # The repeat comes at once: a sampled comparison in between may move the phase, which
    # empties the cache (by design), and the repeat would then be a miss.
    resp = await client.post("/v1/tasks/classify", json={"input": b_input})  # a cache hit
    hit_rid = (await resp.json())["request_id"]
    await first.gw.flush()
    hit = first.gw.store.request_record(hit_rid)
    assert hit is not None and hit.served_by == "cache"
    chat_input, chat_id = await _student_chat(client, first)

    second = await harness_factory(cfg)  # another gateway on the same store, first still up
    other = await second.serve()
    human = {"label": "refund"}
    for rid in (a_rid, chat_id):
        status, body = await _post(other, {"request_id": rid, "output": human})
        assert (status, body["kind"], body["agreement"]) == (201, "correction", 0.0), body
    assert _human_example(second, a_rid).input == a_input
    assert _human_example(second, chat_id.removeprefix("chatcmpl-")).input == chat_input
    compared = {c.request_id: c for c in second.gw.store.comparisons("classify")}
    served = {"label": a_input["text"].split()[-1]}  # what the student answered
    assert compared[a_rid].details["student_output"] == served  # DPO's rejected

    await first.close()  # the gateway that answered is gone
    await second.close()
    restarted = await harness_factory(cfg)
    again = await restarted.serve()
    for rid in (b_rid, hit_rid):
        fixed = {"label": f"fixed-{rid}"}
        status, body = await _post(again, {"request_id": rid, "output": fixed})
        assert (status, body["kind"]) == (201, "correction"), body
        (example,) = [e for e in restarted.gw.store.examples("classify") if e.output == fixed]
        assert example.input == b_input  # the cache hit was asked the same input


def _legacy_store(url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A store as the version before migration 10 wrote it, with three old requests (a
    student answer, a teacher answer and its example, a failure); the teacher's input."""
    before = [m for m in schema.MIGRATIONS if m[0] < 10]
    monkeypatch.setattr(schema, "MIGRATIONS", before)
    monkeypatch.setattr(schema, "LATEST_VERSION", before[-1][0])
    inp = gw_rules.make_input(7)
    digest = input_hash(inp)
    with open_store(url) as old:
        assert isinstance(old, SqlStore) and old.schema_version() == 9
        with old._write() as tx:
            for rid, route, served_by, error in [
                ("old-student", "local_only", "student", None),
                ("old-teacher", "both", "teacher", None),
                ("old-failed", "remote_only", None, "TeacherTimeout"),
            ]:
                tx.execute(
                    "INSERT INTO requests (id, task, received_at, route, served_by, latency_ms,"
                    " error, cost) VALUES (?, 'classify', 1741608000000000, ?, ?, 1.0, ?, 0)",
                    (rid, route, served_by, error),
                )
        teacher = ExampleRecord(
            task="classify", input=inp, output=gw_rules.teacher_output(inp), input_hash=digest,
            split=assign_split(digest, 0.2), teacher_provider="replay", teacher_model=None,
            created_at=datetime(2025, 3, 10, tzinfo=UTC), request_id="old-teacher",
        )  # fmt: skip
        assert old.add_examples([teacher]) == [True]
    monkeypatch.undo()
    return inp


async def test_requests_recorded_before_the_migration(
    harness_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The old rows are dated 2025: retention off keeps them (a serving gateway prunes request
    # rows older than store.request_retention_days at start).
    cfg = make_config(tmp_path, store={"request_retention_days": 0})
    teacher_input = _legacy_store(cfg.store.url, monkeypatch)
    h = await harness_factory(cfg)  # opens the store: migrated to the latest version
    assert h.gw.store.schema_version() == schema.LATEST_VERSION
    client = await h.serve()
    human = {"label": "refund"}
    status, body = await _post(client, {"request_id": "old-teacher", "output": human})
    assert (status, body["kind"]) == (201, "correction"), body  # from its example, as before
    assert h.gw.store.feedback("classify")[0].replaced == gw_rules.teacher_output(teacher_input)
    for rid, why in [("old-student", "recorded before the store kept"),
                     ("old-failed", "got no answer (TeacherTimeout)")]:  # fmt: skip
        status, body = await _post(client, {"request_id": rid, "output": human})
        assert (status, body["error"]["type"]) == (409, "feedback_unavailable"), body
        assert why in body["error"]["message"] and "send a score" in body["error"]["message"]
        assert body["error"]["details"] == {"request_id": rid}
        status, body = await _post(client, {"request_id": rid, "score": 0.5})
        assert (status, body["kind"]) == (201, "score"), body
