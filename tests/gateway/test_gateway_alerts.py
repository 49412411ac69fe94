"""Alerts reach the webhook, and a stuck webhook never holds a request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gw_rules
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from gw_config import make_config


class Webhook:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.arrived.set()
        await self.gate.wait()  # stuck until the test lets go
        return web.Response(text="ok")


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Webhook, str]]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield hook, f"http://127.0.0.1:{server.port}/hook"
    hook.gate.set()
    await server.close()


async def test_budget_alert_is_posted_and_a_stuck_webhook_blocks_nothing(
    harness_factory: Any, tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    hook, url = webhook
    cfg = make_config(
        tmp_path, task={"budget": {"daily": 0.001}}, alerts={"webhook_url": url, "format": "slack"}
    )
    h = await harness_factory(cfg)
    client = await h.serve()
    statuses = []
    for i in range(12):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        statuses.append(resp.status)
    assert 200 in statuses and statuses[-1] == 429
    await asyncio.wait_for(hook.arrived.wait(), 10)
    # The webhook is still holding its first POST, yet every request above was answered.
    assert not hook.gate.is_set()
    resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(99)})
    assert resp.status == 429
    hook.gate.set()
    await h.gw.alerts.drain()
    texts = [r["text"] for r in hook.received]
    assert any("budget_80" in t or "budget_100" in t for t in texts), texts
    assert all(url not in t for t in texts)
