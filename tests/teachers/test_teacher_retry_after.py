"""``Retry-After`` in both of its forms, and everything else treated as absent."""

from __future__ import annotations

import email.utils

import pytest

from apprentice.teachers import http

NOW = 1_700_000_000.0


def _date(offset_s: float) -> str:
    return email.utils.formatdate(NOW + offset_s, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": " 7 "}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after-ms": "250", "retry-after": "7"}, 0.25),
        ({"retry-after-ms": "later", "retry-after": "7"}, 7.0),  # a bad -ms falls through
        ({"retry-after": _date(30), "date": _date(0)}, 30.0),  # measured on the server's clock
        ({"retry-after": _date(-30), "date": _date(0)}, 0.0),  # already past
        ({"retry-after": _date(12)}, 12.0),  # no Date header: our clock
        ({"retry-after": _date(12), "date": "yesterday"}, 12.0),  # a bad Date: our clock
        ({"retry-after": "Sun, 06 Nov 1994 08:49:37 -0000"}, 0.0),  # obsolete form, past
        ({"retry-after": "Sunday, 06-Nov-94 08:49:37 GMT"}, 0.0),  # RFC 850 form
        # Anything else is absent: the caller backs off on its own instead of crashing.
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-5"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "1e9"}, None),
        ({"retry-after": "Thu, 99 Foo 2026 99:99:99 GMT"}, None),
        ({"retry-after": ""}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    got = http.retry_after_s(headers, now=NOW)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-6)
