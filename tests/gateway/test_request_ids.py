"""Request ids: 128 random bits each, unique even when gateways on several threads draw them."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from apprentice.gateway.parts import random_request_id


@pytest.fixture
def eager_switching() -> Iterator[None]:
    """Threads switch every microsecond: a race between two bytecodes shows at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_ids_are_32_hex_digits_and_never_repeat_across_threads(eager_switching: None) -> None:
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(random_request_id() for _ in range(20_000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in drawn]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for out in drawn for i in out]
    assert len(set(ids)) == len(ids) == 80_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids[:1000])
