"""Which examples a training run sees.

The rules of training data hygiene, in one place:

- only the ``train`` split: a held-out example is never trained on (it is the
  yardstick a new version is measured against);
- only teacher answers valid against the task's output schema;
- one conversation per input (the store already collapses duplicates; a
  repeat that slipped through is dropped here, the latest answer kept);
- when coaching, examples the student got wrong are repeated
  ``training.coaching_weight`` times (rounded, at least once);
- an example with a ``repeat`` count (recent ones after a shift, see
  :mod:`apprentice.training.recency`) is repeated that many times.

Examples are read duck-typed (attributes or mapping keys) so any store row
fits: ``input``, ``output``, ``split`` and optionally ``id`` and
``student_wrong`` (bool) or ``student_score`` (agreement in [0, 1], wrong when < 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from apprentice import prompts, schemas
from apprentice.config import TaskConfig, TrainingConfig
from apprentice.training import export
from apprentice.training.dataset import TrainingDataset

__all__ = ["Selection", "training_selection"]

TRAIN = "train"


def _get(example: Any, name: str, default: Any = None) -> Any:
    if isinstance(example, dict):
        return example.get(name, default)
    return getattr(example, name, default)


def _wrong(example: Any) -> bool:
    flag = _get(example, "student_wrong")
    if flag is not None:
        return bool(flag)
    score = _get(example, "student_score")
    return isinstance(score, int | float) and score < 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    """The dataset of a run and what was left out, for the run's metadata."""

    dataset: TrainingDataset
    example_ids: tuple[str, ...]
    heldout_excluded: int
    invalid_excluded: int
    duplicates_dropped: int
    coached: int

    @property
    def data_hash(self) -> str:
        return self.dataset.data_hash


def training_selection(
    task: TaskConfig,
    examples: Iterable[Any],
    *,
    hyper: TrainingConfig,
    coaching: bool = False,
) -> Selection:
    """Build the training dataset for ``task`` from store examples."""
    latest: dict[str, Any] = {}
    heldout = invalid = duplicates = 0
    for example in examples:
        if _get(example, "split", TRAIN) != TRAIN:
            heldout += 1
            continue
        task_input, output = _get(example, "input"), _get(example, "output")
        if not isinstance(task_input, dict) or not isinstance(output, dict):
            invalid += 1
            continue
        if schemas.validation_errors(task.output_schema, output):
            invalid += 1
            continue
        key = prompts.canonical_json(task_input)
        if key in latest:
            duplicates += 1
        latest[key] = example
    repeat = max(1, round(hyper.coaching_weight)) if coaching else 1
    conversations = []
    ids: list[str] = []
    coached = 0
    for example in latest.values():
        record = export.chat_record(task, _get(example, "input"), _get(example, "output"))
        copies = max(repeat if _wrong(example) else 1, int(_get(example, "repeat") or 1))
        coached += copies > 1
        conversations.extend([record["messages"]] * copies)
        if _get(example, "id") is not None:
            ids.append(str(_get(example, "id")))
    dataset = TrainingDataset.from_conversations(conversations)
    return Selection(dataset, tuple(ids), heldout, invalid, duplicates, coached)
