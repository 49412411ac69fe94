"""Built-in list prices and the cost of a call: usage x price, never silently free.

Prices are USD per 1M tokens, public list prices for standard (non-batch,
non-cached, short-context) requests, checked 2026-11. Providers change them:
override with ``price: {input_per_mtok, output_per_mtok}`` in the provider block
whenever they do. A model that is neither in this table nor priced in config is
refused when the teacher is built (:class:`~.errors.TeacherConfigError`).

Dated and routed names resolve to the table by longest prefix at a name
boundary: ``claude-sonnet-4-5-20250929`` and ``anthropic/claude-sonnet-4.5``
(OpenRouter) are ``claude-sonnet-4-5``; ``gpt-4o-mini-2024-07-18`` is
``gpt-4o-mini`` and not ``gpt-4o``. So ``gpt-4o`` behind any OpenAI-compatible
endpoint is priced as ``gpt-4o`` unless config overrides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from apprentice.config import Price, ProviderConfig, ProviderKind
from apprentice.teachers.base import Usage
from apprentice.teachers.errors import TeacherConfigError

__all__ = [
    "DEFAULT_REPLAY_MODEL",
    "LIST_PRICES",
    "PRICES_CHECKED",
    "ModelPrice",
    "canonical_model",
    "cost",
    "lookup",
    "price_for",
    "tokens_cost",
]

PRICES_CHECKED = "2026-11"
DEFAULT_REPLAY_MODEL = "claude-sonnet-4-6"
"""What replay teachers price as by default (claude-sonnet-4-5 reached its end of life on
2026-11-30; its price stays in the table for spend recorded before)."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M input and output tokens, and where the number came from."""

    input_per_mtok: float
    output_per_mtok: float
    source: str = f"built-in list price, checked {PRICES_CHECKED}"


def _p(inp: float, out: float) -> ModelPrice:
    return ModelPrice(inp, out)


# Checked 2026-11 against the providers' public pricing pages. Override in config when they change.
LIST_PRICES: dict[str, ModelPrice] = {
    # Anthropic
    "claude-sonnet-4-6": _p(3.00, 15.00),
    "claude-opus-4-5": _p(5.00, 25.00),
    "claude-opus-4-1": _p(15.00, 75.00),
    "claude-opus-4": _p(15.00, 75.00),
    "claude-sonnet-4-5": _p(3.00, 15.00),
    "claude-sonnet-4": _p(3.00, 15.00),
    "claude-haiku-4-5": _p(1.00, 5.00),
    "claude-3-7-sonnet": _p(3.00, 15.00),
    "claude-3-5-sonnet": _p(3.00, 15.00),
    "claude-3-5-haiku": _p(0.80, 4.00),
    "claude-3-opus": _p(15.00, 75.00),
    "claude-3-haiku": _p(0.25, 1.25),
    # OpenAI
    "gpt-5.1": _p(1.25, 10.00),
    "gpt-5": _p(1.25, 10.00),
    "gpt-5-mini": _p(0.25, 2.00),
    "gpt-5-nano": _p(0.05, 0.40),
    "gpt-4.1": _p(2.00, 8.00),
    "gpt-4.1-mini": _p(0.40, 1.60),
    "gpt-4.1-nano": _p(0.10, 0.40),
    "gpt-4o": _p(2.50, 10.00),
    "gpt-4o-mini": _p(0.15, 0.60),
    "gpt-4-turbo": _p(10.00, 30.00),
    "gpt-3.5-turbo": _p(0.50, 1.50),
    "o1": _p(15.00, 60.00),
    "o3": _p(2.00, 8.00),
    "o3-mini": _p(1.10, 4.40),
    "o4-mini": _p(1.10, 4.40),
    "text-embedding-3-small": _p(0.02, 0.0),
    "text-embedding-3-large": _p(0.13, 0.0),
    # Google (prompts up to 200k tokens)
    "gemini-3-pro": _p(2.00, 12.00),
    "gemini-2.5-pro": _p(1.25, 10.00),
    "gemini-2.5-flash": _p(0.30, 2.50),
    "gemini-2.5-flash-lite": _p(0.10, 0.40),
    "gemini-2.0-flash": _p(0.10, 0.40),
    "gemini-2.0-flash-lite": _p(0.075, 0.30),
    "gemini-1.5-pro": _p(1.25, 5.00),
    "gemini-1.5-flash": _p(0.075, 0.30),
    "gemini-embedding-001": _p(0.15, 0.0),
    "text-embedding-004": _p(0.0, 0.0),
}

# Names people write that differ from the table's key in more than a suffix.
_ALIASES: dict[str, str] = {
    "claude-4-5-sonnet": "claude-sonnet-4-5",
    "claude-4-sonnet": "claude-sonnet-4",
    "claude-4-opus": "claude-opus-4",
    "claude-4-5-haiku": "claude-haiku-4-5",
    "chatgpt-4o-latest": "gpt-4o",
}

_BOUNDARY = ("-", "@", ":", "_")


def canonical_model(model: str) -> str:
    """The name as the table writes it: no router prefix, no ``models/``, dots in Claude names."""
    name = model.strip().lower().rsplit("/", 1)[-1]
    if name.startswith("claude"):
        name = name.replace(".", "-")
    return _ALIASES.get(name, name)


def lookup(model: str) -> ModelPrice | None:
    """Built-in price by longest prefix at a name boundary, or ``None``."""
    name = canonical_model(model)
    best: str | None = None
    for key in LIST_PRICES:
        matches = name == key or (name.startswith(key) and name[len(key)] in _BOUNDARY)
        if matches and (best is None or len(key) > len(best)):
            best = key
    if best is None:
        for alias, key in _ALIASES.items():
            if name.startswith(alias) and name[len(alias) :][:1] in ("", *_BOUNDARY):
                best = key
    return LIST_PRICES[best] if best is not None else None


def price_for(config: ProviderConfig) -> ModelPrice:
    """The price a teacher is billed at: config ``price``, else ``price_as``, else the model.

    Replay teachers default to :data:`DEFAULT_REPLAY_MODEL`, so offline demos
    show realistic spend.
    """
    if config.price is not None:
        return _from_config(config.price)
    if config.price_as:
        name = config.price_as
    elif config.provider is ProviderKind.replay:
        name = config.model or DEFAULT_REPLAY_MODEL
    else:
        name = config.model or ""
    found = lookup(name)
    if found is None:
        raise TeacherConfigError(
            f"no price known for model {name!r}: refusing to treat it as free. Add "
            "price: {input_per_mtok: ..., output_per_mtok: ...} (USD per 1M tokens) or "
            "price_as: <a known model> to this provider block",
            provider=config.provider.value,
        )
    return found


def _from_config(price: Price) -> ModelPrice:
    return ModelPrice(price.input_per_mtok, price.output_per_mtok, source="configured price")


def cost(usage: Usage, price: ModelPrice) -> float:
    """USD for ``usage`` at ``price``, rounded to 1e-9 so sums are exact to the cent."""
    return tokens_cost(usage.input_tokens, usage.output_tokens, price)


def tokens_cost(input_tokens: int, output_tokens: int, price: ModelPrice) -> float:
    """:func:`cost` of that many tokens, without a :class:`Usage` built to carry them: a
    paid request prices its worst case twice (its reservation, its call's first attempt)
    on the gateway's event loop, and a frozen ``Usage`` costs more to build than the sum."""
    raw = (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1_000_000
    return math.floor(raw * 1e9 + 0.5) / 1e9
