"""Operator test helpers imported by name (a unique module name, unlike ``conftest``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from kube_support import NS

from apprentice.kube.manifests import Defaults
from apprentice.kube.runtime import OperatorSettings

OperatorStarter = Callable[[OperatorSettings], Awaitable[None]]


def fast_settings(gateway_url: str, **changes: Any) -> OperatorSettings:
    """Fast polling against one loopback gateway."""
    base = OperatorSettings(
        namespaces=(NS,),
        poll_interval_s=0.25,
        retry_delay_s=0.2,
        gateway_url=gateway_url,
        defaults=Defaults(),
    )
    return dataclasses.replace(base, **changes)
