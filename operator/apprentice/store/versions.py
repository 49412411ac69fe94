"""Model version rows (their state changes and rollback), events, and the tasks' engine state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from apprentice.prompts import canonical_json
from apprentice.store import codec
from apprentice.store.base import (
    TRANSITIONS,
    InvalidTransitionError,
    UnknownVersionError,
    VersionExistsError,
)
from apprentice.store.records import (
    EventRecord,
    ModelVersionRecord,
    version_number,
)
from apprentice.store.sqlcore import SqlCore, Tx
from apprentice.vocabulary import VersionStateName

_VERSION_COLUMNS = (
    "task, version, state, path, base_model, created_at, updated_at, heldout_score,"
    " reason, metrics, promoted_at"
)
_EVENT_COLUMNS = "task, at, kind, message, data, id"


class VersionRows(SqlCore):
    """Versions, events, engine state."""

    # -- model versions -----------------------------------------------------------------------

    def next_version_name(self, task: str) -> str:
        with self._read() as tx:
            row = tx.one("SELECT MAX(number) FROM model_versions WHERE task = ?", (task,))
        highest = int(row[0]) if row and row[0] is not None else 0
        return f"v{highest + 1}"

    def add_version(self, version: ModelVersionRecord) -> ModelVersionRecord:
        v = version
        number = version_number(v.version)
        with self._write() as tx:
            if v.state == "promoted":
                self._retire_promoted(tx, v.task, v.version, v.updated_at)
            try:
                tx.execute(
                    f"INSERT INTO model_versions ({_VERSION_COLUMNS}, number)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        v.task,
                        v.version,
                        v.state,
                        v.path,
                        v.base_model,
                        codec.to_micros(v.created_at),
                        codec.to_micros(v.updated_at),
                        v.heldout_score,
                        v.reason,
                        canonical_json(v.metrics),
                        None if v.promoted_at is None else codec.to_micros(v.promoted_at),
                        number,
                    ),
                )
            except Exception as error:
                if self._is_unique_violation(error):
                    raise VersionExistsError(
                        f"model version {v.version} of task {v.task!r} already exists: use "
                        "next_version_name() for a fresh name"
                    ) from error
                raise
        return self.version(v.task, v.version)

    def _retire_promoted(self, tx: Tx, task: str, keep: str, at: datetime) -> None:
        tx.execute(
            "UPDATE model_versions SET state = 'retired', updated_at = ?"
            " WHERE task = ? AND state = 'promoted' AND version <> ?",
            (codec.to_micros(at), task, keep),
        )

    def _version_row(self, tx: Tx, task: str, version: str) -> ModelVersionRecord:
        row = tx.one(
            f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE task = ? AND version = ?",
            (task, version),
        )
        if row is None:
            raise UnknownVersionError(
                f"task {task!r} has no model version {version!r}: see `apprentice versions`"
            )
        return codec.version(row)

    def update_version(
        self,
        task: str,
        version: str,
        *,
        state: VersionStateName | None = None,
        heldout_score: float | None = None,
        reason: str | None = None,
        metrics: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> ModelVersionRecord:
        now = at or datetime.now(UTC)
        with self._write() as tx:
            current = self._version_row(tx, task, version)
            sets: list[str] = ["updated_at = ?"]
            params: list[Any] = [codec.to_micros(now)]
            if state is not None and state != current.state:
                if state not in TRANSITIONS[current.state]:
                    allowed = ", ".join(sorted(TRANSITIONS[current.state])) or "nothing"
                    raise InvalidTransitionError(
                        f"model version {version} of task {task!r} is {current.state}; it can "
                        f"become {allowed}, not {state}"
                    )
                sets.append("state = ?")
                params.append(state)
                if state == "promoted":
                    self._retire_promoted(tx, task, version, now)
                    sets.append("promoted_at = ?")
                    params.append(codec.to_micros(now))
            if heldout_score is not None:
                sets.append("heldout_score = ?")
                params.append(float(heldout_score))
            if reason is not None:
                sets.append("reason = ?")
                params.append(reason)
            if metrics is not None:
                sets.append("metrics = ?")
                params.append(canonical_json(metrics))
            tx.execute(
                f"UPDATE model_versions SET {', '.join(sets)} WHERE task = ? AND version = ?",
                (*params, task, version),
            )
            return self._version_row(tx, task, version)

    def versions(self, task: str) -> list[ModelVersionRecord]:
        with self._read() as tx:
            rows = tx.all(
                f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE task = ? ORDER BY number",
                (task,),
            )
        return [codec.version(row) for row in rows]

    def version(self, task: str, version: str) -> ModelVersionRecord:
        with self._read() as tx:
            return self._version_row(tx, task, version)

    def active_version(self, task: str) -> ModelVersionRecord | None:
        with self._read() as tx:
            row = tx.one(
                f"SELECT {_VERSION_COLUMNS} FROM model_versions"
                " WHERE task = ? AND state = 'promoted' ORDER BY number DESC",
                (task,),
            )
        return None if row is None else codec.version(row)

    def rollback(
        self, task: str, *, reason: str = "rolled back", at: datetime | None = None
    ) -> ModelVersionRecord | None:
        now = codec.to_micros(at or datetime.now(UTC))
        with self._write() as tx:
            previous = tx.one(
                "SELECT version FROM model_versions WHERE task = ? AND state = 'retired'"
                " AND promoted_at IS NOT NULL ORDER BY promoted_at DESC, number DESC",
                (task,),
            )
            if previous is None:
                return None
            tx.execute(
                "UPDATE model_versions SET state = 'rejected', reason = ?, updated_at = ?"
                " WHERE task = ? AND state = 'promoted'",
                (reason, now, task),
            )
            tx.execute(
                "UPDATE model_versions SET state = 'promoted', promoted_at = ?, updated_at = ?"
                " WHERE task = ? AND version = ?",
                (now, now, task, previous[0]),
            )
            return self._version_row(tx, task, str(previous[0]))

    # -- events and engine state --------------------------------------------------------------

    def add_event(self, event: EventRecord) -> int:
        with self._write() as tx:
            row = tx.one(
                "INSERT INTO events (task, at, kind, message, data) VALUES (?, ?, ?, ?, ?)"
                " RETURNING id",
                (
                    event.task,
                    codec.to_micros(event.at),
                    event.kind,
                    event.message,
                    canonical_json(event.data),
                ),
            )
        assert row is not None
        return int(row[0])

    def events(
        self,
        task: str | None = None,
        since: datetime | None = None,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[EventRecord]:
        extra: list[tuple[str, Sequence[Any]]] = []
        if kinds is not None:
            kind_list = list(kinds)
            if not kind_list:
                return []
            extra.append((f"kind IN ({', '.join('?' * len(kind_list))})", kind_list))
        rows = self._tail("events", _EVENT_COLUMNS, "at", "id", task, since, limit, extra)
        return [codec.event(row) for row in rows]

    def load_task_state(self, task: str) -> dict[str, Any] | None:
        with self._read() as tx:
            row = tx.one("SELECT state FROM task_state WHERE task = ?", (task,))
        return None if row is None else codec.load_json(row[0])

    def save_task_state(self, task: str, state: dict[str, Any]) -> None:
        with self._write() as tx:
            self._upsert_state(tx, task, state, datetime.now(UTC))

    def tasks(self) -> list[str]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT task FROM task_counters UNION SELECT task FROM examples"
                " UNION SELECT task FROM model_versions UNION SELECT task FROM task_state"
            )
        return sorted({str(row[0]) for row in rows if row[0] is not None})
