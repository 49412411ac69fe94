"""Every teacher error maps to one of the contract's typed reasons and a 502/503."""

from __future__ import annotations

import pytest

from apprentice.gateway import errors, failures
from apprentice.teachers import errors as teacher_errors

ALL = [
    getattr(teacher_errors, name)
    for name in teacher_errors.__all__
    if isinstance(getattr(teacher_errors, name), type)
    and issubclass(getattr(teacher_errors, name), teacher_errors.TeacherError)
]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_teacher_error_has_a_contract_reason(cls: type[teacher_errors.TeacherError]) -> None:
    err = failures.teacher_error(cls("boom sk-abcdefghijklmnop", provider="openai", status=500))
    assert err.reason in errors.PROVIDER_REASONS
    assert err.status == (503 if cls.retryable else 502)
    assert "sk-abcdefghijklmnop" not in err.message  # the teachers scrub key-like text
    assert err.body()["error"]["details"] == {"reason": err.reason}


def test_timeouts_and_unknown_failures() -> None:
    assert failures.teacher_error(TimeoutError()).status == 503
    assert failures.reason(RuntimeError("x")) == "ProviderError"
    assert failures.reason(teacher_errors.ReplayMiss("x", provider="replay")) == "BadRequest"
