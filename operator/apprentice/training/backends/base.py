"""The fine-tuning interface every LoRA backend implements.

Error tree::

    TrainingError
    ├── BackendUnavailable   the backend's library/executable/hardware is not here
    └── TrainingFailed       the run started and failed (bad data, tool exit code, job failed)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from apprentice.config import TrainingConfig
from apprentice.training.dataset import TrainingDataset

__all__ = [
    "METADATA_FILE",
    "BackendUnavailable",
    "FineTuner",
    "Progress",
    "TrainingError",
    "TrainingFailed",
    "TrainingResult",
    "finish_run",
]

METADATA_FILE = "metadata.json"

Progress = Callable[[dict[str, Any]], None]


class TrainingError(Exception):
    """Base of every fine-tuning error."""


class BackendUnavailable(TrainingError):
    """The configured backend cannot run here (missing package, binary or GPU)."""


class TrainingFailed(TrainingError):
    """A training run started but did not produce an adapter."""


@dataclasses.dataclass(frozen=True, slots=True)
class TrainingResult:
    """What one run produced; ``metadata.json`` in ``adapter_dir`` holds the same fields.

    ``adapter_dir`` is a peft adapter directory, or for the ``openai`` backend the
    name of the fine-tuned remote model (served as an ``openai_compatible`` student).
    """

    adapter_dir: str
    base_model: str
    examples_used: int
    data_hash: str
    hyper_parameters: dict[str, Any]
    loss_curve: list[float]
    duration_s: float
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def write_metadata(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / METADATA_FILE
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True), encoding="utf-8")
        return path

    @classmethod
    def read_metadata(cls, directory: Path) -> TrainingResult:
        raw = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in fields})


def finish_run(
    dataset: TrainingDataset,
    *,
    adapter_dir: str | Path,
    base_model: str,
    hyper_parameters: dict[str, Any],
    loss_curve: list[float],
    started: float,
    metrics: dict[str, Any],
    out_dir: Path,
) -> TrainingResult:
    """The run's ``TrainingResult``, written to ``out_dir/metadata.json``.

    Every backend ends the same way, so the dataset fields, the duration (from
    ``started``, a ``time.perf_counter()`` reading) and the metadata file are
    filled in one place and read back identically whichever backend trained.
    """
    result = TrainingResult(
        adapter_dir=str(adapter_dir),
        base_model=base_model,
        examples_used=dataset.unique_examples,
        data_hash=dataset.data_hash,
        hyper_parameters=hyper_parameters,
        loss_curve=loss_curve,
        duration_s=round(time.perf_counter() - started, 3),
        metrics=metrics,
    )
    result.write_metadata(out_dir)
    return result


class FineTuner(Protocol):
    """One LoRA fine-tuning backend (huggingface, unsloth, axolotl, openai)."""

    def train(
        self,
        dataset: TrainingDataset,
        *,
        base_model: str,
        hyper: TrainingConfig,
        out_dir: Path,
        progress: Progress | None = None,
    ) -> TrainingResult:
        """Train an adapter on ``dataset`` into ``out_dir`` (blocking; run it off the loop)."""
        ...
