"""Fixtures: KMock's Kubernetes emulator, a loopback gateway, and the real operator.

The operator is ``kopf.operator(...)`` running as a task in the test's own event loop,
logged in to the emulator; it is stopped through its stop flag at teardown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import warnings
from collections.abc import AsyncIterator
from typing import Any

import kmock
import kopf
import pytest
from aiohttp.test_utils import TestServer
from kube_gateway import FakeGateway
from kube_operator import OperatorStarter, fast_settings
from kube_support import ADMIN_TOKEN, CRD_RESOURCES, NS, TEACHER_KEY

from apprentice.kube import client as k8s
from apprentice.kube import operator
from apprentice.kube.runtime import OperatorSettings, Runtime


class Emulator(kmock.KubernetesEmulator):
    """KMock plus ``generateName`` (kopf names its Events that way)."""

    _generated: int = 0

    async def _handle(self, request: Any) -> Any:
        meta = request.data.get("metadata") if isinstance(request.data, dict) else None
        creating = request.action == kmock.action.CREATE
        if creating and meta and not meta.get("name") and meta.get("generateName"):
            Emulator._generated += 1
            meta["name"] = f"{meta['generateName']}{Emulator._generated:05d}"
        return await super()._handle(request)


@pytest.fixture()
async def emulator() -> AsyncIterator[Any]:
    """KMock's emulator with our CRDs and the built-in resources declared for discovery."""
    async with Emulator() as emu, kmock.Server(emu):
        with warnings.catch_warnings():  # kmock reads its bundle with a deprecated call
            warnings.simplefilter("ignore", DeprecationWarning)
            emu.resources.load_bundled()
        for path, kind in CRD_RESOURCES.items():
            emu.resources[path] = kmock.ResourceInfo(
                kind=kind,
                namespaced=True,
                singular=kind.lower(),
                subresources={"status"},
                verbs={"get", "list", "watch", "create", "patch", "update", "delete"},
            )
        yield emu


@pytest.fixture()
async def kube(emulator: Any) -> AsyncIterator[k8s.KubeClient]:
    client = k8s.KubeClient(str(emulator.url))
    yield client
    await client.aclose()


@pytest.fixture()
async def gateway() -> AsyncIterator[tuple[FakeGateway, str]]:
    fake = FakeGateway(task="classify_ticket", token=ADMIN_TOKEN)
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture()
async def secrets(kube: k8s.KubeClient) -> None:
    """The user's Secrets: the teacher key and a pre-made admin token."""
    for name, key, value in (
        ("anthropic", "api-key", TEACHER_KEY),
        ("gateway-admin", "token", ADMIN_TOKEN),
    ):
        await kube.create(
            NS,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": NS},
                "data": {key: base64.b64encode(value.encode()).decode()},
            },
        )


@pytest.fixture()
async def start_operator(
    emulator: Any, kube: k8s.KubeClient, secrets: None, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[OperatorStarter]:
    """Starts real operators against the emulator; all of them are stopped at teardown."""
    caplog.set_level(logging.INFO)
    url = str(emulator.url)
    ignored: set[asyncio.Task[Any]] = set()
    running: list[asyncio.Task[None]] = []

    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url)

    async def start(settings: OperatorSettings) -> None:
        ready = asyncio.Event()
        runtime = Runtime(kube=kube, settings=settings)
        running.append(
            asyncio.create_task(
                operator.run(
                    settings,
                    kube=kube,
                    login=login,
                    ready_flag=ready,
                    runtime=runtime,
                    tweak=_fast,
                    ignored=ignored,
                )
            )
        )
        await asyncio.wait_for(ready.wait(), 20)

    yield start
    current = asyncio.current_task()
    if current is not None:
        ignored.add(current)  # the teardown is not one of the operators' tasks
    # Cancelling (what SIGTERM does) stops timers at once; a stop flag would let the
    # running timers finish their intervals first.
    for task in running:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)
    # kopf leaves a daemon-stopper coroutine unawaited when a paused replica is cancelled;
    # collect it here so its warning does not surface in an unrelated test.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "coroutine 'stop_daemon'", RuntimeWarning)
        gc.collect()


@pytest.fixture()
async def running_operator(start_operator: OperatorStarter, gateway: Any) -> OperatorSettings:
    """One standalone operator polling the loopback gateway."""
    settings = fast_settings(gateway[1])
    await start_operator(settings)
    return settings


def _fast(settings: kopf.OperatorSettings) -> None:
    """Emulator-friendly timings: it sends no resourceVersions to wait for."""
    settings.scanning.disabled = True  # KMock cannot serve /api/v1/namespaces listings
    settings.persistence.consistency_timeout = 0.2
    settings.watching.reconnect_backoff = 0.1
    settings.posting.default_backoffs = [0.05]
    settings.queueing.exit_timeout = 0.2
    settings.background.instant_exit_timeout = 0.2
