"""Teachers: the remote providers, their shared HTTP policy, prices and the replay teacher.

:data:`REGISTRY` maps each :class:`~apprentice.config.ProviderKind` to the
factory that builds its teacher; :func:`build_teacher` and :func:`build_pool`
are the only ways in. The registry lives here, above every provider module, so
no module of this package imports it back (``base`` holds the shared types only).

Everything that can be wrong with a provider block (no key, no price) is
refused when it is built, at start-up, not on the first request.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from apprentice.config import ProviderConfig, ProviderKind, RemoteConfig
from apprentice.teachers import anthropic, google, openai, pricing
from apprentice.teachers.base import (
    Clock,
    Completion,
    Sleep,
    Teacher,
    TeacherAnswer,
    TeacherPool,
    Usage,
)
from apprentice.teachers.errors import TeacherConfigError
from apprentice.teachers.keys import resolve_api_key
from apprentice.teachers.remote import Adapter
from apprentice.teachers.replay import ReplayTeacher
from apprentice.teachers.streamed import StreamingRemoteTeacher

__all__ = [
    "Completion",
    "Teacher",
    "TeacherAnswer",
    "TeacherPool",
    "Usage",
    "build_pool",
    "build_teacher",
]


@dataclass(frozen=True)
class TeacherDeps:
    """What a factory gets besides its provider block: I/O and time, replaced in tests."""

    env: Mapping[str, str]
    clock: Clock
    sleep: Sleep
    rng: random.Random | None


TeacherFactory = Callable[[ProviderConfig, TeacherDeps], Teacher]
"""Builds one teacher; raises :class:`~.errors.TeacherConfigError` for a block it cannot use."""

ADAPTERS: dict[ProviderKind, Adapter] = {
    ProviderKind.anthropic: anthropic.ANTHROPIC,
    ProviderKind.openai: openai.OPENAI,
    ProviderKind.google: google.GOOGLE,
    ProviderKind.openai_compatible: openai.COMPATIBLE,
}
"""The wire format of each HTTP provider (the price tests parse recorded responses with it)."""


def _remote(kind: ProviderKind) -> TeacherFactory:
    """The factory of an HTTP provider: its adapter, its key, its price."""
    adapter = ADAPTERS[kind]
    # An OpenAI-compatible server embeds with the model it serves; the others have
    # a dedicated embeddings model (or none).
    embeds_with_model = kind is ProviderKind.openai_compatible

    def build(config: ProviderConfig, wiring: TeacherDeps) -> Teacher:
        price = pricing.price_for(config)
        key = resolve_api_key(config, wiring.env, default_env=adapter.default_key_env)
        return StreamingRemoteTeacher(  # a RemoteTeacher that can also stream its answer
            config,
            adapter,
            api_key=key,
            price=price,
            clock=wiring.clock,
            sleep=wiring.sleep,
            rng=wiring.rng or random.Random(),
            embedding_model=config.model if embeds_with_model else None,
        )

    return build


def _replay(config: ProviderConfig, wiring: TeacherDeps) -> Teacher:
    return ReplayTeacher(config, price=pricing.price_for(config), clock=wiring.clock)


REGISTRY: dict[ProviderKind, TeacherFactory] = {
    **{kind: _remote(kind) for kind in ADAPTERS},
    ProviderKind.replay: _replay,
}


def build_teacher(
    config: ProviderConfig,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> Teacher:
    """One teacher from one provider block (also used for llm_judge judges).

    Raises :class:`~.errors.TeacherConfigError` when the provider has no factory,
    the key cannot be read or the model has no price (built-in or configured).
    """
    factory = REGISTRY.get(config.provider)
    if factory is None:
        known = ", ".join(kind.value for kind in REGISTRY)
        raise TeacherConfigError(
            f"unknown teacher provider {config.provider.value!r}; known: {known}",
            provider=config.provider.value,
        )
    wiring = TeacherDeps(os.environ if env is None else env, clock, sleep, rng)
    return factory(config, wiring)


def build_pool(
    remote: RemoteConfig,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> TeacherPool:
    """All teachers of ``remote`` (primary + additional_providers) with their weights."""
    members: list[tuple[Teacher, float]] = []
    for provider in remote.providers():
        teacher = build_teacher(provider, env=env, clock=clock, sleep=sleep, rng=rng)
        members.append((teacher, provider.weight))
    return TeacherPool(members, rng=rng or random.Random())
