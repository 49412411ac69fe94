"""Prometheus metrics of one Apprentice app, on its own registry.

Every :class:`Metrics` owns a fresh ``CollectorRegistry``: two apps in one
process (tests, a gateway plus a CLI) never share counters, and nothing here is
a module global that tests would have to patch. The gateway calls the small
``record_*`` / ``set_*`` methods on the request path; each keeps the labelled child per
label tuple, so a request costs a dict lookup and an add. The counters and histograms
updated per request are :mod:`apprentice.reporting.tally`'s (no lock, no checks per
update; exposed exactly as ``prometheus_client``'s); the gauges and the counters updated
off the event loop (alerts, the retention pruner) are ``prometheus_client``'s own.

Names, labels and help strings are documented in ``docs/reference/metrics.md``, generated
from this registry (``make docs-generate``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from apprentice.reporting.status import TaskStatus, phase_name, phase_number
from apprentice.reporting.tally import CounterTally, HistogramTally
from apprentice.vocabulary import StoredRoute

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "METRIC_NAMES", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds. The low end resolves the gateway's own sub-millisecond overhead; the
# high end covers slow teacher calls (a frontier model can take tens of seconds).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120,
)  # fmt: skip
AGREEMENT_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0)

METRIC_NAMES = (
    "apprentice_requests_total",
    "apprentice_teacher_calls_total",
    "apprentice_teacher_cost_usd_total",
    "apprentice_savings_usd_total",
    "apprentice_agreement",
    "apprentice_confidence",
    "apprentice_confidence_lower_bound",
    "apprentice_sampling_rate",
    "apprentice_phase",
    "apprentice_examples",
    "apprentice_budget_spend_usd",
    "apprentice_request_duration_seconds",
    "apprentice_teacher_duration_seconds",
    "apprentice_student_duration_seconds",
    "apprentice_alerts_total",
    "apprentice_alerts_dropped_total",
    "apprentice_training_runs_total",
    "apprentice_errors_total",
    "apprentice_cache_lookups_total",
)

_M = TypeVar("_M", Counter, Gauge)


class _Children:
    """Labelled children of one metric, created once per label tuple."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._cache: dict[tuple[Hashable, ...], Any] = {}

    def get(self, *labels: str) -> Any:
        child = self._cache.get(labels)
        if child is None:
            child = self._metric.labels(*labels)
            self._cache[labels] = child
        return child


