"""``/admin/keys``: create, list and revoke API keys (admin token required).

``POST /admin/keys`` answers 201 with the key's public fields and, once, its token
under ``key``; ``GET /admin/keys`` and ``POST /admin/keys/{key_id}/revoke`` never
show a token (the store does not have one to show). A revoked key stays listed,
with ``revoked_at``, so an audit can tell which key made which calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from apprentice.config import GatewayConfig
from apprentice.gateway import bodies, reading
from apprentice.gateway.auth import KeyBudget, KeyRing

__all__ = ["CreateKey", "add_routes"]

KEY_ID_PATTERN = r"^[0-9a-f]{12}$"


class CreateKey(BaseModel):
    """``POST /admin/keys``: a key for these tasks."""

    model_config = ConfigDict(extra="allow", strict=True)

    tasks: list[str] = Field(min_length=1, description="The tasks the key may call.")
    name: str | None = Field(
        default=None, max_length=200, description="A label (who or what holds the key)."
    )
    rate_per_s: float | None = Field(
        default=None, gt=0, description="Requests per second it may make (none: no limit)."
    )
    budget: KeyBudget | None = Field(
        default=None,
        description="The key's spend caps across its tasks, in the budget currency "
        "(none: only the task and global caps apply).",
    )


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
    )


def add_routes(
    app: web.Application,
    ring: KeyRing,
    tasks: Sequence[str],
    admin: Callable[[web.Request], None],
    cfg: GatewayConfig,
) -> None:
    """Wire the three key routes into ``app``, each behind ``admin``."""

    async def create(request: web.Request) -> web.Response:
        admin(request)
        raw = await reading.read_json(request, cfg.max_body_bytes, cfg.body_timeout_s)
        body = bodies.parse(CreateKey, raw)
        caps = None if body.budget is None else body.budget.model_dump(exclude_none=True)
        key, token = await ring.create(body.tasks, body.name, tasks, body.rate_per_s, caps)
        return _json({**key.public(), "key": token}, 201)

    async def listing(request: web.Request) -> web.Response:
        admin(request)
        return _json({"keys": [k.public() for k in await ring.list()]})

    async def revoke(request: web.Request) -> web.Response:
        admin(request)
        return _json((await ring.revoke(request.match_info["key_id"])).public())

    app.router.add_route("POST", "/admin/keys", create)
    app.router.add_route("GET", "/admin/keys", listing)
    app.router.add_route("POST", "/admin/keys/{key_id}/revoke", revoke)
