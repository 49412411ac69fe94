"""Who may call: the admin token, and API keys for the task and chat APIs.

A key is a bearer token ``apk_<id>_<secret>``: ``id`` (12 hex digits) is public and
names the key in listings, logs and errors; the store keeps only the SHA-256 of the
whole token, so the token is shown once, when it is created, and never again.
Each key is scoped to tasks. With ``gateway.require_api_keys`` (off by default on a
laptop, on in the Helm chart) the task API, the chat API, ``/v1/models`` and a
task's ``/state`` need a key for that task (or the admin token); without it they
stay open, as before, and only ``/admin`` needs the token.

Failures name the problem and never the token: 401 ``api_key_missing`` or
``api_key_invalid``, 403 ``api_key_revoked`` or ``api_key_wrong_task``, and 429
``rate_limited`` (with ``Retry-After``) past a key's ``rate_per_s``: a token bucket per
key holding one second of requests (at least one), kept by each gateway replica.

Keys are read from the store and kept for ``CACHE_S`` seconds, so a request does
not pay a database read; a key revoked through this gateway stops working at once,
one revoked through another replica within ``CACHE_S``. A header that proved valid is
remembered (its key id) while the key's read is fresh, so a repeat caller's check is one
dict lookup (no regex, no environment read, no SHA-256: about a sixth of the full
check, which was ~6% of a local-only request's event-loop instructions).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from apprentice.gateway import errors
from apprentice.store import Store
from apprentice.store.api_keys import ApiKeyRecord

__all__ = ["CACHE_S", "KeyBudget", "KeyRing", "digest", "mint"]

CACHE_S = 5.0
_TOKEN = re.compile(r"^apk_([0-9a-f]{12})_[A-Za-z0-9_-]{20,}$")


class KeyBudget(BaseModel):
    """A key's own spend caps across its tasks, in the budget currency (none: uncapped).

    Each window binds on its own (a daily cap above the monthly one just never binds).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    daily: float | None = Field(default=None, gt=0, description="Cap per calendar day.")
    weekly: float | None = Field(default=None, gt=0, description="Cap per ISO week.")
    monthly: float | None = Field(default=None, gt=0, description="Cap per calendar month.")


def mint() -> tuple[str, str]:
    """A new ``(id, token)``: 48 random bits of public id, 256 of secret."""
    key_id = secrets.token_hex(6)
    return key_id, f"apk_{key_id}_{secrets.token_urlsafe(32)}"


def digest(token: str) -> str:
    """What the store keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return given.strip()


def _undecodable(text: str) -> bool:
    """aiohttp keeps header bytes that are not UTF-8 as lone surrogates."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