class Metrics:
    """All Apprentice metrics on one registry, with a cheap per-request API."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        def make(cls: Callable[..., _M], name: str, doc: str, labels: list[str], **kw: Any) -> _M:
            return cls(name, doc, labels, registry=r, **kw)

        # Updated on the event loop for each request: tallies (reporting/tally.py says why).
        def count(name: str, doc: str, labels: list[str]) -> CounterTally:
            return CounterTally(name, doc, labels, r)

        def histogram(name: str, doc: str, labels: list[str], buckets: Any) -> HistogramTally:
            return HistogramTally(name, doc, labels, r, buckets)

        self._requests = count(
            "apprentice_requests", "Requests by task and route.", ["task", "route"]
        )
        self._teacher_calls = count(
            "apprentice_teacher_calls",
            "Teacher (remote API) calls by task and provider.",
            ["task", "provider"],
        )
        self._teacher_cost = count("apprentice_teacher_cost_usd", "Teacher spend, USD.", ["task"])
        self._savings = count(
            "apprentice_savings_usd",
            "Estimated teacher cost avoided by student and cached answers, USD.",
            ["task"],
        )
        self._agreement = histogram(
            "apprentice_agreement",
            "Evaluator agreement score of each comparison.",
            ["task"],
            AGREEMENT_BUCKETS,
        )
        self._confidence = _Children(
            make(Gauge, "apprentice_confidence", "Rolling mean agreement.", ["task"])
        )
        self._lower = _Children(
            make(
                Gauge,
                "apprentice_confidence_lower_bound",
                "Lower confidence bound of agreement (graduation uses it).",
                ["task"],
            )
        )
        self._sampling = _Children(
            make(
                Gauge,
                "apprentice_sampling_rate",
                "Probability a request is also sent to the teacher.",
                ["task"],
            )
        )
        self._phase = _Children(
            make(Gauge, "apprentice_phase", "Lifecycle phase: 1, 2 or 3.", ["task"])
        )
        self._examples = _Children(
            make(Gauge, "apprentice_examples", "Stored examples by split.", ["task", "split"])
        )
        self._budget = _Children(
            make(
                Gauge,
                "apprentice_budget_spend_usd",
                "Spend in the current calendar window, USD.",
                ["scope", "window"],
            )
        )
        self._duration = histogram(
            "apprentice_request_duration_seconds",
            "Whole request time in the gateway, by who served the answer.",
            ["task", "served_by"],
            LATENCY_BUCKETS,
        )
        self._teacher_duration = histogram(
            "apprentice_teacher_duration_seconds",
            "Teacher call latency, retries included.",
            ["task", "provider"],
            LATENCY_BUCKETS,
        )
        self._student_duration = histogram(
            "apprentice_student_duration_seconds",
            "Student generation latency.",
            ["task"],
            LATENCY_BUCKETS,
        )
        self._alerts = _Children(
            make(Counter, "apprentice_alerts", "Alerts raised, by kind.", ["kind"])
        )
        self._alerts_dropped = _Children(
            make(
                Counter,
                "apprentice_alerts_dropped",
                "Alerts not delivered: queue full, duplicate in cool-down or retries exhausted.",
                ["reason"],
            )
        )
        self._training = _Children(
            make(
                Counter,
                "apprentice_training_runs",
                "Training runs by outcome (promoted, canary, rejected, failed).",
                ["task", "result"],
            )
        )
        self._errors = count(
            "apprentice_errors", "Requests answered with an error, by error type.", ["task", "type"]
        )

        self._cache = count(
            "apprentice_cache_lookups",
            "Answer cache lookups of tasks with a cache: hit, shared (joined a call in "
            "flight) or miss.",
            ["task", "result"],
        )
        self._pruned = _Children(
            make(
                Counter,
                "apprentice_request_rows_pruned",
                "Request rows deleted past store.request_retention_days (examples, spend "
                "and feedback are never pruned).",
                ["task"],
            )
        )

    # --- per request -----------------------------------------------------------------

    def record_request(self, task: str, route: StoredRoute, served_by: str, seconds: float) -> None:
        """One finished request, by the route it took and who answered it."""
        self._requests.child(task, route).value += 1
        self._duration.child(task, served_by).observe(seconds)

    def record_teacher_call(
        self, task: str, provider: str, cost_usd: float, seconds: float | None = None
    ) -> None:
        self._teacher_calls.child(task, provider).value += 1
        if cost_usd > 0:
            self._teacher_cost.child(task).value += cost_usd
        if seconds is not None:
            self._teacher_duration.child(task, provider).observe(seconds)

    def record_student_call(self, task: str, seconds: float) -> None:
        self._student_duration.child(task).observe(seconds)

    def record_agreement(self, task: str, score: float) -> None:
        self._agreement.child(task).observe(score)

    def record_savings(self, task: str, usd: float) -> None:
        """Teacher cost avoided by one student or cached answer (an estimate, never negative)."""
        if usd > 0:
            self._savings.child(task).value += usd

    def record_cache(self, task: str, result: str) -> None:
        """One answer cache lookup: ``hit``, ``shared`` or ``miss``."""
        self._cache.child(task, result).value += 1

    def record_error(self, task: str, error_type: str) -> None:
        self._errors.child(task, error_type).value += 1

    # --- state -----------------------------------------------------------------------

    def set_task_state(
        self,
        task: str,
        *,
        phase: str | int,
        sampling_rate: float,
        confidence: float | None = None,
        confidence_lower_bound: float | None = None,
    ) -> None:
        """Gauges that follow the engine's state; ``None`` confidences are left unset."""
        self._phase.get(task).set(phase_number(phase_name(phase)))
        self._sampling.get(task).set(sampling_rate)
        if confidence is not None:
            self._confidence.get(task).set(confidence)
        if confidence_lower_bound is not None:
            self._lower.get(task).set(confidence_lower_bound)

    def set_examples(self, task: str, train: int, heldout: int) -> None:
        self._examples.get(task, "train").set(train)
        self._examples.get(task, "heldout").set(heldout)

    def set_budget_spend(self, scope: str, window: str, usd: float) -> None:
        """scope: a task name or ``global``; window: daily | weekly | monthly."""
        self._budget.get(scope, window).set(usd)

    def update_from_status(self, status: TaskStatus) -> None:
        """Set every gauge a TaskStatus carries (cheap enough after each comparison)."""
        self.set_task_state(
            status.task,
            phase=status.phase,
            sampling_rate=status.sampling_rate,
            confidence=status.confidence,
            confidence_lower_bound=status.confidence_lower_bound,
        )
        self.set_examples(status.task, status.examples.train, status.examples.heldout)
        self.set_budget_spend(status.task, "daily", status.spend.today)
        self.set_budget_spend(status.task, "weekly", status.spend.week)
        self.set_budget_spend(status.task, "monthly", status.spend.month)

    # --- events ----------------------------------------------------------------------

    def record_pruned(self, task: str, rows: int) -> None:
        self._pruned.get(task).inc(rows)

    def record_alert(self, kind: str) -> None:
        self._alerts.get(kind).inc()

    def record_alert_dropped(self, reason: str) -> None:
        self._alerts_dropped.get(reason).inc()

    def record_training_run(self, task: str, result: str) -> None:
        """result: promoted | canary (passed, now tried on live traffic: the verdict is
        the canary_promoted / canary_rolled_back event) | rejected | failed."""
        self._training.get(task, result).inc()

    # --- exposition ------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry (``GET /metrics``)."""
        return bytes(generate_latest(self.registry))

    def value(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """Current value of one sample, for tests and the CLI (None when absent)."""
        got = self.registry.get_sample_value(name, labels or {})
        return None if got is None else float(got)
