"""Per-request tags: OpenAI's ``metadata`` field, or the ``X-Apprentice-Tags`` header.

A tag is a string key and a string value (``customer=acme``), within OpenAI's own
limits on ``metadata``: at most 16 pairs, keys up to 64 characters, values up to 512.
The header carries ``key=value`` pairs separated by commas; when both are sent, the
body's ``metadata`` wins key by key. Anything else is a 400 naming the field and the
rule it breaks, so a tag is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeGuard

from apprentice.gateway import errors

__all__ = ["HEADER", "MAX_KEY", "MAX_TAGS", "MAX_VALUE", "fits", "parse"]

HEADER = "X-Apprentice-Tags"
MAX_TAGS = 16
MAX_KEY = 64
MAX_VALUE = 512


def _from_header(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise errors.BadRequest(
                f"{HEADER}: {part!r} is not key=value (pairs separated by commas)"
            )
        found[key.strip()] = value.strip()
    return found


def fits(tags: object) -> TypeGuard[dict[str, str]]:
    """Whether ``tags`` is a dict of tags within the limits: the check alone, no message
    (the task API's usual body takes it instead of its model; :func:`_check` says why not)."""
    if type(tags) is not dict or len(tags) > MAX_TAGS:
        return False
    for key, value in tags.items():
        if type(key) is not str or not 0 < len(key) <= MAX_KEY:
            return False
        if type(value) is not str or len(value) > MAX_VALUE:
            return False
    return True


def _check(tags: Mapping[str, object], where: str) -> None:
    """A 400 naming the first rule ``tags`` breaks (none when :func:`fits`)."""
    if fits(tags):
        return
    if len(tags) > MAX_TAGS:
        raise errors.BadRequest(f"{where}: {len(tags)} tags, at most {MAX_TAGS}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise errors.BadRequest(f"{where}.{key}: keys and values must be strings")
        if not key or len(key) > MAX_KEY:
            raise errors.BadRequest(f"{where}: key {key[:80]!r} must be 1 to {MAX_KEY} characters")
        if len(value) > MAX_VALUE:
            raise errors.BadRequest(f"{where}.{key}: value longer than {MAX_VALUE} characters")


def parse(metadata: object, header: str | None) -> dict[str, str]:
    """The request's tags from ``metadata`` (a JSON object or None) and the header."""
    tags = _from_header(header) if header else {}
    _check(tags, HEADER)
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise errors.BadRequest(
                f"metadata must be an object of string values, got {type(metadata).__name__}"
            )
        _check(metadata, "metadata")
        if not tags:  # the usual case: nothing to merge, nothing more to check
            return dict(metadata)
        tags = {**tags, **metadata}
        _check(tags, f"metadata and {HEADER}")
    return tags
