"""Shared fixtures: a real PostgreSQL server for the whole session, and store urls.

Fixtures other suites may reuse:

- ``pg_server_dsn`` (session): the admin DSN of a throwaway PostgreSQL server
  started for this test session (or ``APPRENTICE_TEST_POSTGRES_DSN``, a
  ``postgresql://`` url, to reuse an existing server). Started only if a test asks for it.
- ``postgresql_url`` (function): a ``postgresql://`` url whose tables live in
  a fresh, empty schema (``search_path`` pinned in the url), dropped after.
- ``sqlite_url`` (function): ``sqlite:///<tmp_path>/apprentice.db``.
- ``store_url`` (function): parametrised ``[sqlite, postgresql]``; a test that
  takes it runs once per backend. Pass it to ``apprentice.store.open_store``
  or to ``StoreConfig(url=...)``.

The server is never skipped: missing binaries fail the session with the fix.
PostgreSQL refuses to run as root, and CI runs as root, so as root the server
runs as the ``postgres`` user (``runuser``) in a directory it owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from hypothesis import settings

# Property tests state what holds, never how fast: Hypothesis's default 200 ms deadline
# (and its too-slow health check, 5 deadlines of drawing) turns a busy machine's pause
# into a failure that passes on rerun. Speed is measured in bench/, not here.
settings.register_profile("apprentice", deadline=None)
settings.load_profile("apprentice")


def _pg_bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live: PATH first, then Debian's layout."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found (pg_ctl): install them with "
            "`apt-get install postgresql` (what .ci/run does)"
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _throwaway_server() -> Iterator[str]:
    """initdb + pg_ctl start in a temp dir; yields the admin DSN; stops and removes it."""
    bin_dir = _pg_bin_dir()
    base = Path(tempfile.mkdtemp(prefix="apprentice-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")  # created by the Debian package
        os.chown(base, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=base)

    # fsync off: durability against a crashed *server* is PostgreSQL's job, not ours.
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off"
    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N")
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "log"),
            "-w",
            "-o",
            options,
            "start",
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as error:
        log = base / "log"
        detail = log.read_text() if log.exists() else error.stderr.decode(errors="replace")
        raise RuntimeError(f"could not start PostgreSQL for the tests: {detail}") from error
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                cwd=base,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    external = os.environ.get("APPRENTICE_TEST_POSTGRES_DSN")
    if external:
        yield external
        return
    with _throwaway_server() as dsn:
        yield dsn


@pytest.fixture
def postgresql_url(pg_server_dsn: str) -> Iterator[str]:
    # A schema per test, not a database: CREATE DATABASE copies a template and
    # costs ~0.3 s; a schema is milliseconds and just as isolated for
    # unqualified names (the url pins search_path to it).
    name = f"apprentice_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    parts = urlsplit(pg_server_dsn)
    query = "&".join(filter(None, [parts.query, f"options=-csearch_path%3D{name}"]))
    yield parts._replace(query=query).geturl()
    with psycopg.connect(pg_server_dsn, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/apprentice.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """One url per backend; PostgreSQL starts only when a postgresql case runs."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgresql_url"
    return str(request.getfixturevalue(fixture))
