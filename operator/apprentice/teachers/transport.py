"""The connection pool under every remote teacher: aiohttp's, behind httpx's interface.

httpx's own pool (httpcore) rescans every queued request against every connection
each time one starts or ends (encode/httpx#3215), so its CPU per call grows with the
calls in flight; and it keeps only 20 connections alive, so a teacher that answers
in a second, called 100 times a second, reopens a connection for most calls. A real
teacher is slow, so hundreds of calls are in flight at modest traffic.

aiohttp's connector hands out and takes back connections in constant time and keeps
as many alive as it holds. This transport puts it under :class:`httpx.AsyncClient`,
so everything above the socket is unchanged: the retry, rate-limit and cost policy in
:mod:`apprentice.teachers.http` still sees ``httpx`` responses and ``httpx``
exceptions (a refused connection is still :class:`httpx.ConnectError`, never billed;
a dropped read is still :class:`httpx.ReadError`, maybe billed). The response body
is passed up still encoded, and httpx decodes it, as it does for its own pool.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx

from apprentice.config import ProviderConfig

__all__ = ["MAX_CONNECTIONS", "MIN_CONNECTIONS", "AiohttpTransport", "JsonPoster", "pool_size"]

MIN_CONNECTIONS = 64
"""Fewest connections a teacher may hold: room for bursts when its rate limit is low."""
MAX_CONNECTIONS = 4096
"""Most connections a teacher may hold, and what one without a rate limit gets."""
KEEPALIVE_S = 5.0
"""An idle connection is closed after this long (httpx's own default)."""


def pool_size(config: ProviderConfig) -> int:
    """Connections one teacher may hold: as many calls as its rate limit lets be in flight.

    ``requests_per_minute`` over 60 is the calls started per second; each may last up
    to ``timeout_s``, so their product is the most that can be in flight at once. More
    connections would only queue at the rate limiter; fewer would queue in the pool.
    """
    rpm = config.rate_limits.requests_per_minute
    if rpm is None:
        return MAX_CONNECTIONS
    in_flight = math.ceil(rpm / 60.0 * config.timeout_s)
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, in_flight))


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session with ``connections`` kept-alive connections, opened on first use."""

    def __init__(self, connections: int = MAX_CONNECTIONS, keepalive_s: float = KEEPALIVE_S):
        self.connections = connections
        self.keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Created inside the running loop (aiohttp binds a session to it).
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.connections,
                limit_per_host=0,
                keepalive_timeout=self.keepalive_s,
                ttl_dns_cache=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes, as it does for bytes from its own pool
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),  # waiting for a free connection, then opening one
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        content = await request.aread()
        try:
            async with self._open().request(
                request.method,
                str(request.url),
                data=content or None,
                headers=request.headers.multi_items(),
                timeout=timeout,
                allow_redirects=False,
                compress=None,
            ) as response:
                body = await response.read()
                return httpx.Response(
                    response.status,
                    headers=list(response.raw_headers),
                    stream=httpx.ByteStream(body),
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
        except aiohttp.ClientError as exc:
            raise _translate(exc, request) from exc
        except TimeoutError as exc:  # the deadline hit outside a socket operation
            raise httpx.ReadTimeout(f"timed out: {exc}", request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _translate(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """The httpx exception httpcore raises for the same failure (billing reads its type)."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)  # never reached the provider
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)  # refused, unresolvable, TLS
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message, request=request)
    return httpx.ReadError(message, request=request)  # sent, then the connection failed


_HEADERS = {
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
    "connection": "keep-alive",
    "user-agent": f"python-httpx/{httpx.__version__}",
    "content-type": "application/json",
}
_MAX_URLS = 256


class JsonPoster:
    """POSTs a JSON body straight to a transport, without :class:`httpx.AsyncClient`.

    The client's per-request work (URL merging, cookie extraction through urllib,
    auth and redirect flows) cost more CPU than the pool itself, and a teacher needs
    none of it: no cookies, no redirects, a key in a header. The request that reaches
    the wire is the one the client sent: the same headers, the same compact JSON, the
    same per-attempt timeouts.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport, timeout_s: float) -> None:
        self.transport = transport
        self._timeout = {"connect": timeout_s, "read": timeout_s, "write": timeout_s}
        self._timeout["pool"] = timeout_s
        self._urls: dict[str, httpx.URL] = {}

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpx.URL(url)
            if len(self._urls) < _MAX_URLS:  # a teacher has a handful; never grow unbounded
                self._urls[url] = parsed
        return parsed

    async def post(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> httpx.Response:
        """The whole response (body read), or the transport's :class:`httpx.TransportError`."""
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        request = httpx.Request(
            "POST",
            self._url(url),
            headers={**_HEADERS, **headers},
            content=content.encode("utf-8"),
            extensions={"timeout": self._timeout},
        )
        response = await self.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()
