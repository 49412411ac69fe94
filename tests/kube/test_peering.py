"""HA: two replicas share a kopf peering object; only the higher-priority one acts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import kmock
import pytest
from aiohttp.test_utils import TestServer
from kube_gateway import FakeGateway
from kube_operator import OperatorStarter, fast_settings
from kube_samples import classify
from kube_support import ADMIN_TOKEN, NS, eventually, live

from apprentice.kube import client as k8s

PEERINGS = "kopf.dev/v1/kopfpeerings"


@pytest.fixture()
async def second_gateway() -> AsyncIterator[tuple[FakeGateway, str]]:
    fake = FakeGateway(task="classify_ticket", token=ADMIN_TOKEN)
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.mark.parametrize(("priority_a", "priority_b"), [(100, 50), (50, 100)])
async def test_only_the_leader_reconciles_and_polls(
    priority_a: int,
    priority_b: int,
    emulator: Any,
    kube: k8s.KubeClient,
    start_operator: OperatorStarter,
    gateway: Any,
    second_gateway: Any,
) -> None:
    emulator.resources[PEERINGS] = kmock.ResourceInfo(
        kind="KopfPeering",
        namespaced=True,
        singular="kopfpeering",
        verbs={"get", "list", "watch", "patch"},
    )
    await kube._call(
        "POST",
        f"/apis/kopf.dev/v1/namespaces/{NS}/kopfpeerings",
        json={
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": "apprentice", "namespace": NS, "resourceVersion": "1"},
        },
    )
    leader, follower = gateway[0], second_gateway[0]
    await start_operator(
        fast_settings(gateway[1], peering="apprentice", peering_priority=100, identity="replica-a")
    )
    await start_operator(
        fast_settings(
            second_gateway[1], peering="apprentice", peering_priority=50, identity="replica-b"
        )
    )
    await eventually(
        lambda: (
            {"replica-a", "replica-b"}
            <= set((live(emulator, PEERINGS, "apprentice") or {}).get("status") or {})
        ),
        what="peers",
    )

    await kube.create(NS, classify())
    await eventually(lambda: live(emulator, "apps/v1/deployments", "classify-ticket-inference"))
    polls = await eventually(lambda: len(leader.paths("GET")) >= 3 and leader.paths("GET"))
    assert all(p.endswith("/state") or "/admin/" in p for p in polls)
    assert follower.calls == []  # the paused replica never touched its gateway
