"""The demo's config: one ticket-classification task, a replay teacher, the tiny student.

The numbers are sized for the demo's promise (a few thousand requests, under five
minutes on a 2-core laptop): a first training after a few hundred teacher
examples, a rolling window short enough to graduate within a few dozen
comparisons yet long enough that the Wilson bound means something, and a
sampling floor low enough to cut teacher spend by well over 90% in steady state.
The file is written next to the data so a user can read it, edit it and rerun
``apprentice batch`` or ``apprentice serve`` on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from apprentice import config as config_mod
from apprentice.config import ApprenticeConfig
from apprentice.teachers import pricing

__all__ = ["TASK", "DemoSettings", "demo_config", "write_config"]

TASK = "classify_ticket"


@dataclass(frozen=True)
class DemoSettings:
    """The knobs of the demo that are worth turning; defaults are the tuned ones."""

    phase1_to_phase2: int = 1000
    """Teacher examples before the first training run (teacher calls are free in time:
    a from-scratch byte model generalises from ~900 training examples, not from 200)."""
    fine_tune_batch_size: int = 1250
    """New examples that make another run due; a fifth of it (250) is what a coaching
    episode collects before its retrain: about 125 answers about the new category to
    learn from (at 400, 80 answers left the retrained version missing security tickets).
    In steady state, at the floor, no batch fills within the demo."""
    window_size: int = 100
    """Rolling window of comparisons behind confidence and its bound."""
    min_floor: float = 0.02
    """Lowest sampling rate in steady state."""
    phase2_to_phase3: float = 0.85
    """Lower bound of agreement that graduates the task."""
    epochs: int = 7
    """Passes over the data, within the tiny backend's 360-720 steps: the first version
    makes 7 passes over its ~900 tickets (the step floor). The retrained one starts from
    the first one's adapter: at most 3 passes and 300 steps (2 passes, ~210 steps, over
    its ~1,650 rows; from scratch it needed 7, ~640 steps, to learn the priority rule)."""
    learning_rate: float = 2.0e-3
    lora_rank: int = 16
    lora_alpha: int = 32
    batch_size: int = 16
    max_new_tokens: int = 64
    heldout_fraction: float = 0.1
    price_as: str = pricing.DEFAULT_REPLAY_MODEL


def demo_config(directory: Path, settings: DemoSettings | None = None) -> dict[str, Any]:
    """The demo config as a YAML-ready mapping; every path is absolute under ``directory``."""
    s = settings or DemoSettings()
    root = directory.resolve()
    return {
        "tasks": [
            {
                "name": TASK,
                "description": "Classify support tickets by category and priority",
                "input_schema": {"text": "str", "metadata": "dict"},
                "output_schema": {"category": "str", "priority": "int", "confidence": "float"},
                "evaluator": "structured_match",
                "match_fields": ["category", "priority"],
                "evaluator_options": {"weights": {"category": 2, "priority": 1}},
                "confidence_thresholds": {
                    "phase1_to_phase2": s.phase1_to_phase2,
                    "phase2_to_phase3": s.phase2_to_phase3,
                    "coaching_trigger": 0.70,
                    "emergency_threshold": 0.50,
                },
            }
        ],
        "remote": {
            "provider": "replay",
            "path": str(root / "answers.jsonl"),
            "price_as": s.price_as,
        },
        "local": {
            "backend": "transformers",
            "base_model": "apprentice/tiny",
            "fine_tune_backend": "huggingface",
            "fine_tune_batch_size": s.fine_tune_batch_size,
            "model_dir": str(root / "models"),
            "device": "cpu",
            "max_new_tokens": s.max_new_tokens,
            "training": {
                "lora_rank": s.lora_rank,
                "lora_alpha": s.lora_alpha,
                "learning_rate": s.learning_rate,
                "epochs": s.epochs,
                "batch_size": s.batch_size,
                "heldout_fraction": s.heldout_fraction,
                "seed": 0,
            },
        },
        "sampling": {
            "decay_function": "exponential",
            "min_floor": s.min_floor,
            "window_size": s.window_size,
            "trend_sensitivity": 0.05,
        },
        "budget": {"daily": 25.0, "weekly": 100.0, "monthly": 300.0, "currency": "USD"},
        "store": {"url": f"sqlite:///{root / 'apprentice.db'}"},
        "gateway": {"host": "127.0.0.1", "port": 8080},
        "alerts": {"webhook_url": None, "format": "slack"},
    }


_HEADER = """\
# apprentice demo config: written by `apprentice demo`; edit and rerun freely.
#   apprentice batch -c {cfg} --task {task} --input {inputs} --output out.jsonl --wait-for-training
#   apprentice status -c {cfg}
#   apprentice report -c {cfg} --html report.html
"""


def write_config(directory: Path, settings: DemoSettings | None = None) -> ApprenticeConfig:
    """Write ``apprentice.yaml`` into ``directory`` and return it loaded (so it is valid)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "apprentice.yaml"
    header = _HEADER.format(cfg=path, task=TASK, inputs=directory / "inputs.jsonl")
    body = yaml.safe_dump(demo_config(directory, settings), sort_keys=False)
    path.write_text(header + body, encoding="utf-8")
    return config_mod.load(path)
