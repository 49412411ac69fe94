"""The teacher's poster on the wire: what it sends, what it hands back, how it fails.

Every server here is real, on loopback: an aiohttp app for answers, a raw asyncio
server for a connection dropped after the request was read, a closed port for a
refused connection. Billing reads the failure's kind, so each failure is checked
both for its type and for whether :func:`billing.may_have_billed` books it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from apprentice.teachers import billing, errors, transport

ANSWER = {"category": "facturación", "priority": 2}


def _error() -> errors.TeacherError:
    return errors.ProviderError("failed", provider="openai", retryable=True)


@dataclass
class Loopback:
    server: TestServer
    seen: list[web.Request] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    hung: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@pytest.fixture
async def server() -> AsyncIterator[Loopback]:
    """``/ok`` answers gzip'd JSON with mixed-case headers; ``/hang`` never answers."""
    release = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        loop.seen.append(request)
        loop.bodies.append(await request.read())
        body = gzip.compress(json.dumps(ANSWER).encode())
        headers = {"Content-Encoding": "gzip", "X-RateLimit-Remaining-Requests": "7"}
        return web.Response(body=body, headers=headers, content_type="application/json")

    async def hang(request: web.Request) -> web.Response:
        loop.seen.append(request)
        loop.hung.set()
        await release.wait()
        return web.Response(status=504)

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/hang", hang)
    loop = Loopback(TestServer(app, host="127.0.0.1"))
    await loop.server.start_server()
    yield loop
    release.set()
    await loop.server.close()


async def test_posts_compact_utf8_json_and_reads_the_whole_answer(
    server: Loopback,
) -> None:
    poster = transport.JsonPoster(timeout_s=5)
    try:
        response = await poster.post(
            server.url("/ok"), {"text": "¿dónde está?"}, {"Authorization": "k"}
        )
    finally:
        await poster.aclose()
    assert server.bodies == ['{"text":"¿dónde está?"}'.encode()]  # compact, UTF-8, not \u-escaped
    assert server.seen[0].headers["content-type"] == "application/json"
    assert server.seen[0].headers["authorization"] == "k"
    assert response.status == 200 and response.is_success
    assert response.json() == ANSWER  # gzip decoded
    assert response.headers["x-ratelimit-remaining-requests"] == "7"  # case-insensitive


async def test_the_posters_own_headers_go_on_every_post_and_a_posts_go_on_top(
    server: Loopback,
) -> None:
    poster = transport.JsonPoster(timeout_s=5, headers={"Authorization": "k", "X-Version": "1"})
    try:
        await poster.post(server.url("/ok"), {}, {"Authorization": "k", "X-Version": "1"})
        await poster.post(server.url("/ok"), {}, {})
        await poster.post(server.url("/ok"), {}, {"authorization": "other"})
    finally:
        await poster.aclose()
    sent = [(r.headers.getall("authorization"), r.headers.get("x-version")) for r in server.seen]
    assert sent == [(["k"], "1"), (["k"], "1"), (["other"], "1")]
    assert all(r.headers["content-type"] == "application/json" for r in server.seen)


async def test_a_refused_connection_never_reached_the_provider() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    poster = transport.JsonPoster(timeout_s=5)
    try:
        with pytest.raises(transport.ConnectError) as info:
            await poster.post(f"http://127.0.0.1:{port}/v1", {}, {})
    finally:
        await poster.aclose()
    assert not isinstance(info.value, transport.ConnectTimeout)
    assert not billing.may_have_billed(_error(), info.value)


async def test_a_connection_dropped_after_the_request_may_have_been_billed() -> None:
    arrived = asyncio.Event()

    async def drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # the whole head arrived: the request was sent
        arrived.set()
        writer.close()

    tcp = await asyncio.start_server(drop, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    poster = transport.JsonPoster(timeout_s=5)
    try:
        with pytest.raises(transport.ReadError) as info:
            await poster.post(f"http://127.0.0.1:{port}/v1", {"text": "x"}, {})
    finally:
        await poster.aclose()
        tcp.close()
        await tcp.wait_closed()
    assert arrived.is_set()
    assert not isinstance(info.value, transport.ReadTimeout)
    assert billing.may_have_billed(_error(), info.value)


async def test_no_answer_in_time_is_a_read_timeout_that_may_have_been_billed(
    server: Loopback,
) -> None:
    poster = transport.JsonPoster(timeout_s=0.2)
    try:
        with pytest.raises(transport.ReadTimeout) as info:
            await poster.post(server.url("/hang"), {}, {})
    finally:
        await poster.aclose()
    assert len(server.seen) == 1  # it reached the provider
    assert billing.may_have_billed(_error(), info.value)


async def test_no_free_connection_in_time_is_a_connect_timeout_never_billed(
    server: Loopback,
) -> None:
    """One connection, held by a call in flight: the next call waits for it, then gives up."""
    poster = transport.JsonPoster(timeout_s=0.3, connections=1)
    first = asyncio.create_task(poster.post(server.url("/hang"), {}, {}))
    try:
        await server.hung.wait()  # the first call holds the only connection
        with pytest.raises(transport.ConnectTimeout) as info:
            await poster.post(server.url("/ok"), {}, {})
        with pytest.raises(transport.ReadTimeout):
            await first
    finally:
        first.cancel()
        await poster.aclose()
    assert len(server.seen) == 1  # the second never reached the provider
    assert not billing.may_have_billed(_error(), info.value)
