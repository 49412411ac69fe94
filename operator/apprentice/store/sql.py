"""The Store implementation shared by both backends: SQL written once.

Backends supply connections and transactions (:meth:`SqlStore._write` and
:meth:`SqlStore._read`), the :class:`~apprentice.store.schema.Dialect`, and
how their driver reports a unique-key violation. Everything else (the request
transaction, version lifecycle, reports' queries) lives here so the two
backends cannot drift apart.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from apprentice.prompts import canonical_json
from apprentice.store import codec, schema
from apprentice.store.base import (
    TRANSITIONS,
    DuplicateRequestError,
    InvalidTransitionError,
    MigrationError,
    Store,
    UnknownVersionError,
    VersionExistsError,
)
from apprentice.store.records import (
    ComparisonRecord,
    EventRecord,
    ExampleRecord,
    HourBucket,
    ModelVersionRecord,
    RecordResult,
    RequestCounts,
    RequestRecord,
    SpendKind,
    SpendRecord,
    Split,
    VersionState,
    version_number,
)

Row = tuple[Any, ...]


class Cursor(Protocol):
    """The slice of DB-API 2 both sqlite3 and psycopg cursors provide."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


class Tx:
    """A cursor inside one transaction, speaking the store's ``?`` SQL."""

    def __init__(self, cursor: Cursor, dialect: schema.Dialect) -> None:
        self._cursor = cursor
        self._dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._dialect.sql(sql), tuple(params))
        return self._cursor.rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._cursor.execute(self._dialect.sql(sql), tuple(params))
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(self._dialect.sql(sql), tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()]


_REQUEST_COLUMNS = (
    "id, task, received_at, route, served_by, teacher_model, teacher_provider,"
    " student_version, latency_ms, error, cost"
)
_EXAMPLE_COLUMNS = (
    "task, input, output, input_hash, split, teacher_provider, teacher_model, created_at,"
    " cost, request_id, weight, trained_in_version, id"
)
_COMPARISON_COLUMNS = (
    "task, request_id, at, score, details, student_version, phase, sampling_rate, id"
)
_SPEND_COLUMNS = (
    "task, at, amount, kind, request_id, provider, model, input_tokens, output_tokens, id"
)
_VERSION_COLUMNS = (
    "task, version, state, path, base_model, created_at, updated_at, heldout_score,"
    " reason, metrics, promoted_at"
)
_EVENT_COLUMNS = "task, at, kind, message, data, id"


