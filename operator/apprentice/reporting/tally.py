"""Counters and histograms that the request path updates for the price of a float add.

``prometheus_client``'s ``Counter.inc`` and ``Histogram.observe`` take a lock per value
and run two Python-level checks per call: about 1 µs per update, and a served request
makes four (requests, request duration, student duration, savings), a twentieth of the
facade's whole request. The request path runs on one event loop thread, so the values
here are plain attributes of one object per label tuple, with no lock; a scrape reads
them through :meth:`collect`, the collector protocol of ``CollectorRegistry``.

What a scrape sees is what ``prometheus_client`` would expose for the same updates: the
same family name, type, help and labels, ``_total`` and ``_created`` for a counter,
cumulative ``_bucket`` (``le`` spelled as the client spells it), ``_count``, ``_sum`` and
``_created`` for a histogram, one series per label tuple in the order first used.

Only for metrics updated on the event loop: an update from another thread could lose an
increment (the alerts' and the retention pruner's counters stay ``prometheus_client``'s).
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Sequence
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

__all__ = ["Count", "CounterTally", "Histo", "HistogramTally", "Tally"]


class Count:
    """One labelled counter: ``value`` only grows (callers add amounts >= 0)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()


class Histo:
    """One labelled histogram: per-bucket counts (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        """As ``Histogram.observe``: the first bucket whose bound is >= ``amount``."""
        self.sum += amount
        i = bisect.bisect_left(self.bounds, amount)
        if i < len(self.bounds) and amount == amount:  # NaN: in the sum only, as there
            self.counts[i] += 1


C = TypeVar("C", Count, Histo)


class Tally(Generic[C]):
    """A family of labelled values, registered on ``registry`` as a collector."""

    kind = ""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.children: dict[tuple[str, ...], C] = {}
        registry.register(self)

    def describe(self) -> list[Metric]:
        return [Metric(self.name, self.documentation, self.kind)]

    def collect(self) -> list[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        for values, child in list(self.children.items()):
            self._add(metric, dict(zip(self.labelnames, values, strict=True)), child)
        return [metric]

    def _add(self, metric: Metric, labels: dict[str, str], child: C) -> None:
        raise NotImplementedError


class CounterTally(Tally[Count]):
    """A labelled counter; ``child(labels).value += amount`` counts."""

    kind = "counter"

    def child(self, *labels: str) -> Count:
        found = self.children.get(labels)
        if found is None:
            found = self.children[labels] = Count()
        return found

    def _add(self, metric: Metric, labels: dict[str, str], child: Count) -> None:
        metric.add_sample(self.name + "_total", labels, child.value)
        metric.add_sample(self.name + "_created", labels, child.created)


class HistogramTally(Tally[Histo]):
    """A labelled histogram over ``buckets`` (+Inf added); ``child(labels).observe(x)``."""

    kind = "histogram"

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        buckets: Sequence[float],
    ) -> None:
        bounds = [float(b) for b in buckets]
        self.bounds = tuple(bounds if bounds[-1] == math.inf else [*bounds, math.inf])
        # ``le`` as the client spells it (0.5, 1.0, +Inf)
        self.les = tuple(str(floatToGoString(b)) for b in self.bounds)  # type: ignore[no-untyped-call]
        super().__init__(name, documentation, labelnames, registry)

    def child(self, *labels: str) -> Histo:
        found = self.children.get(labels)
        if found is None:
            found = self.children[labels] = Histo(self.bounds)
        return found

    def _add(self, metric: Metric, labels: dict[str, str], child: Histo) -> None:
        acc = 0.0
        for le, count in zip(self.les, list(child.counts), strict=True):
            acc += count
            metric.add_sample(self.name + "_bucket", {**labels, "le": le}, acc)
        metric.add_sample(self.name + "_count", labels, acc)
        metric.add_sample(self.name + "_sum", labels, child.sum)
        metric.add_sample(self.name + "_created", labels, child.created)
