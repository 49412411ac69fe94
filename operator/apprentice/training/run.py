"""``python -m apprentice.training.run --spec SPEC.json``: one training run in its own process.

The LocalOrchestrator starts this as a subprocess so the request path never
waits on training (and a crash here cannot take the gateway down). It reads
the chat JSONL dataset, the base model, the backend and the hyper-parameters
from the spec, trains, writes the adapter and ``metadata.json`` into
``out_dir``, and reports on stdout, one JSON object per line::

    {"event": "start", ...}
    {"event": "epoch", "epoch": 3, "epochs": 23, "loss": 0.41, ...}
    {"event": "done", "result": {...TrainingResult...}}         exit 0
    {"event": "error", "kind": "TrainingFailed", "message": "..."}  exit 1 (2: bad spec)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apprentice.config import FineTuneBackend, TrainingConfig
from apprentice.training.backends import TrainingError, TunerOptions, get_fine_tuner
from apprentice.training.dataset import DatasetError, TrainingDataset

__all__ = ["TrainingRunSpec", "command", "main"]


class TrainingRunSpec(BaseModel):
    """Everything one run needs; written by the orchestrator as JSON."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(description="Chat JSONL of the run's training examples.")
    out_dir: str = Field(description="Where the adapter and metadata.json go.")
    base_model: str = Field(default="apprentice/tiny")
    backend: FineTuneBackend = Field(default=FineTuneBackend.huggingface)
    hyper: TrainingConfig = Field(default_factory=TrainingConfig)
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N.")
    threads: int | None = Field(default=None, gt=0, description="torch CPU threads.")
    max_steps: int | None = Field(
        default=None, gt=0, description="huggingface: cap on optimiser steps (smoke runs)."
    )
    api_key_env: str | None = Field(
        default=None, description="openai: env var of the API key (default OPENAI_API_KEY)."
    )
    base_url: str | None = Field(default=None, description="openai: API root (proxy, tests).")
    init_adapter: str | None = Field(
        default=None,
        description="huggingface: the active version's adapter to start from (a retrain "
        "needs fewer passes); ignored when its base model or LoRA shape differ.",
    )

    def write(self, path: str | Path) -> Path:
        file = Path(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(self.model_dump_json(indent=2), encoding="utf-8")
        return file


def command(spec_path: str | Path) -> list[str]:
    """The argv that runs a spec with this interpreter."""
    return [sys.executable, "-m", "apprentice.training.run", "--spec", str(spec_path)]


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, default=str) + "\n")
    sys.stdout.flush()


def _fail(kind: str, message: str, code: int) -> int:
    _emit({"event": "error", "kind": kind, "message": message})
    sys.stderr.write(f"apprentice training failed: {message}\n")
    return code


def train_from_spec(spec: TrainingRunSpec) -> dict[str, Any]:
    """Run the spec in this process; returns the TrainingResult as JSON."""
    if spec.threads:
        import torch

        torch.set_num_threads(spec.threads)
    dataset = TrainingDataset.read_jsonl(spec.dataset)
    options = TunerOptions(
        spec.device, spec.max_steps, spec.base_url, spec.api_key_env, spec.init_adapter
    )
    tuner = get_fine_tuner(spec.backend, options)
    _emit(
        {
            "event": "start",
            "examples": len(dataset),
            "base_model": spec.base_model,
            "backend": spec.backend.value,
        }
    )
    result = tuner.train(
        dataset,
        base_model=spec.base_model,
        hyper=spec.hyper,
        out_dir=Path(spec.out_dir),
        progress=_emit,
    )
    return result.to_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apprentice.training.run", description="Train one adapter from a spec."
    )
    parser.add_argument("--spec", required=True, help="Path of the TrainingRunSpec JSON.")
    args = parser.parse_args(argv)
    # Idle OpenMP threads sleep instead of spinning: on a small machine that also runs
    # the gateway, spinning trainer threads slowed training five-fold (measured).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Nothing is downloaded on a training run unless the operator opted in.
    if os.environ.get("APPRENTICE_ALLOW_DOWNLOAD", "") not in {"1", "true", "yes"}:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        spec = TrainingRunSpec.model_validate_json(Path(args.spec).read_text(encoding="utf-8"))
    except OSError as exc:
        return _fail("SpecError", f"cannot read spec {args.spec}: {exc.strerror}", 2)
    except ValidationError as exc:
        return _fail("SpecError", f"invalid spec {args.spec}: {exc}", 2)
    try:
        result = train_from_spec(spec)
    except (TrainingError, DatasetError) as exc:
        return _fail(type(exc).__name__, str(exc), 1)
    except Exception as exc:  # the last line of defence: report, never hang the caller
        return _fail(type(exc).__name__, f"unexpected error: {exc}", 1)
    _emit({"event": "done", "result": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
