"""Exports over HTTP and the CLI: DPO pairs from the comparisons the student lost, and
metadata columns. Examples come from real requests; the comparisons carry the student's
answer as the request pipeline stores it (``details["student_output"]``)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import pytest
import yaml
from gw_config import config_dict, make_config

from apprentice import cli, config, prompts
from apprentice.store import ComparisonRecord, RequestRecord, open_store

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def _compare(store: Any, rid: str, n: int, score: float, student: Any) -> None:
    """A comparison for request ``rid`` (recorded with a request row of its own)."""
    store.record_request(
        RequestRecord(
            id=f"cmp-{n}", task="classify", received_at=NOW, route="both", served_by="teacher"
        ),
        comparison=ComparisonRecord(
            task="classify",
            request_id=rid,
            at=NOW,
            score=score,
            details={"student_output": student},
            student_version="v1",
        ),
    )


async def _lines(client: Any, query: str, admin: dict[str, str]) -> list[dict[str, Any]]:
    resp = await client.get(f"/admin/tasks/classify/dataset?{query}", headers=admin)
    assert resp.status == 200, await resp.text()
    return [json.loads(line) for line in (await resp.text()).splitlines()]


async def test_dpo_pairs_and_metadata(
    harness_factory: Any,
    tmp_path: Path,
    admin_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(config_dict(tmp_path)))
    h = await harness_factory(config.load(path))
    client = await h.serve()
    rids = []
    for i in range(5):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        rids.append((await resp.json())["request_id"])
    teacher = [gw_rules.teacher_output(gw_rules.make_input(i)) for i in range(5)]
    store = h.gw.store
    _compare(store, rids[0], 0, 0.0, {"label": "wrong"})  # the one pair
    _compare(store, rids[1], 1, 0.0, teacher[1])  # scored a loss, same answer: no self-pair
    _compare(store, rids[2], 2, 1.0, {"label": "wrong"})  # agreed: no pair
    _compare(store, rids[3], 3, 0.0, None)  # invalid student answer: nothing to show
    _compare(store, "unknown-request", 4, 0.0, {"label": "x"})  # no example: no pair

    both = [
        *await _lines(client, "format=dpo&split=train&metadata=true", admin_env),
        *await _lines(client, "format=dpo&split=heldout&metadata=1", admin_env),
    ]
    assert len(both) == 1
    (pair,) = both
    cfg = h.gw.config.tasks[0]
    assert pair["prompt"] == prompts.build_messages(cfg, gw_rules.make_input(0))
    assert pair["chosen"] == [{"role": "assistant", "content": prompts.render_output(teacher[0])}]
    assert pair["rejected"] == [{"role": "assistant", "content": '{"label":"wrong"}'}]
    meta = pair["metadata"]
    assert meta["request_id"] == rids[0] and meta["provenance"] == "replay"
    assert meta["score"] == 0.0 and meta["student_version"] == "v1"

    for split in ("train", "heldout"):
        chat = await _lines(client, f"split={split}&metadata=true", admin_env)
        assert len(chat) == store.example_counts("classify")[split]
        assert all(row["metadata"]["split"] == split for row in chat)
        assert all(row["metadata"]["request_id"] in rids for row in chat)
        assert all(len(row["messages"]) == 3 for row in chat)
    plain = await _lines(client, "split=train", admin_env)
    assert all("metadata" not in row for row in plain)

    async def bad(query: str, words: str) -> None:
        resp = await client.get(f"/admin/tasks/classify/dataset?{query}", headers=admin_env)
        assert resp.status == 400
        assert words in (await resp.json())["error"]["message"]

    await bad("format=bogus", "'dpo'")
    await bad("format=dpo&split=bogus", "split must be train or heldout")
    await bad("metadata=maybe", "metadata must be true or false")

    argv = ["export", "-c", str(path), "--task", "classify", "--format", "dpo", "--metadata"]
    split = pair["metadata"]["split"]
    assert await asyncio.to_thread(cli.main, [*argv, "--split", split]) == 0
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == [pair]


async def test_dpo_pairs_from_live_comparisons(
    harness_factory: Any, tmp_path: Path, admin_env: dict[str, str]
) -> None:
    cfg = make_config(tmp_path)
    path = gw_fakes.write_adapter(tmp_path / "models" / "classify" / "v1", "last_word")
    with open_store(cfg.store.url) as store:
        gw_fakes.promote_v1(store, path)  # phase 2: every request goes to both
    h = await harness_factory(cfg)
    client = await h.serve()
    inputs = [gw_rules.make_input(i) for i in range(4)]
    for inp in inputs:
        assert (await client.post("/v1/tasks/classify", json={"input": inp})).status == 200
    stored = [c.details["student_output"] for c in h.gw.store.comparisons("classify")]
    assert stored == [{"label": i["text"].split()[-1]} for i in inputs]
    pairs = [
        *await _lines(client, "format=dpo&split=train", admin_env),
        *await _lines(client, "format=dpo&split=heldout", admin_env),
    ]
    lost = [i for i in inputs if i["text"].split()[0] != i["text"].split()[-1]]
    assert len(pairs) == len(lost) > 0
    for pair in pairs:
        chosen = json.loads(pair["chosen"][0]["content"])
        rejected = json.loads(pair["rejected"][0]["content"])
        assert chosen != rejected and rejected["label"] in {i["text"].split()[-1] for i in lost}
