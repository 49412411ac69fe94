"""LoRA with transformers + peft, CPU or GPU: the embedded default's fine-tuner.

A plain training loop rather than ``transformers.Trainer``: the loss covers the
assistant's answer only (the prompt is given, not learnt), batches are grouped
by length so little is spent on padding, and there is nothing to configure
that a task config does not already say.

``apprentice/tiny`` has random weights, so there is nothing for a low-rank
update alone to adapt: for it the adapter also trains the embeddings and the
output head (peft ``modules_to_save``) and :func:`effective_hyper` raises the
learning rate and the number of passes to what a from-scratch model needs
(recorded in the metadata as the hyper-parameters actually used).

A retrain may start from the active version's adapter (``init_adapter``, the
orchestrator passes it when the base model and the LoRA shape are unchanged):
the model already knows the task, so :func:`effective_hyper` gives it
:data:`TINY_WARM_EPOCHS` passes instead of the from-scratch floor.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

from apprentice.config import TrainingConfig
from apprentice.students import tiny
from apprentice.training.backends.base import (
    Progress,
    TrainingFailed,
    TrainingResult,
    finish_run,
)
from apprentice.training.backends.torch_loop import Encoded, Loop
from apprentice.training.dataset import TrainingDataset

__all__ = [
    "TINY_MAX_STEPS",
    "TINY_MIN_STEPS",
    "TINY_WARM_EPOCHS",
    "HuggingFaceFineTuner",
    "effective_hyper",
    "warm_start_compatible",
]

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# A from-scratch byte model needs a few hundred optimiser steps whatever the
# dataset size; fewer and it has only learnt the JSON punctuation.
TINY_MIN_STEPS = 360
# ... and more than this only costs time: retraining on a grown store stays bounded.
TINY_MAX_STEPS = 720
TINY_LEARNING_RATE = 3e-3
TINY_BATCH_SIZE = 16
# No LoRA dropout on the tiny base: its masks cost about a fifth of a step's CPU and
# 70 MB of activations, and weight decay regularises enough (the demo's first version:
# held-out 0.954 with dropout 0.1, 0.976 without; same data, same steps).
TINY_DROPOUT = 0.0
TINY_WEIGHT_DECAY = 0.1
# Rows run at once within a batch of 16 (gradients summed): the activations of 8, and
# the allocator's leftovers from them: the demo's trainer peaked at 948 MB RSS instead
# of 1,100, same CPU, its first version held-out 0.966 (0.976 whole batches).
TINY_MICRO_BATCH = 8
# Passes of a retrain that starts from the active version's adapter: the model
# already writes the JSON and knows the old labels, it only learns what changed.
TINY_WARM_EPOCHS = 3
# ... and at most this many steps (one pass at least): a grown store stays cheap.
TINY_WARM_MAX_STEPS = 300


def effective_hyper(
    base_model: str, hyper: TrainingConfig, n_examples: int, *, warm: bool = False
) -> TrainingConfig:
    """The hyper-parameters a run really uses (differs from config for apprentice/tiny only).

    ``warm``: the run starts from an earlier adapter (no from-scratch step floor).
    """
    if not tiny.is_tiny(base_model) or n_examples == 0:
        return hyper
    batch = TINY_BATCH_SIZE
    steps_per_epoch = math.ceil(n_examples / batch)
    epochs = max(
        math.ceil(TINY_MIN_STEPS / steps_per_epoch),
        min(hyper.epochs, max(1, TINY_MAX_STEPS // steps_per_epoch)),
    )
    if warm:
        epochs = min(hyper.epochs, TINY_WARM_EPOCHS, max(1, TINY_WARM_MAX_STEPS // steps_per_epoch))
    return hyper.model_copy(
        update={
            "learning_rate": max(hyper.learning_rate, TINY_LEARNING_RATE),
            "epochs": min(epochs, 100),
            "batch_size": batch,
            "lora_dropout": TINY_DROPOUT,
        }
    )


def warm_start_compatible(adapter_dir: Path, base_model: str, hyper: TrainingConfig) -> bool:
    """Whether a run may start from ``adapter_dir``: trained on ``base_model`` with the
    LoRA shape ``hyper`` asks for (rank, alpha, target modules). Anything else, an
    unreadable directory included, trains from scratch."""
    try:
        saved = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict):
        return False
    targets = sorted(hyper.target_modules or ALL_LINEAR)
    return (
        str(saved.get("base_model_name_or_path", "")).strip().lower() == base_model.strip().lower()
        and saved.get("r") == hyper.lora_rank
        and saved.get("lora_alpha") == hyper.lora_alpha
        and sorted(saved.get("target_modules") or []) == targets
    )


def _encode(codec: tiny.Codec, dataset: TrainingDataset, max_len: int) -> Encoded:
    """(ids, number of prompt ids) per example, cut from the prompt's left to ``max_len``."""
    encoded = []
    for conversation in dataset.conversations:
        chat = tiny.encode_chat(codec, conversation)
        if not chat.target_ids:
            raise TrainingFailed("an example has an empty assistant answer; nothing to learn")
        ids = chat.prompt_ids + chat.target_ids
        n_prompt = len(chat.prompt_ids)
        if len(ids) > max_len:
            cut = len(ids) - max_len
            if cut >= n_prompt:
                raise TrainingFailed(
                    f"an answer of {len(chat.target_ids)} tokens does not fit "
                    f"max_seq_length={max_len}; raise local.training.max_seq_length"
                )
            ids, n_prompt = ids[cut:], n_prompt - cut
        encoded.append((ids, n_prompt))
    return encoded


