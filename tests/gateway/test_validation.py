"""The flat-schema fast path agrees with jsonschema on every document we throw at it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from apprentice import schemas
from apprentice.schema_checks import SchemaCheck

SCHEMAS = [
    schemas.normalize({"text": "str", "metadata": "dict"}),
    schemas.normalize({"category": "str", "priority": "int", "confidence": "float"}),
    schemas.normalize({"ok": "bool", "tags": "list", "note": "str?"}),
    {"type": "object", "properties": {"a": {"type": "integer"}}},  # open, optional
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([1.0, -2.0, 0.5])
    | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=5,
)
keys = st.sampled_from(
    ["text", "metadata", "category", "priority", "confidence", "ok", "tags", "note", "a", "zz"]
)
documents = st.dictionaries(keys, json_values, max_size=5) | json_values


@settings(max_examples=400, deadline=None)
@given(doc=documents)
def test_fast_path_matches_jsonschema(doc: Any) -> None:
    for schema in SCHEMAS:
        check = SchemaCheck.compile(schema)
        assert check.fast is not None
        assert check.is_valid(doc) == Draft202012Validator(schema).is_valid(doc), (schema, doc)


def test_other_schemas_use_jsonschema_and_errors_carry_paths() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 3}},
        "required": ["n"],
    }
    check = SchemaCheck.compile(schema)
    assert check.fast is None
    assert check.errors({"n": 1}) == [{"path": "n", "message": "1 is less than the minimum of 3"}]
    flat = SchemaCheck.compile(SCHEMAS[0])
    assert flat.errors({"text": 1, "metadata": {}}) == [
        {"path": "text", "message": "1 is not of type 'string'"}
    ]
