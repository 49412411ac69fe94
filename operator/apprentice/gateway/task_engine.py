"""The gateway's hold on the pure engine: one mutable cell per task.

The engine is functional (every step returns a new state); the gateway keeps the
current value here and swaps it in place. All methods are synchronous and never
await, so on the event loop each one is atomic with respect to other requests.
The engine state is the one place a task's paused flag lives.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from apprentice.config import ApprenticeConfig, TaskConfig
from apprentice.engine import lifecycle
from apprentice.json_types import JsonObject
from apprentice.reporting import events as events_mod
from apprentice.reporting import snapshot
from apprentice.reporting import status as status_mod
from apprentice.store import records


class TaskEngine:
    """One task's engine state (``lifecycle.TaskState``) behind small verbs."""

    def __init__(self, cfg: ApprenticeConfig, task: TaskConfig, saved: JsonObject | None) -> None:
        self.params = lifecycle.TaskParams.from_config(cfg, task)
        state = (
            lifecycle.TaskState.from_dict(saved, self.params)
            if saved
            else lifecycle.initial(self.params)
        )
        self.pending: list[records.EventRecord] = []  # for the store's events table
        if state.training_in_progress:
            # The process died mid-run: that run produced nothing; it is due again now.
            state = lifecycle.training_interrupted(state)
            self.pending.append(
                events_mod.event(
                    task.name,
                    "training_interrupted",
                    "training was interrupted by a restart; it runs again now",
                    datetime.now(UTC),
                )
            )
        self.state = state
        self.requests = 0  # the request index alarms carry (set from the store on start)

    # -- reads -------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.state.paused

    @property
    def active_version(self) -> str | None:
        return self.state.active_version

    def phase_name(self) -> str:
        return self.state.phase.value

    def sampling_rate(self) -> float:
        return self.state.sampling_rate

    def training_due(self) -> tuple[bool, str | None]:
        due = lifecycle.training_due(self.state)
        return due.due, due.reason

    def to_json(self) -> JsonObject:
        return self.state.to_dict()

    def view(self, *, paused: bool | None = None) -> status_mod.EngineView:
        """The same view ``apprentice status`` builds from the store, by construction."""
        return snapshot.engine_view(self.state, requests=self.requests, paused=paused)

    # -- decisions and updates -------------------------------------------------------------

    def route(
        self, request_id: str, *, student_ready: bool, teacher_allowed: bool = True
    ) -> lifecycle.Decision:
        return lifecycle.route(
            self.state, request_id, student_available=student_ready, teacher_allowed=teacher_allowed
        )

    def record(self, *, score: float | None, example_added: bool, now: datetime) -> list[str]:
        """Account one finished request; returns the kinds of alarms it raised."""
        self.requests += 1
        raised = [] if score is None else self.observe(score, now)
        if example_added:
            self.state = lifecycle.record_example(self.state)
        return raised

    def observe(self, score: float, now: datetime) -> list[str]:
        """One comparison's score for the confidence engine: a sampled request's, or a
        person's feedback on a student answer (:mod:`apprentice.gateway.feedback`).
        Returns the kinds of alarms it raised."""
        index = max(0, self.requests - 1)
        before = self.state
        self.state, alarms = lifecycle.observe(self.state, score, index=index, now=now.timestamp())
        after = self.state
        if alarms or after.phase is not before.phase or after.coaching != before.coaching:
            self.pending += events_mod.transitions(before, after, alarms, now, index=index)
        return [a.kind.value for a in alarms]

    def drain_events(self) -> list[records.EventRecord]:
        """Events since the last drain, oldest first (the caller writes them)."""
        out, self.pending = self.pending, []
        return out

    def _step(self, state: lifecycle.TaskState) -> None:
        self.pending += events_mod.transitions(
            self.state, state, (), datetime.now(UTC), index=max(0, self.requests - 1)
        )
        self.state = state

    def add_example(self, count: int = 1) -> None:
        self.state = lifecycle.record_example(self.state, count)

    def sync_examples(self, total: int) -> None:
        """Start-up: the store's example count is the truth (a crash can lose one update)."""
        self.state = dataclasses.replace(self.state, examples=total)

    def sync_version(self, active: str | None) -> None:
        """Start-up: the store's promoted version is the truth."""
        if active != self.state.active_version:
            if active is None:
                self.state = dataclasses.replace(self.state, active_version=None)
            else:
                self.state = lifecycle.version_promoted(self.state, active)

    def set_paused(self, paused: bool) -> None:
        self._step(lifecycle.pause(self.state) if paused else lifecycle.resume(self.state))

    def training_started(self) -> None:
        self._step(lifecycle.training_started(self.state))

    def training_finished(self, ok: bool, reason: str | None = None) -> None:
        self.state = lifecycle.training_finished(self.state, ok=ok)
        retry = None if ok else snapshot.next_retry(self.state)
        self.pending.append(
            events_mod.training_event(
                self.params.task, ok=ok, reason=reason, at=datetime.now(UTC), next_retry=retry
            )
        )

    def version_promoted(self, version: str) -> None:
        self._step(lifecycle.version_promoted(self.state, version))

    def version_rejected(self, version: str) -> None:
        self._step(lifecycle.version_rejected(self.state, version))
