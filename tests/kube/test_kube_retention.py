"""A DistilledTask's ``storage.requestRetentionDays`` reaches its gateway's
``store.request_retention_days`` (30 by default; 0 or null keeps every request row)."""

from __future__ import annotations

from typing import Any

import pytest
from kube_samples import classify
from pydantic import ValidationError

from apprentice import config
from apprentice.kube import manifests
from apprentice.kube.manifests import TaskObject


def _gateway_retention(storage: dict[str, Any]) -> float | None:
    task = TaskObject.from_body(classify(storage=storage))
    loaded = config.loads(manifests.get_config_map(task)["data"]["apprentice.yaml"])
    return loaded.store.request_retention_days


@pytest.mark.parametrize(
    ("storage", "days"),
    [
        ({}, 30.0),
        ({"requestRetentionDays": 7}, 7.0),
        ({"requestRetentionDays": 0}, 0.0),
        ({"requestRetentionDays": None}, None),
    ],
)
def test_the_task_sets_its_gateways_request_retention(
    storage: dict[str, Any], days: float | None
) -> None:
    assert _gateway_retention(storage) == days


def test_a_negative_retention_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"storage\.requestRetentionDays"):
        TaskObject.from_body(classify(storage={"requestRetentionDays": -1}))
