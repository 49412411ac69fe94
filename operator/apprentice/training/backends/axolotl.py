"""Axolotl: write its YAML config and dataset, run ``axolotl train <yaml>``.

The dataset is our chat JSONL (axolotl's ``chat_template`` dataset type with
``messages``), trained on the assistant turns only, so axolotl learns what
every other backend learns. The loss curve is read from the ``{'loss': ...}``
lines axolotl (through the HF Trainer) prints.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from apprentice.config import TrainingConfig
from apprentice.training.backends.base import (
    BackendUnavailable,
    Progress,
    TrainingFailed,
    TrainingResult,
    finish_run,
)
from apprentice.training.dataset import TrainingDataset

__all__ = ["AxolotlFineTuner", "axolotl_config"]

DATASET_FILE = "train.jsonl"
CONFIG_FILE = "axolotl.yaml"
_LOSS = re.compile(r"\{[^{}]*'loss':[^{}]*\}")


def axolotl_config(
    *, base_model: str, hyper: TrainingConfig, dataset_path: Path, out_dir: Path
) -> dict[str, Any]:
    """The axolotl YAML (as a dict) for one LoRA run."""
    config: dict[str, Any] = {
        "base_model": base_model,
        "adapter": "lora",
        "lora_r": hyper.lora_rank,
        "lora_alpha": hyper.lora_alpha,
        "lora_dropout": hyper.lora_dropout,
        "sequence_len": hyper.max_seq_length,
        "micro_batch_size": hyper.batch_size,
        "gradient_accumulation_steps": 1,
        "num_epochs": hyper.epochs,
        "learning_rate": hyper.learning_rate,
        "optimizer": "adamw_torch",
        "lr_scheduler": "cosine",
        "seed": hyper.seed,
        "chat_template": "tokenizer_default",
        "datasets": [
            {
                "path": str(dataset_path),
                "ds_type": "json",
                "type": "chat_template",
                "field_messages": "messages",
                "message_property_mappings": {"role": "role", "content": "content"},
                "roles_to_train": ["assistant"],
            }
        ],
        "val_set_size": 0.0,
        "output_dir": str(out_dir),
        "save_strategy": "no",
        "logging_steps": 1,
        "bf16": "auto",
    }
    if hyper.target_modules:
        config["lora_target_modules"] = list(hyper.target_modules)
    else:
        config["lora_target_linear"] = True
    return config


def _run(argv: list[str], progress: Progress | None) -> list[float]:
    """Run ``axolotl train``; the losses it logged. A failed run raises with its last lines."""
    losses: list[float] = []
    tail: list[str] = []
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "WANDB_DISABLED": "true"},
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = [*tail[-19:], line.rstrip()]
            for match in _LOSS.finditer(line):
                try:
                    logged = ast.literal_eval(match.group(0))
                except (ValueError, SyntaxError):
                    continue
                losses.append(float(logged["loss"]))
                if progress is not None:
                    progress({"event": "step", "loss": losses[-1]})
        code = proc.wait()
    if code != 0:
        last = "\n".join(tail[-8:])
        raise TrainingFailed(f"axolotl train exited with {code}:\n{last}")
    return losses


class AxolotlFineTuner:
    """Runs the ``axolotl`` CLI as a subprocess."""

    def __init__(self, executable: str = "axolotl") -> None:
        self.executable = executable

    def train(
        self,
        dataset: TrainingDataset,
        *,
        base_model: str,
        hyper: TrainingConfig,
        out_dir: Path,
        progress: Progress | None = None,
    ) -> TrainingResult:
        exe = shutil.which(self.executable)
        if exe is None:
            raise BackendUnavailable(
                f"the axolotl backend runs `{self.executable} train`, which is not on PATH; "
                "pip install axolotl (GPU image) or set local.fine_tune_backend: huggingface"
            )
        if len(dataset) == 0:
            raise TrainingFailed("the dataset is empty; collect teacher examples first")
        started = time.perf_counter()
        work = out_dir / "axolotl"
        work.mkdir(parents=True, exist_ok=True)
        data_path = dataset.write_jsonl(work / DATASET_FILE)
        config = axolotl_config(
            base_model=base_model, hyper=hyper, dataset_path=data_path, out_dir=out_dir
        )
        config_path = work / CONFIG_FILE
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        losses = _run([exe, "train", str(config_path)], progress)
        if not (out_dir / "adapter_config.json").exists():
            raise TrainingFailed(f"axolotl finished but wrote no adapter_config.json to {out_dir}")
        return finish_run(
            dataset,
            adapter_dir=out_dir,
            base_model=base_model,
            hyper_parameters={**hyper.model_dump(mode="json"), "backend": "axolotl"},
            loss_curve=losses,
            started=started,
            metrics={"final_loss": losses[-1] if losses else None, "config": str(config_path)},
            out_dir=out_dir,
        )