class SqlStore(Store):
    """Everything but connections; see the module docstring."""

    dialect: schema.Dialect

    # -- backend hooks ------------------------------------------------------------------------

    @abc.abstractmethod
    def _write(self) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction: commit (durably) on success, roll back on any error."""

    @abc.abstractmethod
    def _read(self) -> contextlib.AbstractContextManager[Tx]:
        """A read-only view (may be a transaction)."""

    @abc.abstractmethod
    def _is_unique_violation(self, error: BaseException) -> bool:
        """Whether the driver error is a primary/unique key violation."""

    # -- migrations ---------------------------------------------------------------------------

    def _migrate(self, tx: Tx) -> int:
        """Apply missing migrations inside ``tx`` (the caller holds the migration lock)."""
        tx.execute(schema.SCHEMA_VERSION_TABLE)
        row = tx.one("SELECT MAX(version) FROM schema_version")
        current = int(row[0]) if row and row[0] is not None else 0
        if current > schema.LATEST_VERSION:
            raise MigrationError(
                f"the store's schema is version {current} but this Apprentice knows only up to "
                f"{schema.LATEST_VERSION}: upgrade Apprentice or point store.url elsewhere"
            )
        now = codec.to_micros(datetime.now(UTC))
        for version, statements in schema.MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                tx.execute(self.dialect.ddl(statement))
            tx.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now)
            )
        return schema.LATEST_VERSION

    def schema_version(self) -> int:
        """The schema version the store is at (for diagnostics and tests)."""
        with self._read() as tx:
            row = tx.one("SELECT MAX(version) FROM schema_version")
        return int(row[0]) if row and row[0] is not None else 0

    # -- the request transaction --------------------------------------------------------------

    def record_request(
        self,
        request: RequestRecord,
        *,
        example: ExampleRecord | None = None,
        comparison: ComparisonRecord | None = None,
        spend: Sequence[SpendRecord] = (),
        task_state: dict[str, Any] | None = None,
    ) -> RecordResult:
        with self._write() as tx:
            self._insert_request(tx, request)
            example_id, added = (None, False)
            if example is not None:
                example_id, added = self._insert_example(tx, example)
            comparison_id = None
            if comparison is not None:
                comparison_id = self._insert_comparison(tx, comparison)
            self._insert_spend(tx, spend)
            tx.execute(
                "INSERT INTO task_counters (task, requests, teacher_calls, student_answers,"
                " errors, comparisons) VALUES (?, 1, ?, ?, ?, ?)"
                " ON CONFLICT (task) DO UPDATE SET"
                " requests = task_counters.requests + 1,"
                " teacher_calls = task_counters.teacher_calls + excluded.teacher_calls,"
                " student_answers = task_counters.student_answers + excluded.student_answers,"
                " errors = task_counters.errors + excluded.errors,"
                " comparisons = task_counters.comparisons + excluded.comparisons",
                (
                    request.task,
                    int(request.teacher_called),
                    int(request.served_by == "student"),
                    int(request.error is not None),
                    int(comparison is not None),
                ),
            )
            if task_state is not None:
                self._upsert_state(tx, request.task, task_state, request.received_at)
        return RecordResult(example_id=example_id, example_added=added, comparison_id=comparison_id)

    def _insert_request(self, tx: Tx, r: RequestRecord) -> None:
        try:
            tx.execute(
                f"INSERT INTO requests ({_REQUEST_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.id,
                    r.task,
                    codec.to_micros(r.received_at),
                    r.route,
                    r.served_by,
                    r.teacher_model,
                    r.teacher_provider,
                    r.student_version,
                    float(r.latency_ms),
                    r.error,
                    float(r.cost),
                ),
            )
        except Exception as error:
            if self._is_unique_violation(error):
                raise DuplicateRequestError(
                    f"request {r.id!r} of task {r.task!r} is already recorded; request ids "
                    "must be unique"
                ) from error
            raise

    def _insert_example(self, tx: Tx, e: ExampleRecord) -> tuple[int, bool]:
        row = tx.one(
            "INSERT INTO examples (task, input, output, input_hash, split, teacher_provider,"
            " teacher_model, created_at, cost, request_id, weight, trained_in_version)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (task, input_hash) DO NOTHING RETURNING id",
            (
                e.task,
                canonical_json(e.input),
                canonical_json(e.output),
                e.input_hash,
                e.split,
                e.teacher_provider,
                e.teacher_model,
                codec.to_micros(e.created_at),
                float(e.cost),
                e.request_id,
                float(e.weight),
                e.trained_in_version,
            ),
        )
        if row is not None:
            return int(row[0]), True
        existing = tx.one(
            "SELECT id FROM examples WHERE task = ? AND input_hash = ?", (e.task, e.input_hash)
        )
        assert existing is not None  # the conflict above proves the row exists
        return int(existing[0]), False

    def _insert_comparison(self, tx: Tx, c: ComparisonRecord) -> int:
        row = tx.one(
            "INSERT INTO comparisons (task, request_id, at, score, details, student_version,"
            " phase, sampling_rate) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                c.task,
                c.request_id,
                codec.to_micros(c.at),
                float(c.score),
                canonical_json(c.details),
                c.student_version,
                c.phase,
                c.sampling_rate,
            ),
        )
        assert row is not None
        return int(row[0])

    def _insert_spend(self, tx: Tx, entries: Sequence[SpendRecord]) -> None:
        for s in entries:
            tx.execute(
                "INSERT INTO spend (task, at, amount, kind, request_id, provider, model,"
                " input_tokens, output_tokens) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    s.task,
                    codec.to_micros(s.at),
                    float(s.amount),
                    s.kind,
                    s.request_id,
                    s.provider,
                    s.model,
                    int(s.input_tokens),
                    int(s.output_tokens),
                ),
            )

    def _upsert_state(self, tx: Tx, task: str, state: dict[str, Any], at: datetime) -> None:
        tx.execute(
            "INSERT INTO task_state (task, state, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (task) DO UPDATE SET state = excluded.state,"
            " updated_at = excluded.updated_at",
            (task, canonical_json(state), codec.to_micros(at)),
        )

    def record_spend(self, entries: Sequence[SpendRecord]) -> None:
        with self._write() as tx:
            self._insert_spend(tx, entries)

    # -- examples -----------------------------------------------------------------------------

    def examples(
        self,
        task: str,
        split: Split | None = None,
        limit: int | None = None,
        after_id: int | None = None,
    ) -> list[ExampleRecord]:
        where: list[str] = ["task = ?"]
        params: list[Any] = [task]
        if split is not None:
            where.append("split = ?")
            params.append(split)
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        sql = f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as tx:
            rows = tx.all(sql, params)
        return [codec.example(row) for row in rows]

    def example_counts(self, task: str) -> dict[Split, int]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT split, COUNT(*) FROM examples WHERE task = ? GROUP BY split", (task,)
            )
        counts: dict[Split, int] = {"train": 0, "heldout": 0}
        for split, count in rows:
            counts[cast(Split, split)] = int(count)
        return counts

    def mark_trained(self, task: str, ids: Iterable[int], version: str) -> int:
        marked = 0
        id_list = [int(i) for i in ids]
        with self._write() as tx:
            for start in range(0, len(id_list), 500):
                chunk = id_list[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                marked += tx.execute(
                    "UPDATE examples SET trained_in_version = ? WHERE task = ?"
                    f" AND trained_in_version IS NULL AND id IN ({marks})",
                    (version, task, *chunk),
                )
        return marked

    # -- comparisons, requests, spend ---------------------------------------------------------

    def comparisons(
        self, task: str, since: datetime | None = None, limit: int | None = None
    ) -> list[ComparisonRecord]:
        rows = self._tail("comparisons", _COMPARISON_COLUMNS, "at", "id", task, since, limit)
        return [codec.comparison(row) for row in rows]

    def requests(
        self, task: str, since: datetime | None = None, limit: int | None = None
    ) -> list[RequestRecord]:
        rows = self._tail("requests", _REQUEST_COLUMNS, "received_at", "id", task, since, limit)
        return [codec.request(row) for row in rows]

    def _tail(
        self,
        table: str,
        columns: str,
        at: str,
        tie: str,
        task: str | None,
        since: datetime | None,
        limit: int | None,
        extra: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> list[Row]:
        """Rows in time order; with ``limit``, the most recent ``limit`` of them."""
        where: list[str] = []
        params: list[Any] = []
        if task is not None:
            where.append("task = ?")
            params.append(task)
        if since is not None:
            where.append(f"{at} >= ?")
            params.append(codec.to_micros(since))
        for clause, values in extra:
            where.append(clause)
            params.extend(values)
        sql = f"SELECT {columns} FROM {table}"
        if where:
            sql += f" WHERE {' AND '.join(where)}"
        if limit is None:
            sql += f" ORDER BY {at}, {tie}"
        else:
            sql += f" ORDER BY {at} DESC, {tie} DESC LIMIT {int(limit)}"
        with self._read() as tx:
            rows = tx.all(sql, params)
        return rows if limit is None else rows[::-1]

    def request_counts(self, task: str) -> RequestCounts:
        with self._read() as tx:
            row = tx.one(
                "SELECT requests, teacher_calls, student_answers, errors, comparisons"
                " FROM task_counters WHERE task = ?",
                (task,),
            )
        if row is None:
            return RequestCounts()
        return RequestCounts(*(int(v) for v in row))

    def spend_entries(
        self, task: str | None = None, since: datetime | None = None
    ) -> list[SpendRecord]:
        rows = self._tail("spend", _SPEND_COLUMNS, "at", "id", task, since, None)
        return [codec.spend(row) for row in rows]

    def spend_total(
        self,
        start: datetime,
        end: datetime,
        *,
        task: str | None = None,
        kind: SpendKind | None = None,
    ) -> float:
        where: list[str] = ["at >= ?", "at < ?"]
        params: list[Any] = [codec.to_micros(start), codec.to_micros(end)]
        if task is not None:
            where.append("task = ?")
            params.append(task)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        with self._read() as tx:
            row = tx.one(f"SELECT SUM(amount) FROM spend WHERE {' AND '.join(where)}", params)
        return float(row[0]) if row and row[0] is not None else 0.0

    def spend_by_task(self, start: datetime, end: datetime) -> dict[str, float]:
        with self._read() as tx:
            rows = tx.all(
                "SELECT task, SUM(amount) FROM spend WHERE at >= ? AND at < ?"
                " AND task IS NOT NULL GROUP BY task",
                (codec.to_micros(start), codec.to_micros(end)),
            )
        return {str(task): float(total) for task, total in rows}

    def hourly(
        self,
        task: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[HourBucket]:
        def window(column: str) -> tuple[str, list[Any]]:
            where: list[str] = []
            params: list[Any] = []
            if task is not None:
                where.append("task = ?")
                params.append(task)
            if since is not None:
                where.append(f"{column} >= ?")
                params.append(codec.to_micros(since))
            if until is not None:
                where.append(f"{column} < ?")
                params.append(codec.to_micros(until))
            return (" WHERE " + " AND ".join(where) if where else ""), params

        hour = schema.MICROS_PER_HOUR
        buckets: dict[int, dict[str, Any]] = {}
        with self._read() as tx:
            where, params = window("received_at")
            for h, n, teacher, student, errors in tx.all(
                f"SELECT received_at / {hour} AS h, COUNT(*),"
                " SUM(CASE WHEN route <> 'local_only' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN served_by = 'student' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END)"
                f" FROM requests{where} GROUP BY h",
                params,
            ):
                buckets.setdefault(int(h), {}).update(
                    requests=int(n),
                    teacher_calls=int(teacher),
                    student_answers=int(student),
                    errors=int(errors),
                )
            where, params = window("at")
            for h, total in tx.all(
                f"SELECT at / {hour} AS h, SUM(amount) FROM spend{where} GROUP BY h", params
            ):
                buckets.setdefault(int(h), {})["spend"] = float(total)
            for h, n, mean in tx.all(
                f"SELECT at / {hour} AS h, COUNT(*), AVG(score) FROM comparisons{where} GROUP BY h",
                params,
            ):
                buckets.setdefault(int(h), {}).update(comparisons=int(n), mean_score=float(mean))
        return [
            HourBucket(start=codec.from_micros(h * hour), **fields)
            for h, fields in sorted(buckets.items())
        ]

    # -- model versions -----------------------------------------------------------------------

    def next_version_name(self, task: str) -> str:
        with self._read() as tx:
            row = tx.one("SELECT MAX(number) FROM model_versions WHERE task = ?", (task,))
        highest = int(row[0]) if row and row[0] is not None else 0
        return f"v{highest + 1}"

    def add_version(self, version: ModelVersionRecord) -> ModelVersionRecord:
        v = version
        number = version_number(v.version)
        try:
            with self._write() as tx:
                if v.state == "promoted":
                    self._retire_promoted(tx, v.task, v.version, v.updated_at)
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
        state: VersionState | None = None,
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
