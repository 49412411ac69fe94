"""An API key as the store keeps it (the record; the rows are in :mod:`.keyrows`).

Only what checking a key needs is kept: its public id (the prefix of the token,
safe to show), the SHA-256 of the whole token, the tasks it may call, a label and
when it was created or revoked. The token itself is never stored, so a leaked
database does not leak usable keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

__all__ = ["ApiKeyRecord"]


@dataclass(frozen=True)
class ApiKeyRecord:
    """One API key: ``id`` is public, ``secret_hash`` the SHA-256 (hex) of the whole token."""

    id: str
    secret_hash: str
    tasks: tuple[str, ...]
    name: str | None
    created_at: datetime
    revoked_at: datetime | None = None
    rate_per_s: float | None = None  # requests per second it may make (None: no limit)
    budget: Mapping[str, float] | None = None
    """Spend caps of the key across its tasks: ``daily``/``weekly``/``monthly`` in the
    budget currency (None: none), enforced by the gateway's reserve/settle ledger."""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def public(self) -> dict[str, object]:
        """What the admin API and CLI show: never the hash, never the token."""
        return {
            "id": self.id,
            "name": self.name,
            "tasks": list(self.tasks),
            "created_at": self.created_at.isoformat(),
            "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
            "rate_per_s": self.rate_per_s,
            "budget": None if self.budget is None else dict(self.budget),
        }
