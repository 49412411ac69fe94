"""reading.dumps writes what json.dumps(compact, UTF-8 kept) writes, for any JSON value."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprentice.gateway import reading

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _reference(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@given(_JSON)
def test_any_json_value_is_written_as_json_dumps_writes_it(value: object) -> None:
    assert reading.dumps(value) == _reference(value)


def test_answers_keep_their_key_order_unicode_and_special_floats() -> None:
    body = {"output": {"z": "é ✓ \u2028", "a": [1, 2.5, math.inf, None]}, "request_id": "r"}
    assert reading.dumps(body) == _reference(body)
    assert reading.dumps(body).startswith('{"output":{"z":"é ✓')


def test_what_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        reading.dumps({"when": object()})
