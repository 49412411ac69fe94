"""PostgreSQL backend (psycopg 3): for several gateway replicas sharing one store.

A small lock-guarded pool of autocommit connections (``psycopg_pool`` is not
a dependency): each write runs in ``connection.transaction()`` and commits
with the server's ``synchronous_commit`` (on by default: durable on return).
JSON columns are ``JSONB``. Migrations take a transaction-scoped advisory
lock, so replicas starting together migrate once.

The DSN can carry a password; it never appears in our errors or reprs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import conninfo, errors

from apprentice.store import schema
from apprentice.store.base import MigrationError, StoreError, StoreUnavailableError
from apprentice.store.sql import SqlStore, Tx

# Any constant shared by every Apprentice process: "apprenti" in ASCII.
MIGRATION_LOCK_KEY = 0x61707072656E7469
DEFAULT_POOL_SIZE = 4
CONNECT_TIMEOUT_S = 10
APPLICATION_NAME = "apprentice"  # shows in pg_stat_activity


def _nul_path(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in str(key):
                return f"{path} (a key)"
            found = _nul_path(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


def describe(dsn: str) -> str:
    """The DSN without its password, for error messages."""
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"postgresql://{parts.get('user') or ''}@{host}:{port}/{parts.get('dbname') or ''}"


class PostgresStore(SqlStore):
    """The Store on a PostgreSQL database."""

    dialect = schema.POSTGRES

    def __init__(self, dsn: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self._dsn = dsn
        self._where = describe(dsn)
        self._idle: list[psycopg.Connection[tuple[object, ...]]] = []
        self._slots = threading.BoundedSemaphore(pool_size)
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresStore({self._where!r})"

    @classmethod
    def open(cls, url: str, *, pool_size: int = DEFAULT_POOL_SIZE) -> PostgresStore:
        store = cls(url, pool_size=pool_size)
        try:
            with store._write() as tx:
                tx.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))
                store._migrate(tx)
        except (MigrationError, StoreUnavailableError):
            store.close()
            raise
        except StoreError as error:
            store.close()
            raise MigrationError(
                f"migrating the PostgreSQL store at {store._where} failed: {error}"
            ) from error
        return store

    def _new_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name=APPLICATION_NAME,
            )
        except psycopg.OperationalError as error:
            raise StoreUnavailableError(
                f"cannot connect to the PostgreSQL store at {self._where}: {error}; "
                "check store.url and that the server is running"
            ) from error

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """Borrow a pooled connection; a broken one is dropped instead of returned."""
        if self._closed:
            raise StoreError("the store is closed")
        with self._slots:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed or conn.broken:
                conn = self._new_connection()
            try:
                yield conn
            finally:
                if conn.closed or conn.broken or self._closed:
                    conn.close()
                else:
                    with self._lock:
                        self._idle.append(conn)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """psycopg's errors -> ours, naming the server without the DSN's password."""
        try:
            yield
        except psycopg.OperationalError as error:
            raise StoreUnavailableError(
                f"the PostgreSQL store at {self._where} failed: {error}; the write did not "
                "happen, retry once the server is reachable"
            ) from error
        except psycopg.Error as error:
            raise StoreError(f"the PostgreSQL store at {self._where} failed: {error}") from error

    @contextlib.contextmanager
    def _write(self) -> Iterator[Tx]:
        with (
            self._translated(),
            self._connection() as conn,
            conn.transaction(),
            conn.cursor() as cursor,
        ):
            yield Tx(cursor, self.dialect)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Tx]:
        with self._translated(), self._connection() as conn, conn.cursor() as cursor:
            yield Tx(cursor, self.dialect)

    def unstorable(self, value: Any) -> str | None:
        """JSONB and TEXT refuse the NUL character (``\\u0000``) anywhere in a string."""
        where = _nul_path(value, "input")
        if where is None:
            return None
        return (
            f"{where} contains the NUL character (\\u0000), which the PostgreSQL store cannot "
            "keep; remove it (the teacher is not called for an input that could not be stored)"
        )

    def _is_unique_violation(self, error: BaseException) -> bool:
        return isinstance(error, errors.UniqueViolation)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
