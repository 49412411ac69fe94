"""Unsloth LoRA on an NVIDIA GPU (faster and leaner than plain peft when it is available).

Used when ``unsloth`` imports and CUDA is visible; anywhere else the run stops
at once with :class:`BackendUnavailable` saying what is missing and which
backend to use instead.

What the run reads and writes is inspectable, in the tools' own formats, under
``out_dir/unsloth/``:

- ``train.jsonl``: TRL's conversational dataset format, one ``{"messages": [...]}``
  per example (system, user, assistant); ``SFTTrainer`` applies the tokenizer's
  chat template and, with ``assistant_only_loss``, learns the answers only;
- ``sft_config.json``: the keyword arguments of ``trl.SFTConfig`` (real field
  names, so ``SFTConfig(**json.load(f))`` rebuilds it);
- ``model.json``: the arguments of ``FastLanguageModel.from_pretrained`` and
  ``get_peft_model``.

Progress: a ``TrainerCallback`` reports every logged step (``{"event": "step",
"step", "loss", "learning_rate", "epoch"}``) as it happens, so the orchestrator's
log shows the loss curve live, not only at the end.

GPU: QLoRA in 4 bit; Unsloth's own figures: a 1B-3B base fits a 8 GB card, an 8B
base (Llama 3.1 8B, the seed's) about 6-8 GB of VRAM plus activations, so a 16 GB
card (T4, A10G, L4) for ``max_seq_length`` 512-2048; a 70B base needs about 48 GB.
"""

from __future__ import annotations

import importlib.util
import json
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

__all__ = [
    "TARGET_MODULES",
    "UnslothFineTuner",
    "check_available",
    "loss_callback",
    "model_arguments",
    "sft_arguments",
    "write_inputs",
]

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


def model_arguments(base_model: str, hyper: TrainingConfig) -> dict[str, Any]:
    """``FastLanguageModel.from_pretrained`` and ``get_peft_model`` keyword arguments."""
    return {
        "from_pretrained": {
            "model_name": base_model,
            "max_seq_length": hyper.max_seq_length,
            "load_in_4bit": True,
        },
        "get_peft_model": {
            "r": hyper.lora_rank,
            "lora_alpha": hyper.lora_alpha,
            "lora_dropout": hyper.lora_dropout,
            "target_modules": list(hyper.target_modules or TARGET_MODULES),
            "random_state": hyper.seed,
        },
    }


def sft_arguments(
    hyper: TrainingConfig, out_dir: Path, *, bf16: bool | None = None
) -> dict[str, Any]:
    """``trl.SFTConfig`` keyword arguments for one run.

    ``bf16``: whether the GPU computes in bfloat16; TRL defaults to bf16, which a
    T4 (or any card before Ampere) refuses, so the run says which it uses (fp16
    otherwise). ``None`` leaves TRL's default (for files written off the GPU).
    """
    precision = {} if bf16 is None else {"bf16": bf16, "fp16": not bf16}
    return {
        **precision,
        "output_dir": str(out_dir / "checkpoints"),
        "per_device_train_batch_size": hyper.batch_size,
        "num_train_epochs": hyper.epochs,
        "learning_rate": hyper.learning_rate,
        "seed": hyper.seed,
        "max_length": hyper.max_seq_length,
        "assistant_only_loss": True,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
    }


def write_inputs(
    dataset: TrainingDataset, base_model: str, hyper: TrainingConfig, out_dir: Path
) -> Path:
    """Write ``train.jsonl``, ``sft_config.json`` and ``model.json``; returns their folder."""
    work = out_dir / "unsloth"
    work.mkdir(parents=True, exist_ok=True)
    rows = "".join(
        json.dumps({"messages": list(c)}, ensure_ascii=False) + "\n" for c in dataset.conversations
    )
    (work / "train.jsonl").write_text(rows, encoding="utf-8")
    (work / "sft_config.json").write_text(
        json.dumps(sft_arguments(hyper, out_dir), indent=2), encoding="utf-8"
    )
    (work / "model.json").write_text(
        json.dumps(model_arguments(base_model, hyper), indent=2), encoding="utf-8"
    )
    return work


def loss_callback(progress: Progress, losses: list[float]) -> Any:
    """A ``transformers.TrainerCallback`` reporting each logged loss as it happens."""
    from transformers import TrainerCallback

    class _Losses(TrainerCallback):  # type: ignore[misc]
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
            if not logs or "loss" not in logs:
                return
            loss = float(logs["loss"])
            losses.append(loss)
            progress(
                {
                    "event": "step",
                    "step": int(state.global_step),
                    "loss": loss,
                    "learning_rate": logs.get("learning_rate"),
                    "epoch": logs.get("epoch"),
                }
            )

    return _Losses()


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
        if len(dataset) == 0:
            raise TrainingFailed("the dataset is empty; collect teacher examples first")
        started = time.perf_counter()
        work = write_inputs(dataset, base_model, hyper, out_dir)
        import torch
        from datasets import load_dataset  # type: ignore[import-not-found]
        from trl import SFTConfig, SFTTrainer  # type: ignore[import-not-found]
        from unsloth import FastLanguageModel  # type: ignore[import-not-found]

        arguments = model_arguments(base_model, hyper)
        model, tokenizer = FastLanguageModel.from_pretrained(**arguments["from_pretrained"])
        model = FastLanguageModel.get_peft_model(model, **arguments["get_peft_model"])
        losses: list[float] = []
        trainer: Any = SFTTrainer(
            model=model,
            processing_class=tokenizer,
            train_dataset=load_dataset("json", data_files=str(work / "train.jsonl"))["train"],
            args=SFTConfig(**sft_arguments(hyper, out_dir, bf16=torch.cuda.is_bf16_supported())),
            callbacks=[loss_callback(progress or (lambda _e: None), losses)],
        )
        output = trainer.train()
        if not losses:
            raise TrainingFailed("unsloth finished without logging a loss; nothing was trained")
        model.save_pretrained(str(out_dir))
        tokenizer.save_pretrained(str(out_dir))
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
                "inputs": str(work),
            },
            out_dir=out_dir,
        )
