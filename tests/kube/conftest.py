"""Fixtures: KMock's Kubernetes emulator, a loopback gateway, and the real operator.

The operator is ``kopf.operator(...)`` running as a task in the test's own event loop,
logged in to the emulator; it is stopped through its stop flag at teardown.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import gc
import logging
import warnings
from collections.abc import AsyncIterator
from typing import Any

import attrs
import kmock
import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from kube_gateway import FakeGateway
from kube_operator import OperatorStarter, fast_settings
from kube_support import ADMIN_TOKEN, CRD_RESOURCES, NS, TEACHER_KEY

from apprentice.kube import client as k8s
from apprentice.kube import operator
from apprentice.kube.runtime import OperatorContext, OperatorSettings


class Emulator(kmock.KubernetesEmulator):
    """KMock plus ``generateName`` (kopf names its Events that way) and server-side apply.

    Server-side apply is emulated for a single field manager: an apply to a missing object
    is a 404 as in KMock (the operator's client then creates it; a real server creates it
    in the apply), and otherwise *replaces* the parts the operator owns (labels, annotations,
    owner references, spec, data) with the applied ones, so fields left out disappear as
    they do on a real API server; an apply that changes nothing writes nothing.
    """

    _generated: int = 0

    async def _handle(self, request: Any) -> Any:
        meta = request.data.get("metadata") if isinstance(request.data, dict) else None
        creating = request.action == kmock.action.CREATE
        if creating and meta and not meta.get("name") and meta.get("generateName"):
            Emulator._generated += 1
            meta["name"] = f"{meta['generateName']}{Emulator._generated:05d}"
        if "apply-patch" in request.headers.get("Content-Type", "") and not request.subresource:
            request = self._server_side_apply(request)
            if request.data is None:  # nothing changed: no write, no new version, no event
                key = (request.resource, request.namespace, request.name)
                return web.json_response(dict(self.objects[key].raw))
        return await super()._handle(request)

    def _server_side_apply(self, request: Any) -> Any:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return request  # a 404, as KMock answers: the client then creates the object
        live = dict(self.objects[key].raw)
        wanted = copy.deepcopy(live)
        applied = request.data
        for part in ("labels", "annotations", "ownerReferences"):
            if part in applied.get("metadata", {}):
                wanted["metadata"][part] = applied["metadata"][part]
        for part in ("spec", "data", "stringData"):
            wanted.pop(part, None)
            if part in applied:
                wanted[part] = applied[part]
        diff = _merge_diff(live, wanted)
        if not diff:  # nothing changed: served as a read, no new version, no watch event
            return attrs.evolve(request, data=None)
        return attrs.evolve(request, data=diff)


def _merge_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``."""
    out: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = _merge_diff(before, value)
            if nested:
                out[key] = nested
        elif key not in old or before != value:
            out[key] = value
    return out


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
        context = OperatorContext(kube=kube, settings=settings)
        running.append(
            asyncio.create_task(
                operator.run(
                    settings,
                    kube=kube,
                    login=login,
                    ready_flag=ready,
                    context=context,
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
