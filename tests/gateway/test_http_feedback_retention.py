"""Request retention over HTTP: a serving gateway prunes request rows older than
``store.request_retention_days`` (at start, then periodically); feedback on a pruned
request is the 404 ``unknown_request`` naming the retention, while the request's
example and earlier feedback stay. Real replay teacher, real store (SQLite and
PostgreSQL), real HTTP on loopback; the pruner's clock is passed in, nothing sleeps."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gw_rules
from gw_config import make_config
from test_http_feedback import _post

from apprentice.gateway.retention import RequestPruner
from apprentice.store import RequestRecord, open_store


async def _ask(client: Any, i: int) -> str:
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["request_id"])


async def test_feedback_on_a_pruned_request_is_a_404_naming_the_retention(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    h = await harness_factory(make_config(tmp_path, store_url=store_url))
    client = await h.serve()
    old = await _ask(client, 1)
    status, body = await _post(client, {"request_id": old, "score": 0.5})
    assert status == 201, body
    await h.gw.flush()

    month_later = datetime.now(UTC) + timedelta(days=31)
    pruner = RequestPruner(h.gw.store, 30, clock=lambda: month_later, pause_s=0)
    assert await pruner.prune() >= 1
    assert h.gw.store.request_record(old) is None

    new = await _ask(client, 2)  # inside the window: feedback works as before
    status, body = await _post(client, {"request_id": new, "output": {"label": "refund"}})
    assert status == 201, body

    status, body = await _post(client, {"request_id": old, "output": {"label": "refund"}})
    error = body["error"]
    assert (status, error["type"]) == (404, "unknown_request"), body
    assert "30-day retention (store.request_retention_days)" in error["message"]
    assert error["details"] == {"request_id": old}
    # Only the request row went: its example and its earlier feedback stay.
    assert any(e.request_id == old for e in h.gw.store.examples("classify"))
    assert [f.request_id for f in h.gw.store.feedback("classify")] == [old, new]


def _aged(cfg: Any, ages: dict[str, float]) -> None:
    now = datetime.now(UTC)
    with open_store(cfg.store.url) as store:
        for rid, days in ages.items():
            store.record_request(
                RequestRecord(
                    id=rid,
                    task="classify",
                    received_at=now - timedelta(days=days),
                    route="remote_only",
                    served_by="teacher",
                )
            )


async def test_a_serving_gateway_prunes_old_request_rows_when_it_starts(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, store={"request_retention_days": 7})
    _aged(cfg, {"eight-days": 8, "six-days": 6})
    h = await harness_factory(cfg)
    await h.serve()
    assert h.gw.pruner is not None and h.gw.pruner.days == 7
    await asyncio.wait_for(h.gw.pruner.first_pass.wait(), 60)
    assert {r.id for r in h.gw.store.requests("classify")} == {"six-days"}


async def test_retention_zero_keeps_every_request_row(harness_factory: Any, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, store={"request_retention_days": 0})
    _aged(cfg, {"ten-years": 3650})
    h = await harness_factory(cfg)
    client = await h.serve()
    assert h.gw.pruner is None
    status, body = await _post(client, {"request_id": "nope", "score": 1.0})
    assert status == 404 and "retention" not in body["error"]["message"]
    assert [r.id for r in h.gw.store.requests("classify")] == ["ten-years"]
