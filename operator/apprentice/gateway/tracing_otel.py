"""The OpenTelemetry side of :mod:`apprentice.gateway.tracing`: imported only when tracing is on.

One trace per request::

    apprentice.request            SERVER  task, request id, route, phase, served_by,
    |                                     version, cost_usd (teacher + student + judge)
    +- chat {model}               CLIENT  gen_ai.* (the teacher), cost_usd
    +- apprentice.student         INTERNAL (CLIENT when paid): version, valid, cost_usd
    +- apprentice.judge           INTERNAL score, cost_usd
    +- apprentice.commit          INTERNAL
       +- apprentice.store        CLIENT  db.system.name: waiting for the durable write

The teacher span follows OpenTelemetry's GenAI client conventions (name ``chat
{gen_ai.request.model}``, ``gen_ai.operation.name``, ``gen_ai.provider.name``,
``gen_ai.request.model`` / ``gen_ai.response.model``, ``gen_ai.usage.input_tokens``
/ ``output_tokens``, ``error.type`` on failure); what no convention covers is
``apprentice.*``. Inputs and outputs are never put on spans (they may be personal).

Spans go to an OTLP/HTTP collector through a batch processor (a background thread:
a request never waits for an export). While tracing is on, every log record gets
``trace_id`` / ``span_id`` (hex; empty outside a span), so ``%(trace_id)s`` in a
log format ties a line to its trace; :data:`LOG_FORMAT` is such a format.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from apprentice.config import ApprenticeConfig
from apprentice.gateway import settling
from apprentice.gateway.request import Request
from apprentice.students.base import StudentAnswer
from apprentice.teachers.base import TeacherAnswer

T = TypeVar("T")

LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s trace_id=%(trace_id)s span_id=%(span_id)s %(message)s"
)

_W3C = TraceContextTextMapPropagator()  # the ``traceparent`` / ``tracestate`` headers

# gen_ai.provider.name's well-known values where ours differ (OpenTelemetry's registry).
_GEN_AI_PROVIDER = {"google": "gcp.gemini"}


def _error_type(exc: BaseException) -> str:
    return type(exc).__qualname__


class Spans:
    """A tracer provider exporting over OTLP/HTTP, and the request path's spans."""

    def __init__(self, cfg: ApprenticeConfig) -> None:
        traces = cfg.telemetry.traces
        # An endpoint in the config wins; unset, the exporter reads the standard
        # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT itself.
        url = None if traces.endpoint is None else traces.endpoint.rstrip("/") + "/v1/traces"
        self.provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(traces.sample_ratio)),
            resource=Resource.create({"service.name": traces.service_name}),
            shutdown_on_exit=False,  # Tracing.close() flushes and shuts it down
        )
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        self.tracer = self.provider.get_tracer("apprentice.gateway")
        primary = cfg.remote.providers()[0]
        self.teacher_model = primary.model or str(primary.provider)
        self.teacher_provider = str(primary.provider)
        self.student_model = cfg.local.serving_base()
        url_scheme = cfg.store.url.split(":", 1)[0]
        self.db_system = "sqlite" if url_scheme == "sqlite" else "postgresql"
        self._old_factory = _log_ids()

    def flush(self) -> None:
        self.provider.force_flush()

    def close(self) -> None:
        if logging.getLogRecordFactory() is not self._old_factory:
            logging.setLogRecordFactory(self._old_factory)
        self.provider.shutdown()  # flushes what the batch still holds

    # -- the spans ----------------------------------------------------------------------------

    @contextmanager
    def incoming(self, headers: Mapping[str, str]) -> Iterator[None]:
        token = context.attach(_W3C.extract(headers))
        try:
            yield
        finally:
            context.detach(token)

    def request(self, task: str) -> AbstractContextManager[object]:
        attrs = {"apprentice.task": task}
        return self.tracer.start_as_current_span(
            "apprentice.request", kind=SpanKind.SERVER, attributes=attrs
        )

    def admitted(self, req: Request) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attributes(
            {
                "apprentice.request_id": req.id,
                "apprentice.route": req.stored_route,
                "apprentice.phase": req.task.engine.phase_name(),
            }
        )
        if req.meta.caller is not None:  # an API key's public id, never the key
            span.set_attribute("apprentice.caller", req.meta.caller)
        for key, value in req.meta.tags.items():
            span.set_attribute(f"apprentice.tag.{key}", value)

    def teacher(self, req: Request, call: Awaitable[T]) -> Awaitable[T]:
        return self._teacher(req, call) if _recording() else call

    async def _teacher(self, req: Request, call: Awaitable[T]) -> T:
        model = self.teacher_model
        attrs: dict[str, str] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": model,
            "gen_ai.provider.name": _GEN_AI_PROVIDER.get(self.teacher_provider,
                                                         self.teacher_provider),
            "apprentice.task": req.task.name,
        }  # fmt: skip
        with self.tracer.start_as_current_span(
            f"chat {model}", kind=SpanKind.CLIENT, attributes=attrs
        ) as span:
            try:
                answer = await call
            except BaseException as exc:
                span.set_attribute("error.type", _error_type(exc))
                provider = settling.provider_of(exc)
                if provider is not None:
                    span.set_attribute(
                        "gen_ai.provider.name", _GEN_AI_PROVIDER.get(provider, provider)
                    )
                raise  # the SDK records the exception and the error status
            if isinstance(answer, TeacherAnswer):
                _teacher_answer(span, answer)
            return answer

    def student(self, req: Request, call: Awaitable[T]) -> Awaitable[T]:
        return self._student(req, call) if _recording() else call

    async def _student(self, req: Request, call: Awaitable[T]) -> T:
        paid = req.student_hold is not None
        attrs: dict[str, str] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": self.student_model,
            "apprentice.task": req.task.name,
        }
        kind = SpanKind.CLIENT if paid else SpanKind.INTERNAL
        with self.tracer.start_as_current_span(
            "apprentice.student", kind=kind, attributes=attrs
        ) as span:
            answer = await _noting_error(span, call)
            if isinstance(answer, StudentAnswer):
                if answer.version is not None:
                    span.set_attribute("apprentice.version", answer.version)
                span.set_attribute("apprentice.student.valid", answer.output is not None)
                span.set_attribute("apprentice.cost_usd", float(answer.cost or 0.0))
            return answer

    def judge(self, req: Request, call: Awaitable[T]) -> Awaitable[T]:
        return self._judge(req, call) if _recording() else call

    async def _judge(self, req: Request, call: Awaitable[T]) -> T:
        attrs = {
            "apprentice.task": req.task.name,
            "apprentice.evaluator": str(req.task.cfg.evaluator),
        }
        with self.tracer.start_as_current_span("apprentice.judge", attributes=attrs) as span:
            result = await _noting_error(span, call)
            evaluation = req.evaluation
            if evaluation is not None:
                span.set_attribute("apprentice.score", float(evaluation.score))
                span.set_attribute("apprentice.cost_usd", float(evaluation.cost))
            return result

    def commit(self, req: Request, call: Awaitable[T]) -> Awaitable[T]:
        return self._commit(req, call) if _recording() else call

    async def _commit(self, req: Request, call: Awaitable[T]) -> T:
        root = trace.get_current_span()  # the request's span: it gets the outcome
        try:
            with self.tracer.start_as_current_span("apprentice.commit") as span:
                return await _noting_error(span, call)
        finally:
            _outcome(root, req)

    def store(self, req: Request, call: Awaitable[T]) -> Awaitable[T]:
        return self._store(req, call) if _recording() else call

    async def _store(self, req: Request, call: Awaitable[T]) -> T:
        attrs = {"db.system.name": self.db_system, "apprentice.task": req.task.name}
        with self.tracer.start_as_current_span(
            "apprentice.store", kind=SpanKind.CLIENT, attributes=attrs
        ) as span:
            return await _noting_error(span, call)


