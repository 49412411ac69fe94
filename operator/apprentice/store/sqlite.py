"""SQLite backend: the embedded default.

Settings and why:

- ``journal_mode=WAL``: readers (``apprentice status``, the trainer reading
  examples) never block the gateway's writes, and a commit is one append.
- ``synchronous=FULL``: every commit fsyncs the WAL before it returns. With
  NORMAL, a power cut could drop the last commits even though the gateway
  had already answered and paid the teacher; an accepted example or spend
  record must never be lost, so the extra fsync per request is the price.
  (Against a killed process alone NORMAL would suffice: the OS keeps the WAL.)
- ``busy_timeout``: other processes' writes wait instead of failing.
- One write connection guarded by a lock: sqlite3 connections are not safe
  to share between threads mid-transaction, and SQLite runs one writer at a
  time anyway. Write transactions start with ``BEGIN IMMEDIATE`` so a writer
  takes the lock up front instead of failing half-way on an upgrade.
- One read-only connection per reading thread: under WAL, reports and status
  read a consistent snapshot without waiting for the writer's fsync. (An
  in-memory store has one connection for everything: nothing else could
  see it.)
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from apprentice.store import schema
from apprentice.store.base import MigrationError, StoreError, StoreUnavailableError
from apprentice.store.sql import SqlStore, Tx

BUSY_TIMEOUT_MS = 30_000


def path_from_url(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise StoreError(
            f"sqlite store url {url!r} names no file: use sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    return url[len(prefix) :]


STATEMENT_CACHE = 512
"""Compiled statements the write connection keeps (the driver's default is 128): a group
commit's multi-row inserts have one statement per table and row count (up to
``sqlcore.MAX_ROWS``: seven tables), and its ``IN`` lists one per length."""


class SqliteStore(SqlStore):
    """The Store on one SQLite file (or ``:memory:``)."""

    dialect = schema.SQLITE

    def __init__(self, path: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(
                path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock instead
                cached_statements=STATEMENT_CACHE,
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open SQLite store {path!r}: {error}") from error
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()  # not self._lock: a writer holds that one
        conn = self._conn
        with self._translated():
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
                if path != ":memory:":
                    self._enable_wal(conn)
                conn.execute("PRAGMA synchronous = FULL")
            except BaseException:
                conn.close()
                raise

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL (a no-op once it is), waiting out other openers.

        Changing the journal mode needs an exclusive lock, and SQLite reports
        "database is locked" at once instead of calling the busy handler when
        several processes open a fresh file together, so retry here.
        """
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)  # back off from a lock another opener holds
        if str(mode).lower() != "wal":
            raise StoreError(f"SQLite store {self.path!r} could not switch to WAL (got {mode})")

    @classmethod
    def open(cls, url: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> SqliteStore:
        store = cls(path_from_url(url), busy_timeout_ms=busy_timeout_ms)
        try:
            with store._write() as tx:
                store._migrate(tx)
        except (MigrationError, StoreUnavailableError):
            store.close()
            raise
        except sqlite3.Error as error:
            store.close()
            raise MigrationError(
                f"migrating SQLite store {store.path!r} failed: {error}"
            ) from error
        return store

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """sqlite3's errors -> ours, naming the file (never a secret: it is a path)."""
        try:
            yield
        except sqlite3.OperationalError as error:
            raise StoreUnavailableError(
                f"SQLite store {self.path!r} failed: {error} (disk full, read-only, or "
                f"locked by another process for over {self.busy_timeout_ms} ms?)"
            ) from error
        except sqlite3.Error as error:
            raise StoreError(f"SQLite store {self.path!r} failed: {error}") from error

    @contextlib.contextmanager
    def _write(self) -> Iterator[Tx]:
        with self._lock, self._translated():
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(conn.cursor(), self.dialect)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # also after a failed COMMIT
                    conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _read(self) -> Iterator[Tx]:
        if self.path == ":memory:":
            with self._lock, self._translated():
                yield Tx(self._connection().cursor(), self.dialect)
            return
        self._connection()  # raises once closed
        with self._translated():
            reader = self._reader()
            # One snapshot for the whole read, even when it runs several queries.
            reader.execute("BEGIN")
            try:
                yield Tx(reader.cursor(), self.dialect)
            finally:
                reader.execute("COMMIT")

    def _reader(self) -> sqlite3.Connection:
        """This thread's read-only connection, opened on first use."""
        reader: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,  # used by this thread only; closed by close()
            )
            reader.execute("PRAGMA query_only = ON")
            with self._readers_lock:
                self._readers.append(reader)
            self._local.reader = reader
        return reader

    def _is_unique_violation(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.IntegrityError) and "UNIQUE" in str(error).upper()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()
