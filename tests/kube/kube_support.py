"""Helpers of the operator tests: constants, a bounded wait, the emulator's live objects."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

NS = "ns1"
TEACHER_KEY = "fake-teacher-key-must-never-leak-7f3a"
ADMIN_TOKEN = "admin-TOKEN-must-never-leak-91bc"
CRD_RESOURCES = {
    "apprentice.dev/v1alpha1/distilledtasks": "DistilledTask",
    "apprentice.dev/v1alpha1/trainingjobs": "TrainingJob",
    "apprentice.dev/v1alpha1/modelversions": "ModelVersion",
}


async def eventually(check: Callable[[], Any], within: float = 15.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or check}")
        await asyncio.sleep(0.02)  # a polling step, not a synchronisation point


def live(kmock: Any, resource: str, name: str, namespace: str | None = NS) -> dict[str, Any] | None:
    """The current state of an object in the emulator, or None when absent or deleted."""
    try:
        obj = kmock.objects[resource, namespace, name]
    except KeyError:
        return None
    return None if obj.deleted else dict(obj.raw)
