"""Build a teacher from its provider block: pick the adapter, resolve key and price.

Everything that can be wrong with a provider block (no key, no price) is
refused here, at start-up, not on the first request.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import httpx

from apprentice.config import ProviderConfig, ProviderKind
from apprentice.teachers import anthropic, google, openai, pricing
from apprentice.teachers.base import Clock, Sleep, Teacher
from apprentice.teachers.http import resolve_api_key
from apprentice.teachers.remote import Adapter, RemoteTeacher
from apprentice.teachers.replay import ReplayTeacher

__all__ = ["ADAPTERS", "build_teacher"]

ADAPTERS: dict[ProviderKind, Adapter] = {
    ProviderKind.anthropic: anthropic.ANTHROPIC,
    ProviderKind.openai: openai.OPENAI,
    ProviderKind.google: google.GOOGLE,
    ProviderKind.openai_compatible: openai.COMPATIBLE,
}


def build_teacher(
    config: ProviderConfig,
    *,
    transport: httpx.AsyncBaseTransport | None,
    env: Mapping[str, str] | None,
    clock: Clock,
    sleep: Sleep,
    rng: random.Random | None,
) -> Teacher:
    """See :func:`apprentice.teachers.base.build_teacher`."""
    price = pricing.price_for(config)
    if config.provider is ProviderKind.replay:
        return ReplayTeacher(config, price=price, clock=clock)
    adapter = ADAPTERS[config.provider]
    key = resolve_api_key(
        config, os.environ if env is None else env, default_env=adapter.default_key_env
    )
    embedding_model = config.model if config.provider is ProviderKind.openai_compatible else None
    return RemoteTeacher(
        config,
        adapter,
        api_key=key,
        price=price,
        transport=transport,
        clock=clock,
        sleep=sleep,
        rng=rng or random.Random(),
        embedding_model=embedding_model,
    )