def _recording() -> bool:
    """Whether the current span records: a request sampled out gets no child spans at all."""
    return trace.get_current_span().is_recording()


async def _noting_error(span: Span, call: Awaitable[T]) -> T:
    try:
        return await call
    except BaseException as exc:
        span.set_attribute("error.type", _error_type(exc))
        raise


def _teacher_answer(span: Span, answer: TeacherAnswer) -> None:
    span.set_attributes(
        {
            "gen_ai.provider.name": _GEN_AI_PROVIDER.get(answer.provider, answer.provider),
            "gen_ai.response.model": answer.model,
            "gen_ai.usage.input_tokens": answer.usage.input_tokens,
            "gen_ai.usage.output_tokens": answer.usage.output_tokens,
            "apprentice.cost_usd": float(answer.cost),
            "apprentice.attempts": answer.attempts,
        }
    )


def _outcome(span: Span, req: Request) -> None:
    """What the request came to: who served, which version, what it cost in all."""
    judged = 0.0 if req.evaluation is None else float(req.evaluation.cost)
    attrs: dict[str, Any] = {
        "apprentice.route": req.stored_route,  # a local-only fallback may have changed it
        "apprentice.cost_usd": req.teacher_cost + req.student_cost + judged,
    }
    if req.served_by is not None:
        attrs["apprentice.served_by"] = req.served_by
    version = req.student.version if req.student is not None else None
    version = version or req.task.engine.active_version
    if version is not None:
        attrs["apprentice.version"] = version
    span.set_attributes(attrs)


def _log_ids() -> Callable[..., logging.LogRecord]:
    """Give every log record the current span's ``trace_id``/``span_id``; the old factory."""
    old = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old(*args, **kwargs)
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        else:
            record.trace_id = record.span_id = ""
        return record

    logging.setLogRecordFactory(factory)
    if not logging.getLogger().handlers:  # `apprentice serve`: nobody formats logs yet
        logging.basicConfig(format=LOG_FORMAT)
    return old
