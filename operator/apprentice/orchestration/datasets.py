"""Examples -> training data and trainer specs, at the orchestrator's side of the seam.

The rules (train split only, schema-valid teacher answers, duplicates collapsed,
coaching weights) and the formats live in :mod:`apprentice.training`; this
module only joins them with what the store knows (the student's score on each
example's request, for coaching) and writes the spec the trainer subprocess reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from apprentice.config import FineTuneBackend, LocalConfig, TaskConfig
from apprentice.store import records
from apprentice.training import corpus, export, recency
from apprentice.training.run import TrainingSpec

FORMATS = tuple(f.value for f in export.ExportFormat)


def render_line(task: TaskConfig, example: records.ExampleRecord, fmt: str) -> str:
    """One JSONL line of ``example`` in ``fmt`` (chat | openai | alpaca)."""
    return json.dumps(export.record(task, example.input, example.output, fmt), ensure_ascii=False)


def select(
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
        row = asdict(example)
        row["repeat"] = repeat
        if scores and example.request_id is not None and example.request_id in scores:
            row["student_score"] = scores[example.request_id]
        rows.append(row)
    return corpus.select(task, rows, hyper=local.training, coaching=coaching)


CPU_TRAINING_THREADS = 2
"""Torch threads of a CPU training run: fixed, so the same data and seed give the same
adapter on any machine (float sums depend on how many threads split them), and two
is what the demo's 2-core target machine has."""


def training_spec(local: LocalConfig, dataset: Path, out_dir: Path) -> TrainingSpec:
    """What ``python -m apprentice.training.run --spec`` reads."""
    return TrainingSpec(
        threads=CPU_TRAINING_THREADS if local.device == "cpu" else None,
        dataset=str(dataset),
        out_dir=str(out_dir),
        base_model=local.training_base(),
        backend=local.fine_tune_backend,
        hyper=local.training,
        device=local.device,
        # the openai backend trains through the same key and endpoint its student uses
        api_key_env=local.api_key_env,
        base_url=local.base_url if local.fine_tune_backend is FineTuneBackend.openai else None,
    )
