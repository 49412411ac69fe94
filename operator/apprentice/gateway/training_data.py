"""What a version trains on: selected here, once, for both run modes.

A training run's data is decided by the gateway, from the store, by one function
(:func:`read_training_data`):

- the *covered snapshot*: exactly the examples the engine counted when the run
  became due (oldest first), not whatever arrived since, so a retried run trains
  the same data;
- the *held-out firewall*: only the ``train`` split, only schema-valid teacher
  answers, one conversation per input (:mod:`apprentice.training.corpus`);
- *recency*: after a shift, drift or emergency, examples the change made wrong
  are retired and newer ones weigh more (:mod:`apprentice.training.recency`);
- *coaching weights*: while the task is coaching, examples the student got wrong
  (its comparison score < 1) are repeated ``training.coaching_weight`` times.
- *the warm start*: the adapter the run starts from, the active version's
  (:func:`apprentice.orchestration.datasets.warm_start`; ``training.warm_start``).

Both run modes read it through the gateway: the embedded ``LocalOrchestrator``
through its hooks (:class:`apprentice.orchestration.seam.GatewayHooks`), the
Kubernetes trainer Job through the admin API
(``GET /admin/tasks/{task}/training/dataset``). So the two modes train on the
same examples for the same store state.

``mark_trained`` follows the same path: the gateway remembers the data it handed
out for a task's run (:class:`TrainingRuns`) and, when that run's version is
registered (by the orchestrator or, in Kubernetes, by the operator through the
admin API), marks the covered train examples with the version. The memory is the
gateway process's: a gateway restarted between handing out the data and the
registration leaves those examples unmarked (the mark is informational; nothing
decides on it).
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from apprentice.config import ApprenticeConfig, LocalConfig, TaskConfig
from apprentice.orchestration import datasets
from apprentice.orchestration.seam import TrainingData
from apprentice.store import base as store_base
from apprentice.store import records
from apprentice.training import corpus, recency
from apprentice.training.dataset import INIT_ADAPTER_HEADER

__all__ = [
    "TrainingData",
    "TrainingRuns",
    "read_training_data",
    "response_headers",
    "weigh_examples",
]


def weigh_examples(
    task: TaskConfig,
    examples: Sequence[records.ExampleRecord],
    local: LocalConfig,
    *,
    coaching: bool = False,
    scores: Mapping[str, float] | None = None,
    since: datetime | None = None,
) -> corpus.Selection:
    """The run's dataset; ``scores`` (request id -> agreement) marks what the student got wrong.

    ``since``: the last shift, drift or emergency; examples it made wrong are retired
    and newer ones weighted (:mod:`apprentice.training.recency`).
    """
    kept, _ = recency.retire(list(examples), since)
    rows: list[dict[str, Any]] = []
    for example, repeat in zip(kept, recency.weights(kept, since), strict=True):
        row = dataclasses.asdict(example)
        row["repeat"] = repeat
        if scores and example.request_id is not None and example.request_id in scores:
            row["student_score"] = scores[example.request_id]
        rows.append(row)
    return corpus.training_selection(task, rows, hyper=local.training, coaching=coaching)


def read_training_data(
    store: store_base.Store,
    cfg: ApprenticeConfig,
    task: str,
    *,
    covered: int | None,
    coaching: bool,
) -> TrainingData:
    """The data of ``task``'s run from the store (blocking: call it off the event loop)."""
    if covered is None:
        examples = list(store.iter_examples(task, "train"))
    else:
        examples = [e for e in store.examples(task, None, covered) if e.split == "train"]
    scores: dict[str, float] = {}
    if coaching:
        scores = {c.request_id: c.score for c in store.comparisons(task)}
    since = datasets.last_change(store, task)
    selection = weigh_examples(
        cfg.task(task), examples, cfg.local, coaching=coaching, scores=scores, since=since
    )
    ids = tuple(e.id for e in examples if e.id is not None)
    # The adapter the run starts from is decided here too, so both modes warm-start alike
    # (in Kubernetes the path is on the task's volume, mounted alike in the trainer pod).
    init = datasets.warm_start(store, task, cfg.local)
    return TrainingData(selection, covered, ids, init)


def response_headers(data: TrainingData) -> dict[str, str]:
    """The headers of ``GET .../training/dataset``: the data's hash and, for a warm
    start, the adapter the trainer Job starts from (percent-encoded: a header is ASCII)."""
    headers = {"X-Apprentice-Data-Hash": data.selection.dataset.data_hash}
    if data.init_adapter is not None:
        headers[INIT_ADAPTER_HEADER] = urllib.parse.quote(data.init_adapter, safe="/")
    return headers


class TrainingRuns:
    """The data handed out for each task's current run, until its version is registered.

    Thread-safe: the store work runs in worker threads.
    """

    def __init__(self) -> None:
        self._open: dict[str, TrainingData] = {}
        self._lock = threading.Lock()

    def training_data(
        self,
        store: store_base.Store,
        cfg: ApprenticeConfig,
        task: str,
        *,
        covered: int | None,
        coaching: bool,
    ) -> TrainingData:
        """Read the run's data and remember it for :meth:`registered`."""
        data = read_training_data(store, cfg, task, covered=covered, coaching=coaching)
        with self._lock:
            self._open[task] = data
        return data

    def forget(self, task: str) -> None:
        """A new run started, or the run failed: nothing is owed a mark."""
        with self._lock:
            self._open.pop(task, None)

    def registered(self, store: store_base.Store, task: str, version: str) -> int:
        """Mark the covered examples of the run's data as trained by ``version``.

        Returns how many were newly marked (0 when no data was handed out: a version
        registered by hand, or a second registration of the same run).
        """
        with self._lock:
            data = self._open.pop(task, None)
        if data is None:
            return 0
        return store.mark_trained(task, data.covered_ids, version)
