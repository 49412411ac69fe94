"""Build a teacher from its provider block (filled in with the providers)."""

from __future__ import annotations

import random
from collections.abc import Mapping

import httpx

from apprentice.config import ProviderConfig
from apprentice.teachers.base import Clock, Sleep, Teacher


def build_teacher(
    config: ProviderConfig,
    *,
    transport: httpx.AsyncBaseTransport | None,
    env: Mapping[str, str] | None,
    clock: Clock,
    sleep: Sleep,
    rng: random.Random | None,
) -> Teacher:
    raise NotImplementedError(f"provider {config.provider.value} is not built yet")
