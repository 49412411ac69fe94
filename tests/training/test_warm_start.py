"""A retrain starts from the active version's adapter: fewer passes, same LoRA shape.

The orchestrator picks the adapter (the promoted version's, same base model,
huggingface backend), the spec carries it, the backend checks its shape and
loads its weights into a fresh LoRA of this run's config; the run records what
it started from.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_entrypoints import run_spec, write_dataset

from apprentice.config import FineTuneBackend, LocalConfig, TrainingConfig
from apprentice.orchestration import datasets
from apprentice.store import open_store
from apprentice.store.records import EventRecord, ModelVersionRecord
from apprentice.training.backends import TrainingResult
from apprentice.training.backends.huggingface import (
    ALL_LINEAR,
    TINY_MIN_STEPS,
    TINY_WARM_EPOCHS,
    effective_hyper,
    warm_start_compatible,
)
from apprentice.training.run import TrainingRunSpec

TASK = "classify_ticket"


def test_a_warm_tiny_run_skips_the_from_scratch_step_floor() -> None:
    hyper = TrainingConfig(epochs=7)
    cold = effective_hyper("apprentice/tiny", hyper, 1466)  # 92 steps a pass
    warm = effective_hyper("apprentice/tiny", hyper, 1466, warm=True)
    assert cold.epochs == 7 and warm.epochs == TINY_WARM_EPOCHS < 7
    assert warm.learning_rate == cold.learning_rate and warm.batch_size == cold.batch_size
    # From scratch a small set still gets the floor; warm it does not.
    assert effective_hyper("apprentice/tiny", hyper, 200).epochs * 13 >= TINY_MIN_STEPS
    assert effective_hyper("apprentice/tiny", hyper, 200, warm=True).epochs == TINY_WARM_EPOCHS
    assert effective_hyper("apprentice/tiny", TrainingConfig(epochs=1), 200, warm=True).epochs == 1
    # A grown store: fewer passes, never none.
    assert effective_hyper("apprentice/tiny", hyper, 16 * 150, warm=True).epochs == 2
    assert effective_hyper("apprentice/tiny", hyper, 16 * 1000, warm=True).epochs == 1
    big = "meta-llama/Llama-3.2-1B"
    assert effective_hyper(big, hyper, 1466, warm=True) == hyper


def _adapter_config(path: Path, **changes: object) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    saved = {
        "base_model_name_or_path": "apprentice/tiny",
        "r": 16,
        "lora_alpha": 32,
        "target_modules": list(reversed(ALL_LINEAR)),
        **changes,
    }
    (path / "adapter_config.json").write_text(json.dumps(saved), encoding="utf-8")
    return path


def test_only_an_adapter_of_the_same_base_and_lora_shape_is_a_starting_point(
    tmp_path: Path,
) -> None:
    hyper = TrainingConfig(lora_rank=16, lora_alpha=32)
    assert warm_start_compatible(_adapter_config(tmp_path / "same"), "apprentice/tiny", hyper)
    assert not warm_start_compatible(
        _adapter_config(tmp_path / "r8", r=8), "apprentice/tiny", hyper
    )
    other = _adapter_config(tmp_path / "other", base_model_name_or_path="meta-llama/Llama-3.2-1B")
    assert not warm_start_compatible(other, "apprentice/tiny", hyper)
    fewer = _adapter_config(tmp_path / "fewer", target_modules=["q_proj", "v_proj"])
    assert not warm_start_compatible(fewer, "apprentice/tiny", hyper)
    assert not warm_start_compatible(tmp_path / "missing", "apprentice/tiny", hyper)
    (tmp_path / "garbled").mkdir()
    (tmp_path / "garbled" / "adapter_config.json").write_text("{not json", encoding="utf-8")
    assert not warm_start_compatible(tmp_path / "garbled", "apprentice/tiny", hyper)


def _version(path: Path, base: str = "apprentice/tiny") -> ModelVersionRecord:
    now = datetime.now(UTC)
    return ModelVersionRecord(
        task=TASK,
        version="v1",
        state="candidate",
        path=str(path),
        base_model=base,
        created_at=now,
        updated_at=now,
    )


def test_the_orchestrator_starts_from_the_promoted_version_only(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    local = LocalConfig()
    adapter = tmp_path / "models" / TASK / "v1"
    adapter.mkdir(parents=True)
    assert datasets.warm_start(store, TASK, local) is None  # nothing trained yet
    store.add_version(_version(adapter))
    assert datasets.warm_start(store, TASK, local) is None  # a candidate is not served
    store.update_version(TASK, "v1", state="promoted")
    assert datasets.warm_start(store, TASK, local) == str(adapter)
    spec = datasets.training_spec(local, tmp_path / "d.jsonl", tmp_path / "v2", init_adapter="x")
    assert spec.init_adapter == "x"
    axolotl = local.model_copy(update={"fine_tune_backend": FineTuneBackend.axolotl})
    assert datasets.warm_start(store, TASK, axolotl) is None
    other_base = local.model_copy(update={"base_model": "meta-llama/Llama-3.2-1B"})
    assert datasets.warm_start(store, TASK, other_base) is None
    adapter.rename(tmp_path / "gone")
    assert datasets.warm_start(store, TASK, local) is None  # deleted from disk
    store.close()


@pytest.mark.slow
def test_a_warm_run_starts_where_the_earlier_adapter_ended(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "train.jsonl", 16)
    first = tmp_path / "v1"
    spec = TrainingRunSpec(dataset=str(data), out_dir=str(first), device="cpu", max_steps=30)
    code, _, stderr = run_spec(spec.write(tmp_path / "v1.json"))
    assert code == 0, stderr
    v1 = TrainingResult.read_metadata(first)
    assert v1.hyper_parameters["init_adapter"] is None

    second = tmp_path / "v2"
    spec = TrainingRunSpec(
        dataset=str(data), out_dir=str(second), device="cpu", max_steps=1, init_adapter=str(first)
    )
    code, events, stderr = run_spec(spec.write(tmp_path / "v2.json"))
    assert code == 0, stderr
    v2 = TrainingResult.read_metadata(second)
    assert v2.hyper_parameters["init_adapter"] == str(first)
    # One step from v1's weights scores about what v1 ended on, far below a fresh start.
    assert v2.loss_curve[0] < v1.loss_curve[0] / 2
    assert [e["event"] for e in events][-1] == "done"


def test_the_change_starts_at_the_first_alarm_of_the_latest_episode(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    t0 = datetime(2026, 11, 1, tzinfo=UTC)

    def event(minute: int, kind: str) -> datetime:
        at = t0 + timedelta(minutes=minute)
        store.add_event(EventRecord(task=TASK, at=at, kind=kind, message=kind))
        return at

    assert datasets.last_change(store, TASK) is None
    event(0, "promoted")  # v1: no change yet
    assert datasets.last_change(store, TASK) is None
    first = event(10, "shift")
    event(11, "coaching")  # not a change of the teacher
    event(12, "emergency")  # the same change, agreement still falling
    assert datasets.last_change(store, TASK) == first
    event(20, "promoted")  # v2 trained on it: the episode still dates the change
    assert datasets.last_change(store, TASK) == first
    second = event(30, "drift")  # a new episode
    assert datasets.last_change(store, TASK) == second
    store.close()
