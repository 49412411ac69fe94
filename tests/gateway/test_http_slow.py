"""Slow and stalled clients on a real socket: the gateway hangs up on them in time.

The server is the one ``apprentice serve`` runs (``gateway.server.listen``) with
short limits. Nothing here sleeps to synchronise: each test waits for the socket
to be closed by the server (EOF) and checks when that happened.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from gw_config import make_config

from apprentice.gateway import server
from apprentice.gateway.http import build_app

HEADER_TIMEOUT_S = 0.4
BODY_TIMEOUT_S = 0.4
# Generous: the point is that the server closes the socket, not how precisely.
DEADLINE_S = 10.0


@pytest.fixture
async def listen(harness_factory: Any, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[server.Listener] = []

    async def start(**gateway: Any) -> server.Listener:
        limits = {
            "header_timeout_s": HEADER_TIMEOUT_S,
            "body_timeout_s": BODY_TIMEOUT_S,
            "admin_token_env": "GW_TEST_ADMIN_TOKEN",
            **gateway,
        }
        h = await harness_factory(make_config(tmp_path, gateway=limits))
        listener = await server.listen(build_app(h.gw), h.gw.config.gateway, "127.0.0.1", 0)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        await listener.close()


async def _until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
    """Everything the server sent before it closed the connection, and how long it took."""
    started = time.monotonic()
    data = await asyncio.wait_for(reader.read(), DEADLINE_S)
    return data, time.monotonic() - started


async def test_half_a_body_gets_408_and_the_connection_closed(listen: Any) -> None:
    listener = await listen()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(
        b"POST /v1/tasks/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n" + b'{"input": {"te'
    )
    await writer.drain()
    data, took = await _until_closed(reader)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    error = json.loads(body)["error"]
    assert error["type"] == "request_timeout"
    assert "gateway.body_timeout_s" in error["message"]
    assert BODY_TIMEOUT_S * 0.9 <= took < DEADLINE_S


async def test_half_a_header_is_closed_after_the_header_timeout(listen: Any) -> None:
    listener = await listen()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"POST /v1/tasks/classify HTTP/1.1\r\nHost: x\r\nContent-Le")
    await writer.drain()
    data, took = await _until_closed(reader)
    writer.close()
    assert data == b""  # nothing to answer: no request was ever received
    assert HEADER_TIMEOUT_S * 0.9 <= took < DEADLINE_S


async def test_a_silent_connection_is_closed_too(listen: Any) -> None:
    listener = await listen()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    data, took = await _until_closed(reader)
    writer.close()
    assert data == b""
    assert took < DEADLINE_S


async def test_a_client_in_time_is_answered(listen: Any) -> None:
    listener = await listen()
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data, _ = await _until_closed(reader)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200")


async def test_connections_past_the_cap_get_503_and_are_closed(listen: Any) -> None:
    # A long header timeout: the admitted connections stay open while we count.
    listener = await listen(max_connections=3, header_timeout_s=60)
    conns = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", listener.port) for _ in range(10))
    )
    gate = listener.gate
    deadline = time.monotonic() + DEADLINE_S
    while gate.open + gate.refused < 10:  # the server accepts on its own schedule
        assert time.monotonic() < deadline, (gate.open, gate.refused)
        await asyncio.sleep(0.01)
    assert (gate.open, gate.refused) == (3, 7)  # a burst cannot overshoot the cap
    reads = {asyncio.ensure_future(reader.read()): (reader, writer) for reader, writer in conns}
    refused: list[bytes] = []
    pending = set(reads)
    while len(refused) < 7:  # the refused ones are answered and closed by the server
        done, pending = await asyncio.wait(
            pending, timeout=DEADLINE_S, return_when=asyncio.FIRST_COMPLETED
        )
        assert done, f"only {len(refused)} refusals arrived"
        refused.extend(task.result() for task in done)
    for data in refused:
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), data
        assert b"Retry-After: 1" in head
        assert json.loads(body)["error"]["details"] == {"max_connections": 3}
    # The three admitted connections are still open, and served normally.
    assert len(pending) == 3
    for task in pending:
        task.cancel()
        reader, writer = reads[task]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, _ = await _until_closed(reader)
        assert data.startswith(b"HTTP/1.1 200"), data
    for _, writer in conns:
        writer.close()


async def test_a_burst_of_new_connections_waits_in_the_listen_queue(listen: Any) -> None:
    # 300 clients dial at once while the server accepts nothing (this coroutine holds the
    # loop): the kernel completes each handshake only while the listen queue has room.
    # asyncio's default queue of 100 drops the rest, so those clients wait for SYN retries.
    listener = await listen(header_timeout_s=60)
    socks = [socket.socket() for _ in range(300)]
    try:
        for sock in socks:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", listener.port))
        waiting, deadline = list(socks), time.monotonic() + 3.0
        while waiting and time.monotonic() < deadline:
            _, ready, _ = select.select([], waiting, [], deadline - time.monotonic())
            waiting = [s for s in waiting if s not in ready]
        assert not waiting, f"{len(waiting)} of 300 handshakes were dropped"
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for s in socks)
    finally:
        for sock in socks:
            sock.close()
