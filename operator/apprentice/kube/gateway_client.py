"""The operator's side of the gateway contract: task state and the admin endpoints.

The admin token travels only in the ``Authorization`` header; it is not stored in
the client's repr, and no error message or log line built here contains it.

Errors::

    GatewayError               any failed call; .status (0: no HTTP response), .code
     +-- GatewayUnavailable    connection refused, timeouts, 502/503/504: retry later
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["GatewayClient", "GatewayError", "GatewayUnavailable"]

Obj = dict[str, Any]


class GatewayError(Exception):
    """A gateway call failed; ``code`` is the contract's error type (e.g. unknown_task)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"gateway {status or 'unreachable'} {code}: {message}")
        self.status = status
        self.code = code


class GatewayUnavailable(GatewayError):
    pass


class GatewayClient:
    """One gateway (one task's inference pod Service)."""

    def __init__(
        self,
        base_url: str,
        task: str,
        admin_token: str | None = None,
        *,
        timeout_s: float = 10.0,
        validate_timeout_s: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.task = task
        self._token = admin_token
        self._validate_timeout = validate_timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout_s, transport=transport
        )

    def __repr__(self) -> str:
        return f"GatewayClient({self.base_url!r}, task={self.task!r})"

    async def __aenter__(self) -> GatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Obj | None = None,
        admin: bool = False,
        timeout_s: float | None = None,
    ) -> Obj:
        headers = {}
        if admin:
            if not self._token:
                raise GatewayError(0, "no_token", "no admin token: the task's Secret is missing")
            headers["Authorization"] = f"Bearer {self._token}"
        extra: dict[str, Any] = {"timeout": timeout_s} if timeout_s else {}
        try:
            resp = await self._http.request(method, path, json=json, headers=headers, **extra)
        except httpx.TransportError as exc:
            raise GatewayUnavailable(
                0, type(exc).__name__, f"{method} {self.base_url}{path}: {exc}"
            ) from exc
        if resp.status_code < 400:
            data: Obj = resp.json() if resp.content else {}
            return data
        try:
            err = resp.json().get("error") or {}
        except (ValueError, AttributeError):
            err = {}
        code = str(err.get("type") or resp.reason_phrase)
        message = f"{method} {path}: {err.get('message') or resp.text[:200]}"
        if resp.status_code in (502, 503, 504):
            raise GatewayUnavailable(resp.status_code, code, message)
        raise GatewayError(resp.status_code, code, message)

    async def state(self) -> Obj:
        """``GET /v1/tasks/{task}/state``: the TaskStatus JSON."""
        # The admin token: with API keys required, /state answers it or a task key only.
        return await self._call("GET", f"/v1/tasks/{self.task}/state", admin=bool(self._token))

    async def versions(self) -> Obj:
        return await self._call("GET", f"/admin/tasks/{self.task}/versions", admin=True)

    async def register_version(self, version: str, path: str, metrics: Obj) -> Obj:
        body = {"version": version, "path": path, "metrics": metrics}
        return await self._call("POST", f"/admin/tasks/{self.task}/versions", json=body, admin=True)

    async def validate(self, version: str) -> Obj:
        """Scores the version on the held-out split: ``{heldout_score, passed, reason}``."""
        return await self._call(
            "POST",
            f"/admin/tasks/{self.task}/versions/{version}/validate",
            admin=True,
            timeout_s=self._validate_timeout,
        )

    async def promote(self, version: str) -> Obj:
        return await self._call(
            "POST",
            f"/admin/tasks/{self.task}/versions/{version}/promote",
            admin=True,
            timeout_s=self._validate_timeout,
        )

    async def training_started(self) -> Obj:
        return await self._call(
            "POST", f"/admin/tasks/{self.task}/training/started", json={}, admin=True
        )

    async def training_finished(self, ok: bool, reason: str | None = None) -> Obj:
        body: Obj = {"ok": ok}
        if reason:
            body["reason"] = reason
        return await self._call(
            "POST", f"/admin/tasks/{self.task}/training/finished", json=body, admin=True
        )
