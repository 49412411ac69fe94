"""Field-by-field similarity (pure: a fake cosine stands in for the embeddings)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprentice.evaluators import fields
from apprentice.evaluators.values import Comparison

RULES = Comparison()
ENTITIES = {
    "type": "object",
    "properties": {
        "entities": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "label": {"type": "string"}},
            },
        }
    },
}


def never(a: str, b: str) -> float:
    raise AssertionError(f"no embedding expected for {a!r} / {b!r}")


def score(student, teacher, schema=None, cosine=never) -> float:
    return fields.score(student, teacher, schema, RULES, cosine)


def ents(*pairs: tuple[str, str]) -> dict:
    return {"entities": [{"text": t, "label": lab} for t, lab in pairs]}


def zero(a: str, b: str) -> float:
    return 0.0


def test_lists_are_sets_scored_by_f1() -> None:
    teacher = ents(("Maple Street", "ADDRESS"), ("Springfield", "CITY"), ("pool", "FEATURE"))
    assert score(ents(*reversed(teacher_pairs(teacher))), teacher, ENTITIES, zero) == 1.0
    half = ents(("Springfield", "CITY"))
    assert score(half, teacher, ENTITIES, zero) == pytest.approx(2 * 1 / (1 + 3))
    assert score(ents(), teacher, ENTITIES) == 0.0
    assert score(ents(), ents(), ENTITIES) == 1.0
    swapped = ents(("Maple Street", "CITY"), ("Springfield", "ADDRESS"), ("pool", "FEATURE"))
    assert score(swapped, teacher, ENTITIES, cosine=lambda a, b: 0.0) == pytest.approx(1 / 3)


def teacher_pairs(output: dict) -> list[tuple[str, str]]:
    return [(e["text"], e["label"]) for e in output["entities"]]


def test_names_forgive_abbreviations_but_not_other_names() -> None:
    low = {"cosine": lambda a, b: 0.5}
    assert fields.name_overlap("Main St.", "Main Street") == 1.0
    assert fields.name_overlap("Sunset Blvd", "Sunset Boulevard") == 1.0
    assert fields.name_overlap("wrap-around porch", "wraparound porch") == 1.0
    assert fields.name_overlap("river views", "river view") == 1.0
    assert fields.name_overlap("Queen Street", "King Street") == 0.5
    assert score({"a": "Queen Street"}, {"a": "King Street"}, **low) == 0.5
    # A near-identical embedding also makes two names one.
    assert score({"a": "3-car garage"}, {"a": "three-car garage"}, cosine=lambda a, b: 0.99) == 1


def test_missing_and_extra_fields_count_against() -> None:
    teacher = {"label": "billing", "priority": 2}
    assert score({"label": "billing"}, teacher) == 0.5
    assert score({"label": "billing", "priority": 2, "extra": True}, teacher) == pytest.approx(
        2 / 3
    )
    schema = {"properties": {"label": {}, "note": {}}}
    assert score({"label": "billing"}, {"label": "billing"}, schema) == 1.0  # absent on both


def test_labels_enums_booleans_and_numbers() -> None:
    assert score({"l": "Billing "}, {"l": "billing"}) == 1.0
    assert score({"l": "billing"}, {"l": "shipping"}) == 0.0
    enum = {"properties": {"l": {"enum": ["very high", "high"]}}}
    assert score({"l": "very high"}, {"l": "high"}, enum) == 0.0
    assert score({"b": True}, {"b": 1}) == 0.0
    assert score({"n": 100.5}, {"n": 100}) == 1.0  # within 1%
    assert score({"n": 2}, {"n": 1}) == 0.0
    assert score({"n": None}, {"n": 1}) == 0.0
    assert score({"n": "1"}, {"n": [1]}) == 0.0


def test_prose_uses_the_calibrated_cosine() -> None:
    a = "the customer was charged twice for one order"
    b = "one order was billed to the customer two times"
    lo, hi = fields.COSINE_RANGE
    assert score({"s": a}, {"s": b}, cosine=lambda x, y: hi) == 1.0
    assert score({"s": a}, {"s": b}, cosine=lambda x, y: lo) == 0.0
    mid = (lo + hi) / 2
    assert score({"s": a}, {"s": b}, cosine=lambda x, y: mid) == pytest.approx(0.5)
    assert score({"s": a}, {"s": b}, cosine=lambda x, y: -0.8) == 0.0


def test_texts_to_embed_lists_each_text_once() -> None:
    a, b = "a long sentence of prose", "another long sentence of prose"
    texts = fields.texts_to_embed({"s": a, "t": [a, b]}, {"s": b, "t": [b]}, None, RULES)
    assert texts == [a, b]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["a", "b c", "d e f g h"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("xyz"), inner),
    max_leaves=8,
)


@given(json_values, json_values, st.floats(-1.0, 1.0))
def test_scores_stay_in_range_and_identical_answers_score_one(a, b, cos) -> None:
    value = score({"v": a}, {"v": b}, cosine=lambda x, y: cos)
    assert 0.0 <= value <= 1.0
    assert score({"v": a}, {"v": a}, cosine=lambda x, y: 1.0) == 1.0
