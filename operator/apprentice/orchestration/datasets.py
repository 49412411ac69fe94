"""Export lines, the teacher's last change, and trainer specs, at the orchestrator's side.

Which examples a run trains on is not decided here: the gateway selects it, once,
for both run modes (:mod:`apprentice.gateway.training_data`). This module renders
store examples in the export formats, finds when the teacher last changed (which
both the training selection and held-out validation read), and writes the spec
the trainer subprocess reads.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from apprentice.config import FineTuneBackend, LocalConfig, TaskConfig
from apprentice.store import base as store_base
from apprentice.store import records
from apprentice.training import export
from apprentice.training.run import TrainingRunSpec

FORMATS = tuple(f.value for f in export.ExportFormat)


def render_line(task: TaskConfig, example: records.ExampleRecord, fmt: str) -> str:
    """One JSONL line of ``example`` in ``fmt`` (chat | openai | alpaca)."""
    return json.dumps(export.record(task, example.input, example.output, fmt), ensure_ascii=False)


#: The engine events that mean the teacher changed its answers.
CHANGE_EVENTS = ("shift", "drift", "emergency")


def last_change(store: store_base.Store, task: str) -> datetime | None:
    """When the teacher last changed, as the engine saw it: the first alarm (a shift,
    drift or emergency) of the latest episode, which ends at a promotion. One change
    often raises several alarms (a shift, then an emergency as agreement keeps
    falling); the answers between them already follow the new teacher.

    Blocking (a store read): call it off the event loop.
    """
    start: datetime | None = None
    for event in reversed(store.events(task, None, (*CHANGE_EVENTS, "promoted"), 500)):
        if event.kind != "promoted":
            start = event.at
        elif start is not None:
            break
    return start


CPU_TRAINING_THREADS = 2
"""Torch threads of a CPU training run: fixed, so the same data and seed give the same
adapter on any machine (float sums depend on how many threads split them), and two
is what the demo's 2-core target machine has."""


def warm_start(store: store_base.Store, task: str, local: LocalConfig) -> str | None:
    """The adapter a retrain starts from: the active version's, when the huggingface
    backend trains it on the same base (the backend also checks the LoRA shape) and
    ``training.warm_start`` is on. The gateway decides it with the run's data, for both
    run modes (:func:`apprentice.gateway.training_data.read_training_data`).

    Blocking (a store read): call it off the event loop.
    """
    if not local.training.warm_start or local.fine_tune_backend is not FineTuneBackend.huggingface:
        return None
    active = store.active_version(task)
    if active is None or active.base_model != local.training_base():
        return None
    return active.path if Path(active.path).is_dir() else None


def training_spec(
    local: LocalConfig, dataset: Path, out_dir: Path, *, init_adapter: str | None = None
) -> TrainingRunSpec:
    """What ``python -m apprentice.training.run --spec`` reads."""
    return TrainingRunSpec(
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
        init_adapter=init_adapter,
    )
