"""Unsloth LoRA on an NVIDIA GPU (faster and leaner than plain peft when it is available).

Used when ``unsloth`` imports and CUDA is visible; anywhere else the run stops
at once with :class:`BackendUnavailable` saying what is missing and which
backend to use instead. The data is rendered with the tokenizer's chat
template, as every other backend does, and only the answers are learnt.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from apprentice.config import TrainingConfig
from apprentice.training.backends.base import (
    BackendUnavailable,
    Progress,
    TrainingFailed,
    TrainingResult,
    finish_run,
)
from apprentice.training.dataset import TrainingDataset

__all__ = ["UnslothFineTuner", "check_available"]

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def check_available() -> None:
    """Raise :class:`BackendUnavailable` unless unsloth and a CUDA GPU are both here."""
    if importlib.util.find_spec("unsloth") is None:
        raise BackendUnavailable(
            "the unsloth fine-tuning backend needs the unsloth package (pip install unsloth) "
            "and an NVIDIA GPU; it is not installed here. Set local.fine_tune_backend: "
            "huggingface to train with transformers + peft instead (CPU or GPU)"
        )
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable(
            "unsloth is installed but no CUDA GPU is visible; run the trainer on a GPU node "
            "or set local.fine_tune_backend: huggingface"
        )


class UnslothFineTuner:
    """Unsloth + TRL SFT with LoRA (GPU only)."""

    def train(
        self,
        dataset: TrainingDataset,
        *,
        base_model: str,
        hyper: TrainingConfig,
        out_dir: Path,
        progress: Progress | None = None,
    ) -> TrainingResult:
        check_available()
        started = time.perf_counter()
        from datasets import Dataset  # type: ignore[import-not-found]
        from trl import SFTConfig, SFTTrainer  # type: ignore[import-not-found]
        from unsloth import FastLanguageModel  # type: ignore[import-not-found]

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=base_model, max_seq_length=hyper.max_seq_length, load_in_4bit=True
        )
        model = FastLanguageModel.get_peft_model(
            model,
            r=hyper.lora_rank,
            lora_alpha=hyper.lora_alpha,
            lora_dropout=hyper.lora_dropout,
            target_modules=hyper.target_modules or TARGET_MODULES,
            random_state=hyper.seed,
        )
        rows = [{"messages": list(c)} for c in dataset.conversations]
        trainer: Any = SFTTrainer(
            model=model,
            processing_class=tokenizer,
            train_dataset=Dataset.from_list(rows),
            args=SFTConfig(
                output_dir=str(out_dir / "checkpoints"),
                per_device_train_batch_size=hyper.batch_size,
                num_train_epochs=hyper.epochs,
                learning_rate=hyper.learning_rate,
                seed=hyper.seed,
                max_length=hyper.max_seq_length,
                assistant_only_loss=True,
                logging_steps=1,
                save_strategy="no",
                report_to=[],
            ),
        )
        output = trainer.train()
        losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
        if not losses:
            raise TrainingFailed("unsloth finished without logging a loss; nothing was trained")
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
        if progress is not None:
            progress({"event": "trained", "loss": losses[-1]})
        return finish_run(
            dataset,
            adapter_dir=out_dir,
            base_model=base_model,
            hyper_parameters={**hyper.model_dump(mode="json"), "backend": "unsloth"},
            loss_curve=losses,
            started=started,
            metrics={
                "final_loss": losses[-1],
                "train_runtime": output.metrics.get("train_runtime"),
            },
            out_dir=out_dir,
        )
