"""Alerts: webhook POSTs that never slow a request down.

:meth:`Alerter.emit` is synchronous and O(1): it drops duplicates still in their
cool-down, puts the alert on a bounded queue (dropping the *oldest* queued alert
when full, counted, because the newest state is the one worth hearing about)
and returns. One background asyncio worker delivers the queue, retrying
transport errors and 5xx/429 answers with exponential backoff; a 4xx other than
429 is a misconfigured webhook and is not retried.

Formats: ``generic`` posts the alert as JSON; ``slack`` posts ``{"text": ...}``,
which Slack, Mattermost, Rocket.Chat and Teams' Slack-compatible hooks accept.
The webhook URL often embeds a secret token, so it never appears in logs,
errors or reprs (only its host does).

Kinds: coaching, emergency, shift, drift, anti_correlation, budget_80,
budget_100, version_rejected, training_failed (and recovered, informational).
Amounts print with the digits they need (``0.0044 of 0.0050 USD``), never
rounded to ``0.00``. A listener (:meth:`Alerter.listen`) sees every alert that
passes the cool-down, so the gateway can keep it in the events table.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from apprentice.config import AlertsConfig
from apprentice.reporting.alert_kinds import (
    ALERT_KINDS,
    Alert,
    alarm,
    amount,
    budget_alerts,
    canary_rolled_back,
    cap_reached,
    rejected_version,
    training_failed,
)
from apprentice.reporting.metrics import Metrics

__all__ = [
    "ALERT_KINDS",
    "Alert",
    "Alerter",
    "alarm",
    "amount",
    "budget_alerts",
    "canary_rolled_back",
    "cap_reached",
    "format_payload",
    "rejected_version",
    "training_failed",
]

log = logging.getLogger(__name__)

_ICON = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


def format_payload(alert: Alert, fmt: str) -> dict[str, Any]:
    """The JSON body POSTed for ``alert`` in the ``generic`` or ``slack`` format."""
    if fmt == "slack":
        where = f" task `{alert.task}`" if alert.task else ""
        return {
            "text": f"{_ICON[alert.severity]} *apprentice {alert.kind}*{where}: {alert.message}"
        }
    return alert.to_json()


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/..."


class Alerter:
    """Deduplicating, bounded, retrying webhook sender run by one asyncio worker.

    Without ``webhook_url`` it still counts alerts (metrics) and logs them, so the
    gateway can call :meth:`emit` unconditionally.
    """

    def __init__(
        self,
        config: AlertsConfig,
        *,
        metrics: Metrics | None = None,
        cooldown_s: float = 300.0,
        queue_size: int = 256,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = config.webhook_url
        self._format = config.format
        self._timeout = config.timeout_s
        self._retries = config.max_retries
        self._metrics = metrics
        self._cooldown = cooldown_s
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._clock = clock
        self._queue: collections.deque[Alert] = collections.deque(maxlen=queue_size)
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._last: dict[tuple[str | None, str], float] = {}
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.suppressed = 0
        self._listeners: list[Callable[[Alert], None]] = []

    def __repr__(self) -> str:
        target = _redact(self._url) if self._url else "none"
        return f"Alerter(webhook={target}, format={self._format}, queued={len(self._queue)})"

    # --- producer side (request path) --------------------------------------------------

    def listen(self, listener: Callable[[Alert], None]) -> None:
        """Call ``listener`` (synchronously, never raising into emit) on each alert let through."""
        self._listeners.append(listener)

    def emit(self, alert: Alert) -> bool:
        """Queue ``alert`` unless a (task, kind) twin fired within the cool-down.

        Returns whether it was queued. Never blocks and never raises.
        """
        key = (alert.task, alert.kind)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._cooldown:
            self.suppressed += 1
            if self._metrics:
                self._metrics.record_alert_dropped("cooldown")
            return False
        self._last[key] = now
        if self._metrics:
            self._metrics.record_alert(alert.kind)
        log.warning("alert %s task=%s: %s", alert.kind, alert.task, alert.message)
        for listener in self._listeners:
            try:
                listener(alert)
            except Exception:  # a listener must never break the request path
                log.exception("alert listener failed for %s", alert.kind)
        if self._url is None:
            return True
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1  # deque(maxlen) drops the oldest on append
            if self._metrics:
                self._metrics.record_alert_dropped("queue_full")
        self._queue.append(alert)
        self._idle.clear()
        self._wakeup.set()
        return True

    def reset_cooldown(self, task: str | None, kind: str) -> None:
        """Let the next (task, kind) alert through, e.g. after the condition cleared."""
        self._last.pop((task, kind), None)

    # --- worker --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the delivery worker on the running loop (idempotent)."""
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._idle = asyncio.Event()
            if self._queue:
                self._wakeup.set()
            else:
                self._idle.set()
            self._worker = asyncio.create_task(self._run(), name="apprentice-alerts")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``drain_timeout_s``), then stop the worker."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), drain_timeout_s)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        self._worker = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def drain(self) -> None:
        """Wait until the queue is empty and no delivery is in flight (tests, shutdown)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                alert = self._queue.popleft()
                try:
                    await self._deliver(alert)
                except Exception as exc:  # the worker must outlive any one bad delivery
                    self.failed += 1
                    log.error("alert %s not delivered: %s", alert.kind, type(exc).__name__)
            if not self._queue:
                self._idle.set()

    async def _deliver(self, alert: Alert) -> None:
        assert self._url is not None
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        body = format_payload(alert, self._format)
        delay = self._backoff
        for attempt in range(self._retries + 1):
            try:
                async with self._session.post(self._url, json=body) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return
                    retryable = resp.status >= 500 or resp.status == 429
                    problem = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                retryable, problem = True, type(exc).__name__
            if not retryable or attempt == self._retries:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
        self.failed += 1
        if self._metrics:
            self._metrics.record_alert_dropped("delivery_failed")
        log.error(
            "alert %s not delivered to %s after %d attempt(s): %s",
            alert.kind,
            _redact(self._url),
            attempt + 1,
            problem,
        )
