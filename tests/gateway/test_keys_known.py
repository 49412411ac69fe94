"""KeyRing.known: check's answer without a coroutine for a remembered header, else None."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from apprentice.gateway import auth, errors
from apprentice.store import open_store
from apprentice.store.api_keys import ApiKeyRecord


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_known_answers_only_a_remembered_header_as_check_would(tmp_path: Path) -> None:
    clock = _Clock()
    with open_store(f"sqlite:///{tmp_path}/keys.db") as store:
        key_id, token = auth.mint()
        store.add_api_key(
            ApiKeyRecord(key_id, auth.digest(token), ("classify",), "ci", datetime.now(UTC))
        )
        ring = auth.KeyRing(
            lambda: store, required=True, admin_token_env="GW_TEST_NO_ADMIN", clock=clock
        )
        header = f"Bearer {token}"
        assert ring.known(header, "classify") is None  # never checked: check must read it
        checked = await ring.check(header, "classify")
        found = ring.known(header, "classify")
        assert checked is not None and found is not None and found.id == key_id
        with pytest.raises(errors.ApiKeyWrongTask):
            ring.known(header, "summarize")
        assert ring.known("Bearer not-a-key", "classify") is None
        clock.now += auth.CACHE_S + 0.01  # its read went stale: check reads it again
        assert ring.known(header, "classify") is None
        store.revoke_api_key(key_id, datetime.now(UTC))
        with pytest.raises(errors.ApiKeyRevoked):
            await ring.check(header, "classify")
        assert ring.known(header, "classify") is None
        # Keys not required: nothing is checked, so nothing is known either.
        anyone = auth.KeyRing(lambda: store, required=False, admin_token_env="GW_TEST_NO_ADMIN")
        assert anyone.known(header, "classify") is None
