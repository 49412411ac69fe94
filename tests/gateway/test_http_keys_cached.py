"""The key check remembers a header that proved valid (``auth.KeyRing``), so a repeat
caller's check is one dict lookup. What remembering may not change:

- the store is read once per key per ``auth.CACHE_S``, however many requests;
- a key revoked through another replica (here: straight in the store) stops within
  ``CACHE_S``, and one revoked through this gateway at once;
- the task scope applies to every request, a remembered one too;
- a token that is not valid is never remembered;
- the requests in flight when a key's read goes stale share one read, and a revocation
  made here while it is in flight wins over what it read.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from apprentice.gateway import auth, errors
from apprentice.store import Store, open_store
from apprentice.store.api_keys import ApiKeyRecord


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _CountingStore:
    """The real store, counting its key reads."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads: list[str] = []

    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        self.reads.append(key_id)
        return self.store.api_key(key_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _key(store: Store, tasks: tuple[str, ...]) -> tuple[str, str]:
    key_id, token = auth.mint()
    store.add_api_key(ApiKeyRecord(key_id, auth.digest(token), tasks, "ci", datetime.now(UTC)))
    return key_id, token


def _ring(store: _CountingStore, clock: _Clock) -> auth.KeyRing:
    """Keys required, no admin token, reading ``store`` (counting its reads)."""
    return auth.KeyRing(
        lambda: cast(Store, store), required=True, admin_token_env="GW_TEST_NO_ADMIN",
        clock=clock,
    )  # fmt: skip


async def test_a_remembered_header_lives_as_long_as_its_store_read(tmp_path: Path) -> None:
    clock = _Clock()
    with open_store(f"sqlite:///{tmp_path}/keys.db") as real:
        store = _CountingStore(real)
        ring = _ring(store, clock)
        key_id, token = _key(real, ("classify",))
        header = f"Bearer {token}"
        for _ in range(100):
            found = await ring.check(header, "classify")
            assert found is not None and found.id == key_id
        assert store.reads == [key_id]
        with pytest.raises(errors.ApiKeyWrongTask):
            await ring.check(header, "summarize")
        # Revoked through another replica: this one learns it within CACHE_S.
        real.revoke_api_key(key_id, datetime.now(UTC))
        clock.now += auth.CACHE_S - 0.01
        assert await ring.check(header, "classify") is not None
        clock.now += 0.02
        with pytest.raises(errors.ApiKeyRevoked):
            await ring.check(header, "classify")
        assert store.reads == [key_id, key_id]
        with pytest.raises(errors.ApiKeyRevoked):  # the same token, spaced otherwise
            await ring.check(f"Bearer  {token} ", "classify")


async def test_revoked_here_stops_at_once_and_a_wrong_token_is_never_remembered(
    tmp_path: Path,
) -> None:
    clock = _Clock()
    with open_store(f"sqlite:///{tmp_path}/keys.db") as real:
        ring = auth.KeyRing(
            lambda: real, required=True, admin_token_env="GW_TEST_NO_ADMIN", clock=clock
        )
        key_id, token = _key(real, ("classify",))
        assert await ring.check(f"Bearer {token}", "classify") is not None
        await ring.revoke(key_id)
        with pytest.raises(errors.ApiKeyRevoked):
            await ring.check(f"Bearer {token}", "classify")
        other_id, other = _key(real, ("classify",))
        mistyped = f"Bearer {other[:-3]}{'A' if other[-3] != 'A' else 'B'}{other[-2:]}"
        for _ in range(2):
            with pytest.raises(errors.ApiKeyInvalid):
                await ring.check(mistyped, "classify")
        found = await ring.check(f"Bearer {other}", "classify")
        assert found is not None and found.id == other_id


class _HeldStore(_CountingStore):
    """Reads the key; the first read after ``read`` is cleared holds its answer until
    ``release`` (``read`` says it has read)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.read, self.release = threading.Event(), threading.Event()

    def api_key(self, key_id: str) -> ApiKeyRecord | None:
        found = super().api_key(key_id)
        if not self.read.is_set():
            self.read.set()
            self.release.wait(30)
        return found


async def test_a_stale_read_is_shared_and_a_revocation_here_meanwhile_wins(
    tmp_path: Path,
) -> None:
    clock = _Clock()
    with open_store(f"sqlite:///{tmp_path}/keys.db") as real:
        store = _HeldStore(real)
        ring = _ring(store, clock)
        key_id, token = _key(real, ("classify",))
        header = f"Bearer {token}"
        store.read.set()
        assert await ring.check(header, "classify") is not None
        store.read.clear()
        clock.now += auth.CACHE_S
        checks = [asyncio.create_task(ring.check(header, "classify")) for _ in range(50)]
        await asyncio.to_thread(store.read.wait, 30)  # read unrevoked, answer held
        await ring.revoke(key_id)
        store.release.set()
        found = await asyncio.gather(*checks, return_exceptions=True)
        assert all(isinstance(f, errors.ApiKeyRevoked) for f in found), found
        assert store.reads == [key_id, key_id]
        with pytest.raises(errors.ApiKeyRevoked):
            await ring.check(header, "classify")