class KeyRing:
    """Creates, lists, revokes and checks keys against one store (see the module docstring)."""

    def __init__(
        self,
        store: Callable[[], Store],
        *,
        required: bool,
        admin_token_env: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.required = required
        self._admin_env = admin_token_env
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiKeyRecord | None]] = {}
        # Authorization header -> key id: headers that proved valid, never the admin token;
        # trusted while their key's read in _cache is fresh and not revoked. A dict lookup
        # by the secret leaks no timing an attacker can use: str hashes are keyed per
        # process, so a wrong token's lookup ends at the hash, never in a comparison.
        self._verified: dict[str, tuple[str, str]] = {}  # -> (key id, its secret's hash)
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when)
        self._reads: dict[str, asyncio.Task[ApiKeyRecord | None]] = {}  # key id -> its read

    # -- the admin token -------------------------------------------------------------------

    def is_admin(self, token: str | None) -> bool:
        """Whether ``token`` is the admin token (constant-time; False when none is set)."""
        expected = os.environ.get(self._admin_env, "")
        if not expected or token is None:
            return False
        try:
            presented = token.encode()
        except UnicodeEncodeError:  # aiohttp keeps undecodable header bytes as surrogates
            return False
        return hmac.compare_digest(presented, expected.encode())

    def admin(self, header: str) -> None:
        """Raise 401 unless ``header`` carries the admin token."""
        if not os.environ.get(self._admin_env, ""):
            raise errors.Unauthorized(
                f"the admin API is disabled: set the environment variable {self._admin_env}"
            )
        token = bearer(header)
        if token is not None and not token.isascii() and _undecodable(token):
            raise errors.Unauthorized(
                "the Authorization header is not valid UTF-8; send 'Bearer <token>'"
            )
        if not self.is_admin(token):
            raise errors.Unauthorized("missing or wrong admin token (Authorization: Bearer ...)")

    # -- keys on the task and chat APIs ----------------------------------------------------

    async def check(self, header: str, task: str | None) -> ApiKeyRecord | None:
        """The key calling ``task`` (``None``: any task; admin token or keys not required).

        Raises 401/403 as the module docstring says; never names the token.
        """
        if not self.required:
            return None
        key = self._remembered(header)
        if key is None:
            key = await self._verify(header)
            if key is None:
                return None
        return self._admit(key, task)

    def known(self, header: str, task: str | None) -> ApiKeyRecord | None:
        """:meth:`check`'s answer, without a coroutine, for a header remembered as valid
        (the usual request when keys are required); ``None``: ask :meth:`check`."""
        key = self._remembered(header) if self.required else None
        return None if key is None else self._admit(key, task)

    def _admit(self, key: ApiKeyRecord, task: str | None) -> ApiKeyRecord:
        """``key`` may call ``task`` now: 403 for another task, 429 past its rate."""
        if task is not None and task not in key.tasks:
            raise errors.ApiKeyWrongTask(
                f"API key {key.id} may call {', '.join(key.tasks)}, not {task!r}",
                details={"key_id": key.id, "tasks": list(key.tasks), "task": task},
            )
        if key.rate_per_s is not None:
            self._take(key.id, key.rate_per_s)
        return key

    def _remembered(self, header: str) -> ApiKeyRecord | None:
        """The key of a header that proved valid, while its read is fresh and unrevoked."""
        known = self._verified.get(header)
        seen = None if known is None else self._cache.get(known[0])
        if seen is None or seen[1] is None or seen[1].revoked:
            return None
        return seen[1] if self._clock() - seen[0] < CACHE_S else None

    async def _verify(self, header: str) -> ApiKeyRecord | None:
        """The full check of a header not remembered (``None``: the admin token). One
        remembered whose key's read went stale only has the key read again (shared)."""
        known = self._verified.get(header)
        if known is not None:
            key = await self._lookup(known[0])
            if key is not None and key.secret_hash == known[1]:  # the token checked before
                return _unrevoked(key)
        token = bearer(header)
        if token is None:
            raise errors.ApiKeyMissing(
                "this gateway requires an API key: send 'Authorization: Bearer <key>' "
                "(create one with `apprentice keys create`)"
            )
        if self.is_admin(token):
            return None
        match = _TOKEN.match(token)
        key = await self._lookup(match.group(1)) if match else None
        if key is None or not hmac.compare_digest(key.secret_hash, digest(token)):
            raise errors.ApiKeyInvalid("the API key is not valid (unknown or mistyped)")
        _unrevoked(key)
        if len(header) <= 200:  # a token padded with spaces is valid, not worth keeping
            if len(self._verified) >= 10_000:  # many keys or a churn of them: start afresh
                self._verified.clear()
            self._verified[header] = (key.id, key.secret_hash)
        return key

    def _take(self, key_id: str, rate: float) -> None:
        """One request from the key's bucket, or 429 saying when the next one fits."""
        now = self._clock()
        burst = max(1.0, rate)
        tokens, then = self._buckets.get(key_id, (burst, now))
        tokens = min(burst, tokens + (now - then) * rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            wait = (1.0 - tokens) / rate
            raise errors.RateLimited(
                f"API key {key_id} is limited to {rate:g} requests/s; retry in {wait:.2f} s",
                retry_after_s=wait,
                details={"key_id": key_id, "rate_per_s": rate},
            )
        self._buckets[key_id] = (tokens - 1.0, now)

    async def _lookup(self, key_id: str) -> ApiKeyRecord | None:
        """The key or None, from the store at most every ``CACHE_S``. The callers that find
        its read stale together (every request in flight with the key) share one read."""
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        read = self._reads.get(key_id)
        if read is None or read.done():  # done here: cancelled before it started
            read = asyncio.ensure_future(self._read(key_id, now, cached))
            read.add_done_callback(_retrieved)
            self._reads[key_id] = read
        return await asyncio.shield(read)  # a caller that gives up leaves the read to others

    async def _read(
        self, key_id: str, now: float, before: tuple[float, ApiKeyRecord | None] | None
    ) -> ApiKeyRecord | None:
        try:
            key = await asyncio.to_thread(self._store().api_key, key_id)
        finally:
            del self._reads[key_id]
        newer = self._cache.get(key_id)
        if newer is not None and newer is not before:  # revoked here meanwhile: that wins
            return newer[1]
        if len(self._cache) > 10_000:  # unknown ids from a scanner must not grow it forever
            self._cache.clear()
        self._cache[key_id] = (now, key)
        return key

    # -- administration ----------------------------------------------------------------------

    async def create(
        self,
        tasks: Sequence[str],
        name: str | None,
        known: Sequence[str],
        rate_per_s: float | None = None,
        budget: Mapping[str, float] | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key for ``tasks`` and its token (the only time the token exists).

        ``budget``: the key's own spend caps (``daily``/``weekly``/``monthly``), checked
        at every reservation of its requests (:mod:`apprentice.gateway.spending`).
        """
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise errors.BadRequest(
                f"tasks: no task named {', '.join(map(repr, unknown))}; "
                f"configured tasks: {', '.join(known)}",
                details=[{"path": "tasks", "message": f"unknown task {t!r}"} for t in unknown],
            )
        caps = _budget(budget)
        key_id, token = mint()
        key = ApiKeyRecord(
            id=key_id,
            secret_hash=digest(token),
            tasks=tuple(dict.fromkeys(tasks)),
            name=name,
            created_at=datetime.now(UTC),
            rate_per_s=rate_per_s,
            budget=caps,
        )
        await asyncio.to_thread(self._store().add_api_key, key)
        return key, token

    async def list(self) -> list[ApiKeyRecord]:
        return await asyncio.to_thread(self._store().api_keys)

    async def revoke(self, key_id: str) -> ApiKeyRecord:
        """Revoke at once on this gateway; 404 naming the id when there is no such key."""
        key = await asyncio.to_thread(self._store().revoke_api_key, key_id, datetime.now(UTC))
        if key is None:
            raise errors.NotFound(f"no API key with id {key_id!r}", details={"key_id": key_id})
        self._cache[key_id] = (self._clock(), key)  # revoked: its remembered headers stop here
        return key


def _unrevoked(key: ApiKeyRecord) -> ApiKeyRecord:
    if key.revoked:
        raise errors.ApiKeyRevoked(f"API key {key.id} was revoked", details={"key_id": key.id})
    return key


def _retrieved(read: asyncio.Task[ApiKeyRecord | None]) -> None:
    """A read's error reaches its callers; if all of them gave up, nobody is told."""
    if not read.cancelled():
        read.exception()


def _budget(budget: Mapping[str, float] | None) -> dict[str, float] | None:
    """The key's caps (:class:`KeyBudget`); none given is no budget."""
    if budget is None:
        return None
    try:
        caps = KeyBudget.model_validate(dict(budget))
    except pydantic.ValidationError as exc:
        problems = [
            {"path": ".".join(["budget", *map(str, e["loc"])]), "message": e["msg"]}
            for e in exc.errors()
        ]
        raise errors.BadRequest(
            "budget: " + "; ".join(f"{p['path']}: {p['message']}" for p in problems),
            details=problems,
        ) from None
    found = caps.model_dump(exclude_none=True)
    return found or None
