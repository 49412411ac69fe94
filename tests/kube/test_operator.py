"""The real operator against KMock's Kubernetes emulator and a loopback gateway."""

from __future__ import annotations

from typing import Any

from kube_samples import classify
from kube_support import NS, eventually, live

from apprentice.kube import client as k8s

DT = "apprentice.dev/v1alpha1/distilledtasks"


async def test_create_applies_children_and_reads_status(
    running_operator: Any, emulator: Any, kube: k8s.KubeClient, gateway: Any
) -> None:
    await kube.create(NS, classify())
    deployment = await eventually(
        lambda: live(emulator, "apps/v1/deployments", "classify-ticket-inference"), what="deploy"
    )
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-dt-1"
    status = await eventually(
        lambda: ((live(emulator, DT, "classify-ticket") or {}).get("status") or {}).get("phase"),
        what="status",
    )
    assert status == "cold_start"
