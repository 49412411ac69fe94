"""Fixtures of the teacher tests: a fake clock whose sleep records delays, keys, tasks."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from teacher_support import SECRET, FakeClock, provider_config

from apprentice.config import TaskConfig
from apprentice.teachers import build_teacher
from apprentice.teachers.base import Teacher


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def env() -> dict[str, str]:
    return {
        "ANTHROPIC_API_KEY": SECRET,
        "OPENAI_API_KEY": SECRET,
        "GEMINI_API_KEY": SECRET,
        "COMPAT_KEY": SECRET,
    }


@pytest.fixture
def rng() -> random.Random:
    return random.Random(7)


@pytest.fixture
def task() -> TaskConfig:
    return TaskConfig.model_validate(
        {
            "name": "classify_ticket",
            "description": "Classify support tickets by category and priority",
            "input_schema": {"text": "str"},
            "output_schema": {"category": "str", "priority": "int"},
        }
    )


MakeTeacher = Callable[..., Teacher]


@pytest.fixture
async def make_teacher(
    clock: FakeClock, env: dict[str, str], rng: random.Random
) -> AsyncIterator[MakeTeacher]:
    """``make_teacher(kind, base_url, **provider_fields)`` with the fake clock; closed after."""
    made: list[Teacher] = []

    def make(kind: str, base_url: str, **extra: Any) -> Teacher:
        teacher = build_teacher(
            provider_config(kind, base_url, **extra),
            env=env,
            clock=clock,
            sleep=clock.sleep,
            rng=rng,
        )
        made.append(teacher)
        return teacher

    yield make
    for teacher in made:
        await teacher.aclose()
