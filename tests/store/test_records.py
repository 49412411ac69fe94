"""The split rule and input hashing: pure functions, tested as properties."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprentice.store import records

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
inputs = st.dictionaries(st.text(max_size=10), json_values, max_size=5)


@given(inputs, st.floats(min_value=0.0, max_value=1.0))
def test_same_input_same_split(task_input: dict[str, Any], fraction: float) -> None:
    # A rebuilt (reordered) copy hashes the same: canonical JSON sorts keys.
    reordered = dict(reversed(list(task_input.items())))
    first = records.assign_split(records.input_hash(task_input), fraction)
    again = records.assign_split(records.input_hash(reordered), fraction)
    assert first == again


@given(inputs, st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.0, max_value=1.0))
def test_heldout_grows_with_the_fraction(task_input: dict[str, Any], a: float, b: float) -> None:
    # Raising heldout_fraction only moves inputs from train to heldout, never back.
    low, high = sorted((a, b))
    digest = records.input_hash(task_input)
    if records.assign_split(digest, low) == "heldout":
        assert records.assign_split(digest, high) == "heldout"


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_fraction_is_honoured_on_10k_random_inputs(fraction: float) -> None:
    rng = random.Random(7)
    hashes = [records.input_hash({"text": f"ticket {rng.random()}", "n": i}) for i in range(10_000)]
    heldout = sum(records.assign_split(h, fraction) == "heldout" for h in hashes)
    # Binomial sd at p=0.5, n=10k is 50: 4 sd is 200.
    assert abs(heldout - fraction * 10_000) <= 200


def test_hash_is_sha256_of_canonical_json_and_pinned() -> None:
    # Pinned so a refactor cannot silently move examples between splits.
    digest = records.input_hash({"text": "refund please", "metadata": {"b": 1, "a": 2}})
    assert digest == records.input_hash({"metadata": {"a": 2, "b": 1}, "text": "refund please"})
    assert digest == "2827158afb4f6f6cc7a3044b15dbaac7a76c0175598f016b79455bb74d0ba270"
    # 0x2827158afb4f6f6c / 2**64 ~ 0.157: heldout at 0.2, train at 0.1.
    assert records.assign_split(digest, 0.2) == "heldout"
    assert records.assign_split(digest, 0.1) == "train"


def test_bad_fraction_and_bad_version_names_are_typed_errors() -> None:
    with pytest.raises(ValueError, match="heldout_fraction"):
        records.assign_split("0" * 64, 1.5)
    with pytest.raises(ValueError, match="v<N>"):
        records.version_number("latest")
    assert records.version_number("v12") == 12
    assert records.version_name(3) == "v3"
