"""The price table: matching dated/routed names, overrides, refusal of unknown models, cost."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from google.genai import types as genai_types
from hypothesis import given, settings
from hypothesis import strategies as st

from apprentice import teachers
from apprentice.config import ProviderConfig, ProviderKind
from apprentice.teachers import base, errors, pricing

RECORDED = json.loads((Path(__file__).parent / "data" / "recorded_costs.json").read_text())


@pytest.mark.parametrize("row", RECORDED["responses"], ids=lambda row: row["model"])
def test_recorded_response_cost_matches_table(row: dict[str, Any]) -> None:
    kind = row["provider"]
    adapter = teachers.ADAPTERS[ProviderKind(kind)]
    usage = adapter.chat_response(row["response"]).usage
    cost = pricing.cost(usage, pricing.price_for(ProviderConfig(
        provider=kind, model=row["model"], base_url="http://x/v1")))  # fmt: skip
    assert cost == pytest.approx(row["expected_usd"], abs=1e-9)
    # The fixture itself is real wire format.
    if kind == "anthropic":
        anthropic.types.Message.model_validate(row["response"])
    elif kind == "google":
        genai_types.GenerateContentResponse.model_validate(row["response"])
    else:
        openai.types.chat.ChatCompletion.model_validate(row["response"])


def test_recorded_total_to_the_cent() -> None:
    total = Decimal(0)
    for row in RECORDED["responses"]:
        adapter = teachers.ADAPTERS[ProviderKind(row["provider"])]
        usage = adapter.chat_response(row["response"]).usage
        price = pricing.lookup(row["model"])
        assert price is not None
        total += Decimal(str(pricing.cost(usage, price)))
    assert round(total, 2) == Decimal(str(RECORDED["total_usd_to_the_cent"]))
    assert total == sum(Decimal(str(r["expected_usd"])) for r in RECORDED["responses"])


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o3-2025-04-16", "o3"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
        ("gemini-2.5-pro-preview-05-06", "gemini-2.5-pro"),
    ],
)
def test_longest_prefix_at_a_name_boundary(model: str, key: str) -> None:
    assert pricing.lookup(model) == pricing.LIST_PRICES[key]


@pytest.mark.parametrize("model", ["gpt-4oo", "llama-3.1-8b-instruct", "claude", "o3x", ""])
def test_unknown_names_do_not_match(model: str) -> None:
    assert pricing.lookup(model) is None


def test_unknown_model_refused_at_build_time() -> None:
    config = ProviderConfig(
        provider="openai_compatible", model="meta-llama/Llama-3.3-70B", base_url="http://x/v1"
    )
    with pytest.raises(errors.TeacherConfigError) as info:
        teachers.build_teacher(config, env={})
    message = str(info.value)
    assert "Llama-3.3-70B" in message and "price" in message and "free" in message


def test_configured_price_overrides_the_table() -> None:
    config = ProviderConfig(
        provider="openai_compatible",
        model="gpt-4o",
        base_url="http://x/v1",
        price={"input_per_mtok": 1.0, "output_per_mtok": 2.0},
    )
    price = pricing.price_for(config)
    assert (price.input_per_mtok, price.output_per_mtok) == (1.0, 2.0)
    assert price.source == "configured price"


def test_gpt_4o_through_a_compatible_endpoint_is_priced_as_gpt_4o() -> None:
    config = ProviderConfig(provider="openai_compatible", model="gpt-4o", base_url="http://x/v1")
    assert pricing.price_for(config) == pricing.LIST_PRICES["gpt-4o"]


def test_price_as_and_replay_default() -> None:
    proxy = ProviderConfig(
        provider="openai_compatible", model="corp-llm", base_url="http://x/v1", price_as="gpt-4.1"
    )
    assert pricing.price_for(proxy) == pricing.LIST_PRICES["gpt-4.1"]
    replay = ProviderConfig(provider="replay", path="answers.jsonl")
    assert pricing.price_for(replay) == pricing.LIST_PRICES["claude-sonnet-4-5"]


def test_every_table_entry_is_reachable_and_dated() -> None:
    assert pricing.PRICES_CHECKED == "2026-11"
    for key, price in pricing.LIST_PRICES.items():
        assert pricing.lookup(key) == price
        assert "2026-11" in price.source


def test_cost_is_usage_times_price() -> None:
    price = pricing.ModelPrice(3.0, 15.0)
    assert pricing.cost(base.Usage(1_000_000, 0), price) == 3.0
    assert pricing.cost(base.Usage(0, 1_000_000), price) == 15.0
    assert pricing.cost(base.Usage(1, 1), price) == pytest.approx(18e-6)
    assert pricing.cost(base.Usage(0, 0), price) == 0.0


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 10**9),
    st.integers(0, 10**9),
    st.floats(0.0, 1000.0, allow_nan=False),
    st.floats(0.0, 1000.0, allow_nan=False),
)
def test_tokens_cost_is_the_cost_of_that_usage(
    input_tokens: int, output_tokens: int, per_in: float, per_out: float
) -> None:
    """The remote teacher prices its worst cases with tokens_cost (no Usage built): the
    same number as cost() of the Usage it used to build, to the last bit."""
    price = pricing.ModelPrice(per_in, per_out, source="test")
    usage = base.Usage(input_tokens=input_tokens, output_tokens=output_tokens)
    assert pricing.tokens_cost(input_tokens, output_tokens, price) == pricing.cost(usage, price)
