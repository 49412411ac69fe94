"""A reservation row's lease is ``ttl_s`` long: given, or derived from the request timeout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apprentice import config
from apprentice.gateway.spending import SharedBudget

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _cfg(request_timeout_s: float) -> config.ApprenticeConfig:
    return config.ApprenticeConfig.model_validate(
        {
            "tasks": [
                {"name": "t", "input_schema": {"text": "str"}, "output_schema": {"a": "str"}}
            ],
            "remote": {"provider": "replay", "path": "/dev/null", "price_as": "gpt-4o"},
            "gateway": {"request_timeout_s": request_timeout_s},
        }
    )


@pytest.mark.parametrize(
    ("ttl_s", "timeout_s", "lease_s"), [(42.0, 30.0, 42.0), (None, 30.0, 600.0), (None, 300, 900.0)]
)
def test_each_reservation_expires_ttl_s_after_it_was_made(
    ttl_s: float | None, timeout_s: float, lease_s: float
) -> None:
    budget = SharedBudget(_cfg(timeout_s), None, owner="gw", ttl_s=ttl_s)
    assert budget.ttl_s == lease_s
    for minutes in (0, 7):
        at = NOW + timedelta(minutes=minutes)
        _, (row, *_) = budget._ask("t", 0.5, at, "teacher", "req", None)
        assert row.created_at == at
        assert row.expires_at - row.created_at == timedelta(seconds=lease_s)
