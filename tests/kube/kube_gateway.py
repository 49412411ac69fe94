"""A loopback gateway that speaks the real HTTP contract (state + admin endpoints).

It stands in for the gateway container of an inference pod: the operator under test
reads ``/v1/tasks/{task}/state`` and drives ``/admin/...`` over real HTTP. It records
every call, rejects admin calls without the right bearer token (401, as the contract
says), and moves its state the way the engine would (training started/finished,
promotion switches the active version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def task_state(task: str, **changes: Any) -> dict[str, Any]:
    """A TaskStatus JSON with sensible values (phase 1, no training due)."""
    state: dict[str, Any] = {
        "task": task,
        "phase": "cold_start",
        "phase_number": 1,
        "coaching": False,
        "emergency": False,
        "paused": False,
        "confidence": None,
        "confidence_lower_bound": None,
        "sampling_rate": 1.0,
        "trend": 0.0,
        "drift": False,
        "drift_at": None,
        "shift": False,
        "shift_at": None,
        "anti_correlation": False,
        "comparisons": 0,
        "examples": {"train": 12, "heldout": 2},
        "teacher_calls": 14,
        "student_answers": 0,
        "requests": 14,
        "spend": {
            "today": 0.42,
            "week": 1.5,
            "month": 3.25,
            "currency": "USD",
            "caps": {"daily": 2.0, "weekly": None, "monthly": None},
        },
        "budget_exhausted": False,
        "estimated_savings": 0.0,
        "active_version": None,
        "training_due": False,
        "training_reason": None,
        "training_in_progress": False,
        "alarms": [],
    }
    state.update(changes)
    return state


@dataclass
class FakeGateway:
    """Mutable gateway state plus the log of calls it received."""

    task: str
    token: str
    state: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    verdict: dict[str, Any] = field(
        default_factory=lambda: {"heldout_score": 0.93, "passed": True, "reason": None}
    )
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    unauthorized: int = 0
    canary: bool = False  # promote starts a canary (the task's canary on): v stays candidate

    def __post_init__(self) -> None:
        self.state = self.state or task_state(self.task)

    def paths(self, method: str | None = None) -> list[str]:
        return [p for m, p, _ in self.calls if method is None or m == method]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        t = "/v1/tasks/{task}"
        a = "/admin/tasks/{task}"
        app.router.add_get("/healthz", self._ok)
        app.router.add_get("/readyz", self._ok)
        app.router.add_get(f"{t}/state", self._state)
        app.router.add_get(f"{a}/versions", self._list_versions)
        app.router.add_post(f"{a}/versions", self._register)
        app.router.add_post(f"{a}/versions/{{version}}/validate", self._validate)
        app.router.add_post(f"{a}/versions/{{version}}/promote", self._promote)
        app.router.add_post(f"{a}/training/started", self._started)
        app.router.add_post(f"{a}/training/finished", self._finished)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.calls.append((request.method, request.path, body))
        authorized = request.headers.get("Authorization") == f"Bearer {self.token}"
        if request.path.startswith("/admin/") and not authorized:
            self.unauthorized += 1
            return _error(401, "unauthorized", "missing or wrong admin token")
        if request.match_info.get("task") not in (None, self.task):
            return _error(404, "unknown_task", f"no task {request.match_info['task']}")
        response: web.StreamResponse = await handler(request)
        return response

    async def _ok(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state)

    async def _list_versions(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"versions": list(self.versions.values()), "active": self.state.get("active_version")}
        )

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        version = body.get("version") or f"v{len(self.versions) + 1}"
        if version in self.versions:
            return _error(409, "conflict", f"{version} exists")
        self.versions[version] = {
            "version": version,
            "state": "candidate",
            "heldout_score": None,
            "path": body["path"],
            "metrics": body.get("metrics") or {},
            "reason": None,
        }
        return web.json_response(self.versions[version], status=201)

    async def _validate(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        if version not in self.versions:
            return _error(404, "unknown_version", version)
        self.versions[version].update(
            state="validating", heldout_score=self.verdict["heldout_score"]
        )
        return web.json_response({"version": version, **self.verdict})

    async def _promote(self, request: web.Request) -> web.Response:
        version = request.match_info["version"]
        if self.canary:
            self.versions[version].update(state="candidate", metrics={"canary": {"mode": "share"}})
            self.state["canary"] = canary_view(version, self.state.get("active_version"))
            return web.json_response({"active": self.state.get("active_version")})
        self.versions[version]["state"] = "promoted"
        self.state["active_version"] = version
        return web.json_response({"active": version})

    async def _started(self, request: web.Request) -> web.Response:
        self.state.update(training_due=False, training_in_progress=True)
        return web.json_response({"ok": True})

    async def _finished(self, request: web.Request) -> web.Response:
        self.state.update(training_in_progress=False)
        return web.json_response({"ok": True})


def canary_view(version: str, active: str | None) -> dict[str, Any]:
    """The gateway state's ``canary`` while one runs (LiveCanary.view's shape), no evidence yet."""
    return {
        "version": version,
        "active_version": active,
        "mode": "share",
        "share": 0.1,
        "margin": 0.0,
        "started_at": "2026-01-01T00:00:00+00:00",
        "candidate": {"comparisons": 0, "agreement": 0.0},
        "active": {"comparisons": 0, "agreement": 0.0},
        "verdict": "continue",
        "reason": "collecting evidence",
    }


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": code, "message": message}}, status=status)
