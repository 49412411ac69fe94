"""The HTTP client under every remote teacher: one aiohttp session, used directly.

Why aiohttp, and why directly:

- httpx's own pool (httpcore) rescans every queued request against every connection
  each time one starts or ends (encode/httpx#3215), so its CPU per call grows with the
  calls in flight; and it keeps only 20 connections alive. A real teacher answers in
  about a second, so hundreds of calls are in flight at modest traffic. aiohttp's
  connector hands out and takes back connections in constant time and keeps as many
  alive as it holds.
- Building httpx request and response objects over aiohttp cost more CPU than the
  pool itself (41% of the gateway's GIL time as a proxy). A teacher needs none of a
  general client: no cookies, no redirects, a key in a header, one JSON body out and
  one back. :class:`JsonPoster` sends that with the session and returns a
  :class:`Response` that holds only what the policy reads.

Failures are translated into this module's own exception types, because billing
reads their kind (:func:`apprentice.teachers.billing.may_have_billed`):

- :class:`ConnectError` (and :class:`ConnectTimeout`): the request never reached the
  provider (refused, unresolvable, TLS, no connection in time): never billed;
- :class:`ReadError` (and :class:`ReadTimeout`): it was sent, then the connection or
  the read failed: the model may have run, so it may have been billed.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from apprentice.config import ProviderConfig

__all__ = [
    "MAX_CONNECTIONS",
    "MIN_CONNECTIONS",
    "ConnectError",
    "ConnectTimeout",
    "Headers",
    "JsonPoster",
    "ReadError",
    "ReadTimeout",
    "Response",
    "Streamed",
    "TransportError",
    "encode_json",
    "failure",
    "pool_size",
]

MIN_CONNECTIONS = 64
"""Fewest connections a teacher may hold: room for bursts when its rate limit is low."""
MAX_CONNECTIONS = 4096
"""Most connections a teacher may hold, and what one without a rate limit gets."""
KEEPALIVE_S = 5.0
"""An idle connection is closed after this long."""

Headers = Mapping[str, str]
"""Response headers; the poster's are case-insensitive (aiohttp's ``CIMultiDictProxy``)."""


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


class TransportError(Exception):
    """An attempt that got no HTTP response at all."""


class ConnectError(TransportError):
    """The request never reached the provider: refused, unresolvable, TLS. Never billed."""


class ConnectTimeout(ConnectError):
    """No connection within ``timeout_s`` (waiting for a free one, then opening it)."""


class ReadError(TransportError):
    """Sent, then the connection failed or the answer was garbled: the model may have run."""


class ReadTimeout(ReadError):
    """Sent, then no answer within ``timeout_s``: the model may have run."""


def failure(exc: aiohttp.ClientError | TimeoutError) -> TransportError:
    """The :class:`TransportError` for what aiohttp raised (a streaming post reuses it)."""
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeout(message)  # never reached the provider
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectError(message)  # refused, unresolvable, TLS
    if isinstance(exc, TimeoutError):  # a socket read, or a deadline outside one
        return ReadTimeout(message)
    return ReadError(message)  # sent, then disconnected, reset or a malformed answer


@dataclass(frozen=True, slots=True)
class Response:
    """One whole HTTP response: what the retry, rate-limit and cost policy reads."""

    status: int
    headers: Headers
    body: bytes

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body decoded as JSON; :class:`ValueError` when it is not JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass(frozen=True, slots=True)
class Streamed:
    """A response whose body is read as it arrives (:meth:`JsonPoster.post_stream`)."""

    status: int
    headers: Headers
    response: aiohttp.ClientResponse

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, piece by piece as the socket delivers it."""
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise failure(exc) from exc

    async def read(self) -> bytes:
        """The whole body (an error answer)."""
        try:
            return await self.response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise failure(exc) from exc


_HEADERS = {  # and aiohttp's own User-Agent
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
    "content-type": "application/json",
}
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
"""Compact JSON from the C encoder, built once (``json.dumps`` with options builds one a call)."""


def encode_json(value: object) -> bytes:
    """A request body's bytes: compact UTF-8 JSON, NaN refused (what :meth:`JsonPoster.post`
    sends for a dict)."""
    return _ENCODE(value).encode()


_MAX_URLS = 256


class JsonPoster:
    """POSTs a JSON body with one aiohttp session of ``connections`` kept-alive connections.

    The session is opened on first use, inside the running loop (aiohttp binds a
    session to its loop). Every attempt has ``timeout_s`` to get a connection, the same
    to open it and the same between reads; no total deadline (the caller has one).
    A streaming post belongs here beside :meth:`post`: same session, same headers,
    errors through :func:`failure`.

    ``headers`` (a teacher's auth: one key, fixed for its life) are the session's own,
    sent on every post; a post's ``headers`` go on top of them, and a post that passes
    the same ones again passes none: aiohttp merging headers into each request cost
    about 10 us of event-loop CPU per call.
    """

    def __init__(
        self,
        timeout_s: float,
        connections: int = MAX_CONNECTIONS,
        keepalive_s: float = KEEPALIVE_S,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.headers: dict[str, str] = dict(headers or {})
        self.connections = connections
        self.keepalive_s = keepalive_s
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def session(self) -> aiohttp.ClientSession:
        """The open session, created on first use in the running loop."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.connections,
                limit_per_host=0,
                keepalive_timeout=self.keepalive_s,
                ttl_dns_cache=60,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={**_HEADERS, **self.headers},
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=self._timeout,
            )
        return self._session

    def url(self, url: str) -> URL:
        """``url`` parsed once: a teacher posts to a handful of URLs."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = URL(url)
            if len(self._urls) < _MAX_URLS:  # never grow unbounded
                self._urls[url] = parsed
        return parsed

    async def post(
        self, url: str, body: dict[str, Any] | bytes, headers: Mapping[str, str]
    ) -> Response:
        """The whole response (body read), or a :class:`TransportError`. ``body``: a dict
        to send as JSON, or its bytes already encoded (:func:`encode_json`)."""
        data = body if isinstance(body, bytes) else encode_json(body)
        extra = None if headers == self.headers else headers  # the session's: sent anyway
        try:
            async with self.session().post(
                self.url(url), data=data, headers=extra, allow_redirects=False
            ) as response:
                return Response(response.status, response.headers, await response.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise failure(exc) from exc

    @asynccontextmanager
    async def post_stream(
        self, url: str, body: dict[str, Any], headers: Mapping[str, str]
    ) -> AsyncIterator[Streamed]:
        """The response with its body unread, to be read as it arrives (a streamed answer);
        failures to connect, and to read while inside, are :class:`TransportError` as for
        :meth:`post`."""
        data = encode_json(body)
        extra = None if headers == self.headers else headers  # the session's: sent anyway
        try:
            async with self.session().post(
                self.url(url), data=data, headers=extra, allow_redirects=False
            ) as response:
                yield Streamed(response.status, response.headers, response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise failure(exc) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
