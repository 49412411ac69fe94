"""Traces of the request path: the switch the pipeline's steps call, a no-op when off.

Each step wraps its work in one of these hooks::

    with tracing.request(task):                       # apprentice.request (root)
        req = await admission.admit(...)
        tracing.admitted(req)                         # route, phase, request id
        await deadlines.run(tracing.teacher(req, call), ...)   # chat {model} (gen_ai.*)
        await deadlines.run(tracing.student(req, call), ...)   # apprentice.student
        await tracing.judge(req, judging.judge(...))           # apprentice.judge
        await tracing.commit(req, committer.commit(req))       # apprentice.commit
            await tracing.store(req, future)                   #   apprentice.store

With tracing off (the default) a hook returns the awaitable it was given (or a
shared ``nullcontext``): one global read per step, and nothing of OpenTelemetry is
imported. :func:`start` turns it on for the process from ``telemetry.traces``: the
SDK and the OTLP/HTTP exporter live in :mod:`apprentice.gateway.tracing_otel`,
imported only then (they are an optional extra, ``otel``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, TypeVar

from apprentice.config import ApprenticeConfig
from apprentice.gateway import errors
from apprentice.gateway.request import Request

if TYPE_CHECKING:  # types only: importing them at run time would load OpenTelemetry
    from apprentice.gateway.tracing_otel import Spans

__all__ = ["Tracing", "admitted", "commit", "incoming", "judge", "request", "start", "store",
           "student", "teacher"]  # fmt: skip

T = TypeVar("T")

_OFF: AbstractContextManager[object] = nullcontext()  # reusable: nullcontext keeps no state
_spans: Spans | None = None  # set by start(), cleared by Tracing.close(); None: tracing off


class Tracing:
    """Tracing turned on for this process: flush and shut down its exporter when done."""

    def __init__(self, spans: Spans) -> None:
        self.spans = spans

    def flush(self) -> None:
        """Send every finished span now (blocking: call it off the event loop)."""
        self.spans.flush()

    def close(self) -> None:
        """Flush, stop the exporter and turn tracing off (blocking: off the event loop)."""
        global _spans
        if _spans is self.spans:
            _spans = None
        self.spans.close()


def start(cfg: ApprenticeConfig) -> Tracing | None:
    """Turn tracing on when ``telemetry.traces.enabled``; None (and no import) when not.

    Raises :class:`~apprentice.gateway.errors.StartupError` naming the extra to
    install when the OpenTelemetry packages are missing.
    """
    global _spans
    traces = cfg.telemetry.traces
    if not traces.enabled:
        return None
    try:
        # Lazy on purpose: the SDK, the exporter and protobuf load only when tracing is on.
        from apprentice.gateway import tracing_otel
    except ImportError as exc:
        raise errors.StartupError(
            f"telemetry.traces.enabled needs OpenTelemetry ({exc.name} is missing): "
            "pip install 'apprentice[otel]'"
        ) from exc
    _spans = tracing_otel.Spans(cfg)
    return Tracing(_spans)


def incoming(headers: Mapping[str, str]) -> AbstractContextManager[object]:
    """A caller's W3C ``traceparent`` header as the parent of the request's spans.

    For the HTTP layer, around its call into the gateway: the request's spans then
    join the caller's trace, and a caller that sampled its trace is traced whatever
    ``sample_ratio`` says (parent-based sampling).
    """
    spans = _spans
    if spans is None or "traceparent" not in headers:
        return _OFF
    return spans.incoming(headers)


def request(task: str) -> AbstractContextManager[object]:
    """The request's root span, current while the steps run inside it."""
    spans = _spans
    return _OFF if spans is None else spans.request(task)


def admitted(req: Request) -> None:
    """Put what admission decided (request id, route, phase) on the request's span."""
    spans = _spans
    if spans is not None:
        spans.admitted(req)


def teacher(req: Request, call: Awaitable[T]) -> Awaitable[T]:
    """The teacher call as a gen_ai client span (model, provider, tokens, cost)."""
    spans = _spans
    return call if spans is None else spans.teacher(req, call)


def student(req: Request, call: Awaitable[T]) -> Awaitable[T]:
    """The student call (version, valid or not, cost when paid)."""
    spans = _spans
    return call if spans is None else spans.student(req, call)


def judge(req: Request, call: Awaitable[T]) -> Awaitable[T]:
    """The comparison (score, judge cost): run only when both answered (the pipeline's check)."""
    spans = _spans
    return call if spans is None else spans.judge(req, call)


def commit(req: Request, call: Awaitable[T]) -> Awaitable[T]:
    """The commit step; when it ends, the request span gets who served, version and cost."""
    spans = _spans
    return call if spans is None else spans.commit(req, call)


def store(req: Request, call: Awaitable[T]) -> Awaitable[T]:
    """Waiting for the request's store transaction to be durable."""
    spans = _spans
    return call if spans is None else spans.store(req, call)
