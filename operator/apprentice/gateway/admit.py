"""Step 1, admit: the input checked, the route decided, the paid calls reserved.

Nothing is paid before this step says so. The input must match the task's
``input_schema`` (422). The engine decides the route. Every call that may bill
is reserved at its worst case in the store first (one cap across every
gateway): the teacher's, and a paid student's (the ``openai`` fine-tune, spend
kind ``student``). When a cap has no room:

- for the teacher: the student serves (flagged, alerted) if one is ready and
  ``budget.pause_remote_when_exhausted``; else 429 ``budget_exhausted``;
- for a paid student: it is not called; the teacher answers if the cap has room
  for it, else 429 ``budget_exhausted``.

A request made with an API key (``meta.caller``) is also charged to the key: its
reservations carry the key, and the key's caps (``budget`` of ``POST /admin/keys``)
are checked in the same transaction as the task and global caps. When only the
key's cap has no room, the same rules apply and the 429 is ``key_budget_exhausted``,
naming the key, the window, the cap and when it resets.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from apprentice.engine import budget as budget_mod
from apprentice.gateway import errors, settling
from apprentice.gateway.canary import CanaryCall, LiveCanary
from apprentice.gateway.parts import Parts
from apprentice.gateway.request import Meta, Request
from apprentice.gateway.spending import Hold
from apprentice.gateway.tasks import ServedTask
from apprentice.json_types import JsonObject
from apprentice.reporting import alerts as alerts_mod
from apprentice.reporting import snapshot
from apprentice.store import StoreError, records
from apprentice.vocabulary import Route


class Admission:
    """Turns ``(task, input)`` into an admitted :class:`Request` or a typed error."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def task(self, name: str) -> ServedTask:
        found = self.parts.tasks.get(name)
        if found is None:
            raise errors.UnknownTask(name, list(self.parts.tasks))
        return found

    async def admit(self, task: ServedTask, task_input: object, meta: Meta) -> Request:
        checked = self._valid_input(task, task_input)
        rid = self.parts.new_request_id()
        ready = task.student_ready()
        decision = task.engine.route(rid, student_ready=ready)
        req = Request(
            task, checked, rid, datetime.now(UTC), time.perf_counter(), decision.route, meta
        )
        if task.canary is not None and req.route.calls_student:  # off: this one check
            _to_canary(req, task.canary)
        try:
            student_estimate = None
            if req.route.calls_student and task.paid is not None:  # else free: None
                student_estimate = task.student_estimate(checked)
            if student_estimate is not None:
                req.student_hold = await self.reserve(req, student_estimate, "student")
                if req.student_hold is None:  # no room for the paid student: not called
                    ready = False
                    req.route = task.engine.route(rid, student_ready=False).route
            if req.route.calls_teacher:
                self.check_storable(checked)
                estimate = self.parts.pool().estimate_cost(task.cfg, checked, request_id=rid)
                req.teacher_hold = await self.reserve(req, estimate)
                if req.teacher_hold is None:
                    req.route = self._over_budget(req, ready, estimate, student_estimate)
        except BaseException:
            self.parts.settler.release_all(req.holds())  # nothing was called
            raise
        return req

    def _valid_input(self, task: ServedTask, task_input: object) -> JsonObject:
        if not isinstance(task_input, dict):
            raise errors.InvalidInput(
                "input must be a JSON object",
                details=[{"path": "<root>", "message": f"{type(task_input).__name__} given"}],
            )
        problems = task.schemas.input.errors(task_input)
        if problems:
            raise errors.InvalidInput(
                f"input does not match {task.name}'s input_schema: "
                + "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5]),
                details=problems,
            )
        return task_input

    def check_storable(self, task_input: JsonObject) -> None:
        """Never pay for what cannot be stored: refuse such an input before the teacher."""
        store = self.parts.store
        problem = store.unstorable(task_input) if store is not None else None
        if problem:
            raise errors.BadRequest(problem, details=[{"path": "input", "message": problem}])

    async def reserve(
        self, req: Request, estimate: float, kind: records.SpendKind = "teacher"
    ) -> Hold | None:
        """A store reservation; a store that cannot answer is a 503 before any payment."""
        name = req.task.name
        try:
            got = await self.parts.budget.hold(
                name, estimate, req.received_at, kind=kind, request_id=req.id,
                caller=req.meta.caller,
            )  # fmt: skip
        except StoreError as exc:
            self.parts.metrics.record_error(name, "store_unavailable")
            raise settling.StoreUnavailable(
                f"the budget could not be checked ({exc}); the teacher was not called, retry later",
                details={"request_id": req.id},
            ) from exc
        if isinstance(got, budget_mod.BudgetExhausted):
            req.refused = got
            return None
        return got

    def _over_budget(
        self, req: Request, ready: bool, estimate: float, student_estimate: float | None
    ) -> Route:
        """A cap would be crossed: the student serves (flagged, alerted) or 429."""
        parts, task, now = self.parts, req.task, req.received_at
        allowed = ready and parts.config.budget.pause_remote_when_exhausted
        decision = task.engine.route(req.id, student_ready=allowed, teacher_allowed=False)
        refused = req.refused
        if refused is not None and refused.scope.startswith(budget_mod.KEY_PREFIX):
            if decision.calls_student:  # the key's cap only: a free student may answer
                return decision.route
            parts.metrics.record_error(task.name, "key_budget_exhausted")
            raise key_budget_exhausted(refused, parts.budget.limits)
        cap = snapshot.blocking_cap(parts.budget.mirror.ledger, now, task.name, estimate)
        consequence = "the student serves (flagged)" if decision.calls_student else None
        parts.alerts.emit(
            alerts_mod.cap_reached(
                task.name, cap, currency=parts.config.budget.currency,
                consequence=consequence or "requests refused", estimate=estimate,
            )
        )  # fmt: skip
        if decision.calls_student:
            return decision.route
        parts.metrics.record_error(task.name, "budget_exhausted")
        why = (
            "(budget.pause_remote_when_exhausted is false)"
            if ready
            else "(the student's answers are paid and the budget has no room for them)"
            if student_estimate is not None
            else "(no model version is promoted yet)"
        )
        raise errors.BudgetExhausted(
            f"the teacher budget for {task.name} is exhausted and no student may answer "
            f"instead {why}; raise the caps or wait for the window to roll over",
            details={
                "task": task.name,
                "spend": parts.budget.windows(task.name, now),
                "caps": parts.budget.caps(task.name),
            },
        )


