"""The SQL core both backends share: transactions' cursor wrapper, hooks, migrations.

The Store is written once in SQL over this core: :mod:`apprentice.store.requests`
(the request transaction, examples, spend, report queries),
:mod:`apprentice.store.versions` (model versions, events, engine state) and
:mod:`apprentice.store.budget` (reservations and window totals), combined in
:class:`apprentice.store.sql.SqlStore`. Backends supply
connections and transactions (:meth:`SqlCore._write`, :meth:`SqlCore._read`),
the :class:`~apprentice.store.schema.Dialect`, and how their driver reports a
unique-key violation, so the two backends cannot drift apart.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import Any, Protocol

from apprentice.prompts import canonical_json
from apprentice.store import codec, schema
from apprentice.store.base import MigrationError, Store

Row = tuple[Any, ...]


class Cursor(Protocol):
    """The slice of DB-API 2 both sqlite3 and psycopg cursors provide."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


def time_filter(
    column: str, task: str | None, since: datetime | None, until: datetime | None = None
) -> tuple[list[str], list[Any]]:
    """``WHERE`` clauses and their values: one task (``None``: all) and ``[since, until)``
    on ``column`` (either bound ``None``: open)."""
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
    return where, params


class Tx:
    """A cursor inside one transaction, speaking the store's ``?`` SQL."""

    def __init__(self, cursor: Cursor, dialect: schema.Dialect) -> None:
        self._cursor = cursor
        self._dialect = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(self._dialect.sql(sql), tuple(params))
        return self._cursor.rowcount

    def insert_rows(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> None:
        """``head VALUES (...), (...) tail`` for every row, in order: a few statements, not one
        per row (none for no rows).

        Why not the driver's ``executemany``: it still steps each row on its own, and on
        SQLite each step hands the GIL to the event loop and waits to get it back (up to
        the switch interval while the loop is busy), which made the gateway's writer
        wait more than it worked under load. One statement holds up to
        ``MAX_ROWS`` rows, within SQLite's oldest limit of 999 values; the SQLite
        backend's statement cache keeps each size's statement compiled.
        """
        if not rows:
            return
        width, left, at = len(rows[0]), len(rows), 0
        while left:
            size = _chunk(left, width)
            chunk = rows if size == len(rows) else rows[at : at + size]
            sql = self._dialect.sql(_rows_statement(head, tail, width, size))
            self._cursor.execute(sql, tuple(chain.from_iterable(chunk)))
            at, left = at + size, left - size

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        self._cursor.execute(self._dialect.sql(sql), tuple(params))
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(self._dialect.sql(sql), tuple(params))
        return [tuple(row) for row in self._cursor.fetchall()]


MAX_ROWS = 64
"""Rows in one multi-row statement (:meth:`Tx.insert_rows`)."""


@lru_cache(maxsize=256)
def _rows_statement(head: str, tail: str, width: int, size: int) -> str:
    """``head VALUES (?, ...), ... tail`` for ``size`` rows of ``width`` values: the same few
    shapes every group commit (built once, not per statement on the writer thread)."""
    marks = "(" + ", ".join("?" * width) + ")"
    return f"{head} VALUES {', '.join([marks] * size)}{tail}"


def _chunk(left: int, width: int) -> int:
    """Rows in the next statement: all that are left, up to ``MAX_ROWS`` and 999 values."""
    return max(1, min(left, MAX_ROWS, 999 // max(width, 1)))


class SqlCore(Store):
    """Hooks, migrations and helpers; see the module docstring."""

    dialect: schema.Dialect

    # -- backend hooks ------------------------------------------------------------------------

    @abc.abstractmethod
    def _write(self) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction: commit (durably) on success, roll back on any error."""

    @abc.abstractmethod
    def _read(self) -> contextlib.AbstractContextManager[Tx]:
        """A read-only view (may be a transaction)."""

    @abc.abstractmethod
    def _translated(self) -> contextlib.AbstractContextManager[None]:
        """Re-raise the driver's errors as :class:`StoreError` / ``StoreUnavailableError``."""

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

    def _upsert_state(self, tx: Tx, task: str, state: dict[str, Any], at: datetime) -> None:
        tx.execute(
            "INSERT INTO task_state (task, state, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (task) DO UPDATE SET state = excluded.state,"
            " updated_at = excluded.updated_at",
            (task, canonical_json(state), codec.to_micros(at)),
        )

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
        where, params = time_filter(at, task, since)
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