def _batches(encoded: Encoded, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches of similar length, in shuffled order (less padding, still random)."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    chunk = batch_size * 8
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        window = sorted(order[start : start + chunk], key=lambda i: len(encoded[i][0]))
        batches.extend(window[i : i + batch_size] for i in range(0, len(window), batch_size))
    rng.shuffle(batches)
    return batches


def _steps(n_encoded: int, used: TrainingConfig, cap: int | None) -> tuple[TrainingConfig, int]:
    """Optimiser steps of the run (``cap`` bounds them) and the epochs that covers."""
    steps_per_epoch = math.ceil(n_encoded / used.batch_size)
    total_steps = steps_per_epoch * used.epochs
    if cap is not None and cap < total_steps:
        total_steps = max(1, cap)
        used = used.model_copy(update={"epochs": math.ceil(total_steps / steps_per_epoch)})
    return used, total_steps


def _with_lora(model: Any, base_model: str, used: TrainingConfig, init: Path | None) -> Any:
    """``model`` with LoRA adapters (the tiny model also trains its embeddings), fresh or,
    with ``init``, holding that adapter's weights (a warm start)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict  # heavy, optional
    from safetensors.torch import load_file  # comes with transformers

    lora = LoraConfig(
        r=used.lora_rank,
        lora_alpha=used.lora_alpha,
        lora_dropout=used.lora_dropout,
        target_modules=used.target_modules or ALL_LINEAR,
        modules_to_save=["embed_tokens", "lm_head"] if tiny.is_tiny(base_model) else None,
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    if init is not None:
        # The same LoraConfig as a fresh run (this run's dropout), the earlier weights.
        state = load_file(str(init / "adapter_model.safetensors"))
        loaded: Any = set_peft_model_state_dict(peft_model, state)
        if loaded.unexpected_keys:
            raise TrainingFailed(
                f"the adapter {init} does not fit {base_model}: unexpected "
                f"{', '.join(sorted(loaded.unexpected_keys)[:3])}"
            )
    return peft_model


class HuggingFaceFineTuner:
    """transformers + peft LoRA on CPU or GPU."""

    def __init__(
        self, device: str = "auto", *, max_steps: int | None = None, init_adapter: str | None = None
    ) -> None:
        self.device = device
        self.max_steps = max_steps  # a cap for smoke runs; None: epochs decide
        self.init_adapter = init_adapter  # an earlier version's adapter to start from

    def _warm_start(self, base_model: str, hyper: TrainingConfig) -> Path | None:
        """The adapter this run starts from, or None for a fresh LoRA."""
        if self.init_adapter is None:
            return None
        init = Path(self.init_adapter)
        return init if warm_start_compatible(init, base_model, hyper) else None

    def train(
        self,
        dataset: TrainingDataset,
        *,
        base_model: str,
        hyper: TrainingConfig,
        out_dir: Path,
        progress: Progress | None = None,
    ) -> TrainingResult:
        import torch  # heavy optional dependency

        if len(dataset) == 0:
            raise TrainingFailed("the dataset is empty; collect teacher examples first")
        started = time.perf_counter()
        init = self._warm_start(base_model, hyper)
        used = effective_hyper(base_model, hyper, len(dataset), warm=init is not None)
        torch.manual_seed(used.seed)
        rng = random.Random(used.seed)
        device = tiny.resolve_device(self.device)
        model, codec = tiny.load_base(base_model, device)
        encoded = _encode(codec, dataset, used.max_seq_length)
        peft_model = _with_lora(model, base_model, used, init)
        decay = TINY_WEIGHT_DECAY if tiny.is_tiny(base_model) else 0.0
        used, total_steps = _steps(len(encoded), used, self.max_steps)
        micro = TINY_MICRO_BATCH if tiny.is_tiny(base_model) else None
        loop = Loop(peft_model, used, decay=decay, total_steps=total_steps, device=device,
                     micro_batch=micro)  # fmt: skip
        peft_model.train()
        loss_curve = _fit(loop, encoded, used, rng, codec.pad_id, _Reporter(progress, started))
        out_dir.mkdir(parents=True, exist_ok=True)
        # save_embedding_layers=False: no Hub lookup of the base's vocabulary (offline);
        # trained embeddings are saved anyway as modules_to_save.
        peft_model.save_pretrained(str(out_dir), save_embedding_layers=False)
        hyper_parameters = {
            **used.model_dump(mode="json"),
            "requested": hyper.model_dump(mode="json"),
            "backend": "huggingface",
            "device": device,
            "steps": total_steps,
            "weight_decay": decay,
            "training_rows": len(dataset),
            "init_adapter": None if init is None else str(init),
        }
        return finish_run(
            dataset,
            adapter_dir=out_dir,
            base_model=base_model,
            hyper_parameters=hyper_parameters,
            loss_curve=loss_curve,
            started=started,
            metrics={"final_loss": loss_curve[-1], "steps": total_steps},
            out_dir=out_dir,
        )


class _Reporter:
    """Sends one progress event per epoch (when someone listens)."""

    def __init__(self, progress: Progress | None, started: float) -> None:
        self.progress = progress
        self.started = started

    def epoch(self, epoch: int, epochs: int, step: int, steps: int, loss: float) -> None:
        if self.progress is None:
            return
        self.progress(
            {
                "event": "epoch",
                "epoch": epoch,
                "epochs": epochs,
                "step": step,
                "steps": steps,
                "loss": loss,
                "elapsed_s": round(time.perf_counter() - self.started, 2),
            }
        )


def _fit(
    loop: Loop,
    encoded: Encoded,
    used: TrainingConfig,
    rng: random.Random,
    pad: int,
    report: _Reporter,
) -> list[float]:
    """All the run's passes; the mean loss of each."""
    loss_curve: list[float] = []
    for epoch in range(used.epochs):
        mean = round(loop.epoch(encoded, _batches(encoded, used.batch_size, rng), pad), 5)
        loss_curve.append(mean)
        report.epoch(epoch + 1, used.epochs, loop.step, loop.total_steps, mean)
    return loss_curve
