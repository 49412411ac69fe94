"""A group commit serialises each JSON object once (codec.CanonicalOnce): the text is
always canonical_json's, per object, never another object's that had the same id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from apprentice.prompts import canonical_json
from apprentice.store import bulk, codec
from apprentice.store.codec import CanonicalOnce
from apprentice.store.records import ExampleRecord

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=4), json_values, max_size=4)


@given(st.lists(objects, min_size=1, max_size=6))
def test_each_object_gets_canonical_json_text(values: list[dict[str, Any]]) -> None:
    once = CanonicalOnce()
    for value in values + values:  # asked twice: the second answer is the remembered one
        assert once(value) == canonical_json(value)


def test_an_equal_but_distinct_object_is_serialised_for_itself() -> None:
    once = CanonicalOnce()
    first = {"a": 1}
    assert once(first) == '{"a":1}'
    first_copy = dict(first)
    first_copy["b"] = 2
    assert once(first_copy) == '{"a":1,"b":2}'
    assert once(first) == '{"a":1}'


def test_a_lone_surrogate_keeps_each_columns_text() -> None:
    """The request's answer_json escapes it; the example keeps canonical_json's text."""
    value = {"text": "bad \udcff"}
    once = CanonicalOnce()
    assert codec.answer_json(value, once) == codec.answer_json(value)
    assert codec.answer_json(value, once) != canonical_json(value)
    assert once(value) == canonical_json(value)
    example = ExampleRecord(
        task="t", input=value, output={"ok": True}, input_hash="h", split="train",
        teacher_provider="p", teacher_model="m", created_at=datetime(2026, 12, 1, tzinfo=UTC),
    )  # fmt: skip
    assert bulk.example_values(example, once) == bulk.example_values(example)
