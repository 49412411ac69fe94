"""The teacher registry: one factory per provider kind, and no fall-through for a missing one."""

from __future__ import annotations

import pytest

from apprentice import teachers
from apprentice.config import ProviderConfig, ProviderKind
from apprentice.teachers import errors


def test_every_provider_kind_has_a_factory() -> None:
    assert set(teachers.REGISTRY) == set(ProviderKind)


def test_a_kind_without_a_factory_is_an_error_naming_it_and_the_known_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(teachers.REGISTRY, ProviderKind.google)
    config = ProviderConfig(provider="google", model="gemini-2.5-flash")
    with pytest.raises(errors.TeacherConfigError) as info:
        teachers.build_teacher(config, env={"GEMINI_API_KEY": "k"})
    message = str(info.value)
    assert "unknown teacher provider 'google'" in message
    assert "known: anthropic, openai, openai_compatible, replay" in message