def _to_canary(req: Request, live: LiveCanary) -> None:
    """A request whose id routes to the candidate is marked. The canary's own teacher
    sampling (the same for both versions, so their evidence is alike) may turn a
    local-only request into a compared one (reserved below)."""
    if live.routes(req.id):
        req.canary = CanaryCall(live)
    if req.route is Route.local_only and live.compares(req.id):
        req.route = Route.both


def key_budget_exhausted(
    refused: budget_mod.BudgetExhausted, limits: budget_mod.BudgetLimits
) -> errors.KeyBudgetExhausted:
    """429 naming the API key, its capped window, the cap and when the window resets."""
    key_id = refused.scope.removeprefix(budget_mod.KEY_PREFIX)
    resets = budget_mod.window_bounds(limits, refused.now)[refused.window][1]
    resets_at = datetime.fromtimestamp(resets, UTC).isoformat()
    return errors.KeyBudgetExhausted(
        f"API key {key_id} reached its {refused.window.value} budget of {refused.cap:.4f} "
        f"{limits.currency} ({refused.committed:.4f} spent or reserved, {refused.asked:.4f} "
        f"more asked); it resets at {resets_at}",
        details={
            "key_id": key_id,
            "window": refused.window.value,
            "cap": refused.cap,
            "spent_or_reserved": refused.committed,
            "asked": refused.asked,
            "currency": limits.currency,
            "resets_at": resets_at,
        },
    )
