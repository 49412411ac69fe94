"""Alerter against a real aiohttp webhook server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from apprentice.config import AlertsConfig
from apprentice.reporting import alerts
from apprentice.reporting.metrics import Metrics


@dataclass
class Hook:
    """A webhook that answers the scripted statuses in order, then 200."""

    url: str
    statuses: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    state = Hook(url="")

    async def handle(request: web.Request) -> web.Response:
        state.attempts += 1
        status = state.statuses.pop(0) if state.statuses else 200
        if status == 200:
            state.received.append(await request.json())
        return web.Response(status=status, text="ok" if status == 200 else "boom")

    app = web.Application()
    app.router.add_post("/hooks/secret-token-123", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("/hooks/secret-token-123"))
    yield state
    await server.close()


def make(hook: Hook, fmt: str = "generic", **kw: Any) -> alerts.Alerter:
    cfg = AlertsConfig(webhook_url=hook.url, format=fmt, max_retries=3)  # type: ignore[arg-type]
    return alerts.Alerter(cfg, backoff_s=0.01, **kw)


def alert(kind: str = "coaching", task: str = "classify_ticket") -> alerts.Alert:
    return alerts.Alert(kind=kind, task=task, message="confidence 0.66 under coaching_trigger 0.70")


async def test_generic_json_is_posted(hook: Hook) -> None:
    sender = make(hook)
    await sender.start()
    assert sender.emit(alert())
    await sender.drain()
    await sender.stop()
    assert len(hook.received) == 1
    body = hook.received[0]
    assert body["kind"] == "coaching"
    assert body["task"] == "classify_ticket"
    assert body["severity"] == "warning"
    assert "coaching_trigger" in body["message"]
    assert sender.sent == 1


async def test_slack_format_is_text(hook: Hook) -> None:
    sender = make(hook, fmt="slack")
    await sender.start()
    sender.emit(alert("emergency"))
    await sender.drain()
    await sender.stop()
    assert list(hook.received[0]) == ["text"]
    assert "emergency" in hook.received[0]["text"]
    assert "`classify_ticket`" in hook.received[0]["text"]


async def test_500_is_retried_then_delivered(hook: Hook) -> None:
    hook.statuses = [500, 503]
    sender = make(hook)
    await sender.start()
    sender.emit(alert("shift"))
    await sender.drain()
    await sender.stop()
    assert hook.attempts == 3
    assert [b["kind"] for b in hook.received] == ["shift"]
    assert sender.failed == 0


async def test_4xx_is_not_retried(hook: Hook) -> None:
    hook.statuses = [404]
    metrics = Metrics()
    sender = make(hook, metrics=metrics)
    await sender.start()
    sender.emit(alert())
    await sender.drain()
    await sender.stop()
    assert hook.attempts == 1
    assert sender.failed == 1
    assert metrics.value("apprentice_alerts_dropped_total", {"reason": "delivery_failed"}) == 1


async def test_retries_exhausted_counts_a_failure(hook: Hook) -> None:
    hook.statuses = [500, 500, 500, 500]
    sender = make(hook)
    await sender.start()
    sender.emit(alert())
    await sender.drain()
    await sender.stop()
    assert hook.attempts == 4  # one try + max_retries
    assert hook.received == []
    assert sender.failed == 1


async def test_duplicates_within_cooldown_are_suppressed(hook: Hook) -> None:
    now = [1000.0]
    metrics = Metrics()
    sender = make(hook, metrics=metrics, cooldown_s=60, clock=lambda: now[0])
    await sender.start()
    assert sender.emit(alert("coaching"))
    assert not sender.emit(alert("coaching"))  # same (task, kind)
    assert sender.emit(alert("coaching", task="other"))  # another task
    assert sender.emit(alert("drift"))  # another kind
    now[0] += 61
    assert sender.emit(alert("coaching"))  # cool-down over
    await sender.drain()
    await sender.stop()
    assert [(b["task"], b["kind"]) for b in hook.received] == [
        ("classify_ticket", "coaching"),
        ("other", "coaching"),
        ("classify_ticket", "drift"),
        ("classify_ticket", "coaching"),
    ]
    assert sender.suppressed == 1
    assert metrics.value("apprentice_alerts_total", {"kind": "coaching"}) == 3


async def test_full_queue_drops_oldest_and_emit_never_blocks(hook: Hook) -> None:
    # No worker running: emit must still return at once and keep only the newest.
    sender = make(hook, queue_size=2, cooldown_s=0)
    for kind in ("coaching", "drift", "shift", "emergency"):
        assert sender.emit(alert(kind))
    assert sender.dropped == 2
    await sender.start()
    await sender.drain()
    await sender.stop()
    assert [b["kind"] for b in hook.received] == ["shift", "emergency"]


async def test_url_never_in_repr_or_logs(hook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    hook.statuses = [400]
    sender = make(hook)
    assert "secret-token-123" not in repr(sender)
    await sender.start()
    sender.emit(alert())
    await sender.drain()
    await sender.stop()
    assert "secret-token-123" not in caplog.text
    assert "HTTP 400" in caplog.text


async def test_unreachable_webhook_does_not_kill_the_worker() -> None:
    cfg = AlertsConfig(webhook_url="http://127.0.0.1:9/nope", max_retries=1, timeout_s=2)
    sender = alerts.Alerter(cfg, backoff_s=0.01, cooldown_s=0)
    await sender.start()
    sender.emit(alert())
    sender.emit(alert("drift"))
    await asyncio.wait_for(sender.drain(), 10)
    await sender.stop()
    assert sender.failed == 2


def test_without_webhook_alerts_are_counted() -> None:
    metrics = Metrics()
    sender = alerts.Alerter(AlertsConfig(), metrics=metrics)
    assert sender.emit(alert("budget_100"))
    assert metrics.value("apprentice_alerts_total", {"kind": "budget_100"}) == 1


def test_budget_alerts_at_80_and_100_percent() -> None:
    got = alerts.budget_alerts(
        "classify_ticket",
        spend={"daily": 1.7, "weekly": 10.0, "monthly": 5.0},
        caps={"daily": 2.0, "weekly": 10.0, "monthly": 100.0},
    )
    assert [(a.kind, a.details["window"]) for a in got] == [
        ("budget_80", "daily"),
        ("budget_100", "weekly"),
    ]
    assert got[1].severity == "critical"
    assert alerts.budget_alerts("global", spend={"daily": 1}, caps={"daily": None}) == []
    assert alerts.budget_alerts("global", spend={"daily": 9}, caps={"daily": 10})[0].task is None


def test_rejected_version_alert() -> None:
    a = alerts.rejected_version("t", "v3", "scored 0.71 < current 0.93", 0.71)
    assert a.kind == "version_rejected"
    assert "v3" in a.message and "0.710" in a.message
    assert alerts.format_payload(a, "generic")["details"]["version"] == "v3"
