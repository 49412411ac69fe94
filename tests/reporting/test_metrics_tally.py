"""The request path's tallies expose exactly what prometheus_client's own metrics would."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from apprentice.reporting.metrics import LATENCY_BUCKETS, Metrics
from apprentice.reporting.tally import CounterTally, HistogramTally

AMOUNTS = [0.0, 0.0004, 0.0005, 0.00051, 0.003, 0.5, 7.0, 60.0, 121.0, math.inf, 0.2, 0.1]


def _lines(registry: CollectorRegistry) -> list[str]:
    """The exposition without the _created timestamps (the time each child was made)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created{" not in line]


def test_a_counter_and_a_histogram_expose_what_prometheus_client_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    count = CounterTally("x_requests", "Requests.", ["task", "route"], ours)
    hist = HistogramTally("x_seconds", "Time.", ["task"], ours, LATENCY_BUCKETS)
    ref_count = Counter("x_requests", "Requests.", ["task", "route"], registry=theirs)
    ref_hist = Histogram("x_seconds", "Time.", ["task"], registry=theirs, buckets=LATENCY_BUCKETS)
    for i, amount in enumerate(AMOUNTS):
        task, route = ("a", "b")[i % 2], ("local_only", "both")[i % 3 == 0]
        count.child(task, route).value += 1.5
        ref_count.labels(task, route).inc(1.5)
        hist.child(task).observe(amount)
        ref_hist.labels(task).observe(amount)
    assert _lines(ours) == _lines(theirs)
    created = [line for line in generate_latest(ours).decode().splitlines() if "_created{" in line]
    assert len(created) == 2 * 2 + 2  # each child of each family has one


def test_a_nan_lands_in_the_sum_only_as_prometheus_client_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    HistogramTally("y", "Y.", ["t"], ours, (0.5, 1.0)).child("t").observe(math.nan)
    Histogram("y", "Y.", ["t"], registry=theirs, buckets=(0.5, 1.0)).labels("t").observe(math.nan)
    assert _lines(ours) == _lines(theirs)


def test_duplicate_names_are_refused_like_any_collector() -> None:
    registry = CollectorRegistry()
    CounterTally("z_total_things", "Z.", ["t"], registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Counter("z_total_things", "Z.", ["t"], registry=registry)


def test_metrics_values_read_through_the_registry() -> None:
    m = Metrics()
    m.record_request("t", "local_only", "student", 0.0003)
    m.record_request("t", "local_only", "student", 0.002)
    m.record_cache("t", "miss")
    assert m.value("apprentice_requests_total", {"task": "t", "route": "local_only"}) == 2
    labels = {"task": "t", "served_by": "student"}
    assert m.value("apprentice_request_duration_seconds_count", labels) == 2
    assert m.value("apprentice_request_duration_seconds_bucket", {**labels, "le": "0.0005"}) == 1
    assert m.value("apprentice_cache_lookups_total", {"task": "t", "result": "miss"}) == 1
