"""``GET /admin/tasks/{task}/spend?tag=customer``: requests and teacher spend grouped by a tag;
``GET /admin/tasks/{task}/spend/keys``: the same per API key (its public id).

For "what does each customer cost": every request of the task since ``since`` (ISO
8601, default the start of today in UTC) is grouped by the value of its tag ``tag``
(requests sent without it under ``null``), with how many there were, how many
called the teacher and what they cost (the request's teacher spend, USD). Read
from the store, so it counts every gateway replica's requests. Admin token required.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from apprentice.gateway import errors
from apprentice.store import RequestRecord, Store

__all__ = ["add_routes", "group"]


def group(rows: Sequence[RequestRecord], tag: str | None) -> list[dict[str, Any]]:
    """One entry per value of ``tag`` (``None``: by API key id), most spend first; requests
    without it are under ``None``."""
    found: dict[str | None, dict[str, Any]] = {}
    for r in rows:
        value = r.caller if tag is None else r.tags.get(tag)
        entry = found.setdefault(value, {"value": value, "requests": 0, "teacher_calls": 0})
        entry["requests"] += 1
        entry["teacher_calls"] += int(r.teacher_called)
        entry["spend"] = entry.get("spend", 0.0) + r.cost
    return sorted(found.values(), key=lambda e: (-e["spend"], str(e["value"])))


def _since(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        # RFC 3339 allows a lower-case t/z and a leap second, which fromisoformat does not.
        moment = datetime.fromisoformat(text.upper().replace(":60", ":59"))
    except ValueError:
        raise errors.BadRequest(
            f"since must be an ISO 8601 time (2026-01-31T00:00:00Z), got {text!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def add_routes(
    app: web.Application,
    store: Callable[[], Store],
    check_task: Callable[[str], object],
    admin: Callable[[web.Request], None],
    flush: Callable[[], Awaitable[None]],
) -> None:
    """Wire the route into ``app`` behind ``admin``."""

    async def grouped(request: web.Request, tag: str | None) -> web.Response:
        admin(request)
        task = request.match_info["task"]
        check_task(task)
        since = _since(request.query.get("since"))
        await flush()  # local-only answers commit a moment after they are sent
        rows = await asyncio.to_thread(store().requests, task, since)
        body = {"task": task, "since": since.isoformat(), "groups": group(rows, tag)}
        return web.Response(
            text=json.dumps({"tag": tag, **body} if tag else body), content_type="application/json"
        )

    async def by_tag(request: web.Request) -> web.Response:
        tag = request.query.get("tag", "")
        if not tag:
            admin(request)
            raise errors.BadRequest("tag is required: the tag to group by (?tag=customer)")
        return await grouped(request, tag)

    async def by_key(request: web.Request) -> web.Response:
        return await grouped(request, None)

    app.router.add_route("GET", "/admin/tasks/{task}/spend", by_tag)
    app.router.add_route("GET", "/admin/tasks/{task}/spend/keys", by_key)
