"""Backend-specific behaviour: settings, urls, and driver failures as typed errors."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from apprentice.store import (
    RequestRecord,
    StoreError,
    StoreUnavailableError,
    open_store,
)
from apprentice.store.postgres import APPLICATION_NAME, PostgresStore, describe
from apprentice.store.sqlite import SqliteStore, path_from_url

NOW = datetime(2025, 3, 10, tzinfo=UTC)


def request(rid: str) -> RequestRecord:
    return RequestRecord(id=rid, task="t", received_at=NOW, route="local_only", served_by="student")


def test_sqlite_urls_relative_absolute_and_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert path_from_url("sqlite:///data/a.db") == "data/a.db"
    assert path_from_url("sqlite:////var/lib/a.db") == "/var/lib/a.db"
    with pytest.raises(StoreError, match="names no file"):
        path_from_url("sqlite:///")
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///nested/dir/apprentice.db") as store:
        store.record_request(request("r1"))
    assert (tmp_path / "nested" / "dir" / "apprentice.db").exists()
    with open_store("sqlite:///:memory:") as memory:
        memory.record_request(request("r1"))
        assert memory.request_counts("t").requests == 1


def test_sqlite_runs_wal_with_full_sync(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        assert isinstance(store, SqliteStore)
        with store._write() as tx:
            assert tx.one("PRAGMA journal_mode") == ("wal",)
            assert tx.one("PRAGMA synchronous") == (2,)  # FULL


def test_sqlite_lock_timeout_is_a_typed_error_and_recovers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/locked.db"
    store = SqliteStore.open(url, busy_timeout_ms=50)
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(StoreUnavailableError, match="locked"):
        store.record_request(request("r1"))
    other.execute("ROLLBACK")
    other.close()
    store.record_request(request("r1"))
    assert store.request_counts("t").requests == 1
    store.close()


def test_postgres_errors_never_show_the_password() -> None:
    dsn = "postgresql://apprentice:s3cret-pw@127.0.0.1:1/db"
    assert "s3cret" not in describe(dsn)
    assert "s3cret" not in repr(PostgresStore(dsn))
    with pytest.raises(StoreUnavailableError) as caught:
        open_store(dsn)
    assert "s3cret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


def test_postgres_reconnects_after_losing_its_connections(
    postgresql_url: str, pg_server_dsn: str
) -> None:
    with open_store(postgresql_url) as store:
        store.record_request(request("r1"))
        # The timeout argument makes it wait until the backend is gone, so the
        # next query surely meets a dead connection.
        with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (APPLICATION_NAME,),
            ).fetchall()
        assert killed and all(ok for (ok,) in killed)  # the pooled connection was there
        with pytest.raises(StoreUnavailableError, match="retry"):
            store.record_request(request("r2"))
        store.record_request(request("r2"))  # a fresh connection replaces the broken one
        assert store.request_counts("t").requests == 2
