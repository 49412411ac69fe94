"""Reading a request body into JSON the rest of the gateway can trust.

Every way a body can be bad ends here as a 4xx that names the problem, never as a
500 further in or a 502 blamed on the teacher:

- larger than ``gateway.max_body_bytes``: 413 (before reading, from Content-Length);
- slower than ``gateway.body_timeout_s``: 408, and the connection is closed, so a
  client that sends half a body cannot hold a connection open;
- ``Content-Encoding`` that does not decode (``gzip`` that is not gzip): 400;
- not JSON, or JSON that Python cannot hold safely: ``NaN`` / ``Infinity`` (the
  store would write invalid JSON), numbers that overflow a float or an integer of
  more than 4,300 digits, nesting deeper than :data:`MAX_DEPTH`: 400;
- strings with a lone UTF-16 surrogate (``"\\ud800"``), which no UTF-8 encoder can
  send on to a teacher or write to a store: 400.

The depth and surrogate walks run only when the raw bytes could hold such a case
(enough brackets; a ``\\ud8``-``\\udf`` escape), so an ordinary request pays for
two ``bytes`` scans.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from typing import NoReturn

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from apprentice import prompts
from apprentice.gateway import errors
from apprentice.json_types import JsonObject, JsonValue

__all__ = [
    "MAX_DEPTH",
    "BodyTimeout",
    "HangUp",
    "UnreadableBody",
    "check_tree",
    "dumps",
    "loads",
    "read_json",
]

#: Deepest nesting of arrays and objects accepted; task inputs are far shallower, and
#: the JSON encoder, jsonschema and the store recurse once per level.
MAX_DEPTH = 64

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class HangUp(errors.GatewayError):
    """A failure after which the rest of the body cannot be read: answer, then close.

    Waiting for the rest is what a stalled client holds the connection with, and a
    body that does not decode would only fail again while aiohttp drained it.
    """


class BodyTimeout(HangUp):
    """The body did not arrive within ``gateway.body_timeout_s``."""

    status = 408
    type = "request_timeout"


class UnreadableBody(HangUp):
    """The body's transfer or content encoding is broken."""

    status = 400
    type = "bad_request"


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON; send a finite number or null")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large for a 64-bit float")
    return value


# Built once: ``json.loads`` with hooks would build a decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


dumps = prompts.compact_encoder(sort_keys=False)
"""A response body as compact JSON text, UTF-8 kept (the inverse of :func:`loads`), from an
encoder built once (``json.dumps`` with options builds one per call: 2.8 against 1.0 us
for a task API answer)."""


def _where(path: list[str | int]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "<root>"


def check_tree(
    value: JsonValue, *, deep: bool, surrogates: bool, what: str = "request body"
) -> None:
    """400 for nesting deeper than :data:`MAX_DEPTH` or a string with a lone surrogate."""
    stack: list[tuple[JsonValue, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if deep and len(path) > MAX_DEPTH:
            raise errors.BadRequest(
                f"{what}: JSON nested deeper than {MAX_DEPTH} levels at {_where(path[:8])}...",
                details={"max_depth": MAX_DEPTH},
            )
        if isinstance(node, dict):
            for key, item in node.items():
                if surrogates:
                    _text(key, path, what)
                stack.append((item, [*path, key]))
        elif isinstance(node, list):
            stack.extend((item, [*path, i]) for i, item in enumerate(node))
        elif surrogates and isinstance(node, str):
            _text(node, path, what)


def _text(text: str, path: list[str | int], what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise errors.BadRequest(
            f"{what}: the string at {_where(path)} holds a lone UTF-16 surrogate "
            f"(\\u{ord(text[exc.start]):04x}); encode text as UTF-8 or as a surrogate pair",
            details={"path": _where(path)},
        ) from None


def loads(raw: bytes | str, what: str = "request body") -> JsonValue:
    """``raw`` as JSON under the rules in the module docstring; 400 otherwise."""
    try:
        value: JsonValue = _DECODER.decode(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except json.JSONDecodeError as exc:
        raise errors.BadRequest(f"{what} is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise errors.BadRequest(f"{what} is not UTF-8: byte {exc.start} is invalid") from None
    except RecursionError:
        raise errors.BadRequest(
            f"{what} is nested too deeply (more than {MAX_DEPTH} levels)",
            details={"max_depth": MAX_DEPTH},
        ) from None
    except ValueError as exc:  # NaN, float overflow, an int of more than 4,300 digits
        why = str(exc)
        if "digits" in why:
            why = "an integer longer than Python's limit of 4300 digits; send it as a string"
        raise errors.BadRequest(f"{what} holds a number that cannot be accepted: {why}") from None
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    deep = data.count(b"[") + data.count(b"{") > MAX_DEPTH
    surrogates = _SURROGATE_ESCAPE.search(data) is not None
    if deep or surrogates:
        check_tree(value, deep=deep, surrogates=surrogates, what=what)
    return value


async def read_json(request: web.Request, limit: int, timeout_s: float) -> JsonObject:
    """The body of ``request`` as a JSON object, within the size and time limits."""
    length = request.content_length
    if length is not None and length > limit:
        raise errors.TooLarge(
            f"request body is {length} bytes; gateway.max_body_bytes is {limit}",
            details={"max_body_bytes": limit, "content_length": length},
        )
    try:
        if request.content.is_eof():  # all of it arrived with the head: nothing to wait for
            raw = await request.read()
        else:
            async with asyncio.timeout(timeout_s):
                raw = await request.read()
    except TimeoutError:
        raise BodyTimeout(
            f"request body not received within gateway.body_timeout_s ({timeout_s:g} s)",
            details={"body_timeout_s": timeout_s},
        ) from None
    except (HttpProcessingError, web.RequestPayloadError) as exc:
        # A Content-Encoding that does not decode, a broken chunked encoding.
        encoding = request.headers.get("Content-Encoding", "identity")
        cause = exc.__cause__ or exc
        raise UnreadableBody(
            f"request body could not be read (Content-Encoding: {encoding}): "
            f"{getattr(cause, 'message', None) or cause}".strip(),
            details={"content_encoding": encoding},
        ) from None
    body = loads(raw)
    if not isinstance(body, dict):
        raise errors.BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    return body
