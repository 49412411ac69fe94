"""The store: SQLite (default) and PostgreSQL behind one interface.

``open_store(url)`` picks the backend from the url's scheme and brings the
schema up to date before returning::

    sqlite:///apprentice.db            relative to the working directory
    sqlite:////var/lib/apprentice.db   absolute (four slashes)
    sqlite:///:memory:                 private, in-memory (tests)
    postgresql://user:pass@host/db     any libpq DSN (``postgres://`` too)

Records and the :class:`Store` interface are in :mod:`apprentice.store.records`
and :mod:`apprentice.store.base`; see the latter for threading rules.
"""

from __future__ import annotations

from apprentice.store.base import (
    DuplicateRequestError,
    InvalidTransitionError,
    MigrationError,
    Store,
    StoreError,
    StoreUnavailableError,
    UnknownVersionError,
    UnsupportedStoreUrl,
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
    SpendRecord,
    assign_split,
    input_hash,
)
from apprentice.store.sqlite import SqliteStore

__all__ = [
    "ComparisonRecord",
    "DuplicateRequestError",
    "EventRecord",
    "ExampleRecord",
    "HourBucket",
    "InvalidTransitionError",
    "MigrationError",
    "ModelVersionRecord",
    "RecordResult",
    "RequestCounts",
    "RequestRecord",
    "SpendRecord",
    "Store",
    "StoreError",
    "StoreUnavailableError",
    "UnknownVersionError",
    "UnsupportedStoreUrl",
    "VersionExistsError",
    "assign_split",
    "input_hash",
    "open_store",
]


def open_store(url: str) -> Store:
    """Open (creating and migrating if needed) the store at ``url``.

    Safe to call from several processes at once: migrations take a lock.
    """
    if url.startswith("sqlite:"):
        return SqliteStore.open(url)
    if url.startswith(("postgresql://", "postgres://")):
        # Lazy: psycopg is the optional ``postgres`` extra, not installed with SQLite alone.
        from apprentice.store.postgres import PostgresStore

        return PostgresStore.open(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise UnsupportedStoreUrl(
        f"store url scheme {scheme!r} is not supported: use sqlite:///path/to/file.db "
        "or postgresql://user@host/dbname"
    )
