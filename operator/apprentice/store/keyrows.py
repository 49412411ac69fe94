"""API key rows (behind :mod:`apprentice.gateway.auth`); the record is in :mod:`.api_keys`.

Keys are rare writes and cached reads: the gateway reads a key once and keeps it
for a few seconds, so these are plain one-statement transactions.
"""

from __future__ import annotations

from datetime import datetime

from apprentice.prompts import canonical_json
from apprentice.store import codec
from apprentice.store.api_keys import ApiKeyRecord
from apprentice.store.sqlcore import SqlCore

__all__ = ["KeyRows"]

_KEY_COLUMNS = "id, secret_hash, tasks, name, created_at, revoked_at, rate_per_s, budget"


def _key(row: tuple[object, ...]) -> ApiKeyRecord:
    tasks = codec.load_json(row[2]).get("tasks", [])
    revoked = row[5]
    return ApiKeyRecord(
        id=str(row[0]),
        secret_hash=str(row[1]),
        tasks=tuple(str(t) for t in tasks),
        name=None if row[3] is None else str(row[3]),
        created_at=codec.from_micros(int(str(row[4]))),
        revoked_at=None if revoked is None else codec.from_micros(int(str(revoked))),
        rate_per_s=None if row[6] is None else float(str(row[6])),
        budget=None if row[7] is None else {
            str(k): float(v) for k, v in codec.load_json(row[7]).items()
        },
    )  # fmt: skip


class KeyRows(SqlCore):
    """API key rows."""

    def add_api_key(self, key: ApiKeyRecord) -> None:
        with self._write() as tx:
            tx.execute(
                f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.id,
                    key.secret_hash,
                    canonical_json({"tasks": list(key.tasks)}),
                    key.name,
                    codec.to_micros(key.created_at),
                    None,
                    key.rate_per_s,
                    None if key.budget is None else canonical_json(dict(key.budget)),
                ),
            )

    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._read() as tx:
            row = tx.one(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        return None if row is None else _key(row)

    def api_keys(self) -> list[ApiKeyRecord]:
        with self._read() as tx:
            rows = tx.all(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id")
        return [_key(row) for row in rows]

    def revoke_api_key(self, key_id: str, at: datetime) -> ApiKeyRecord | None:
        with self._write() as tx:
            tx.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (codec.to_micros(at), key_id),
            )
            row = tx.one(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        return None if row is None else _key(row)
