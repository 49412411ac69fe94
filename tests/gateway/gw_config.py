"""The gateway tests' config builder and trainer command (imported by name from tests).

Kept out of ``conftest.py`` so tests can import it by a unique module name: several
test folders have a ``conftest.py``, and ``from conftest import ...`` would pick
whichever was imported first.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gw_rules
import yaml

from apprentice import config

HERE = Path(__file__).parent
ADMIN_TOKEN = "test-admin-token-123"


def config_dict(
    tmp_path: Path, *, store_url: str | None = None, n_answers: int = 600, **over: Any
) -> dict[str, Any]:
    answers = tmp_path / "answers.jsonl"
    if not answers.exists():
        with answers.open("w") as f:
            for i in range(n_answers):
                inp = gw_rules.make_input(i)
                f.write(json.dumps({"input": inp, "output": gw_rules.teacher_output(inp)}) + "\n")
    task: dict[str, Any] = {
        "name": "classify",
        "description": "Label a ticket by its first word",
        "input_schema": {"text": "str"},
        "output_schema": {"label": "str"},
        "evaluator": "exact_match",
        "confidence_thresholds": {
            "phase1_to_phase2": 20,
            "phase2_to_phase3": 0.8,
            "coaching_trigger": 0.6,
            "emergency_threshold": 0.4,
        },
        **over.pop("task", {}),
    }
    d: dict[str, Any] = {
        "tasks": [task],
        "remote": {"provider": "replay", "path": str(answers), "price_as": "gpt-4o"},
        "local": {
            "backend": "transformers",
            "base_model": "apprentice/tiny",
            "model_dir": str(tmp_path / "models"),
            "fine_tune_batch_size": 40,
            "training": {"heldout_fraction": 0.2},
        },
        "sampling": {"window_size": 20, "min_floor": 0.05},
        "store": {"url": store_url or f"sqlite:///{tmp_path}/apprentice.db"},
        "gateway": {"admin_token_env": "GW_TEST_ADMIN_TOKEN"},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


def make_config(tmp_path: Path, **over: Any) -> config.ApprenticeConfig:
    return config.loads(yaml.safe_dump(config_dict(tmp_path, **over)))


def trainer(rule: str = "first_word", *extra: str) -> list[str]:
    return [sys.executable, str(HERE / "gw_trainer.py"), "--rule", rule, *extra]
