"""Validate our Axolotl and Unsloth/TRL inputs with the tools' own classes (not a pytest test).

Axolotl pulls torch with CUDA wheels and ~7 GB of dependencies (it does install on
a CPU machine; see bench/results/backends.md), too much for the test environment,
so this runs in its own virtual environment::

    python3 -m venv /tmp/axo && /tmp/axo/bin/pip install axolotl
    PYTHONPATH=operator /tmp/axo/bin/python tests/training/tool_config_check.py

It builds the files exactly as the backends write them and checks:

- ``axolotl.utils.config.validate_config`` accepts our YAML, both as a bare schema
  and with a GPU's capabilities (bf16, one GPU), and keeps what we set;
- ``trl.SFTConfig(**sft_config.json)`` builds, and TRL sees our ``train.jsonl``
  rows as conversational (``trl.data_utils.is_conversational``).

Prints one line per check and exits 1 on the first failure.
"""

from __future__ import annotations

import json
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import yaml

from apprentice import config, prompts
from apprentice.training.backends import axolotl, unsloth
from apprentice.training.dataset import TrainingDataset

BASE = "meta-llama/Llama-3.1-8B-Instruct"


def dataset() -> TrainingDataset:
    task = config.TaskConfig(name="classify_ticket", output_schema={"category": "str"})
    return TrainingDataset.from_conversations(
        [
            [
                *prompts.build_messages(task, {"text": f"refund {i}"}),
                {"role": "assistant", "content": prompts.render_output({"category": "billing"})},
            ]
            for i in range(3)
        ]
    )


def check_axolotl(work: Path, hyper: config.TrainingConfig) -> None:
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    data = dataset().write_jsonl(work / "train.jsonl")
    written = yaml.safe_dump(
        axolotl.axolotl_config(base_model=BASE, hyper=hyper, dataset_path=data, out_dir=work),
        sort_keys=False,
    )
    raw = yaml.safe_load(written)
    checked = validate_config(DictDefault(dict(raw)))
    for key in ("base_model", "adapter", "lora_r", "lora_alpha", "micro_batch_size", "num_epochs"):
        assert checked[key] == raw[key], (key, checked[key], raw[key])
    ds = checked["datasets"][0]
    assert ds["type"] == "chat_template" and ds["field_messages"] == "messages", ds
    print(f"axolotl {version('axolotl')}: validate_config accepts our YAML")
    gpu = validate_config(
        DictDefault(dict(yaml.safe_load(written))),
        capabilities={"bf16": True, "fp8": False, "n_gpu": 1, "compute_capability": "sm_80"},
        env_capabilities={"torch_version": version("torch")},
    )
    assert gpu["lora_r"] == hyper.lora_rank
    print("axolotl: validate_config accepts it on a bf16 GPU (sm_80) too")
    bad = dict(yaml.safe_load(written), lora_r="sixteen")
    try:
        validate_config(DictDefault(bad))
    except Exception as exc:
        print(f"axolotl: a broken config is refused ({type(exc).__name__})")
    else:
        raise AssertionError("axolotl accepted lora_r: sixteen")


def check_trl(work: Path, hyper: config.TrainingConfig) -> None:
    from trl import SFTConfig
    from trl.data_utils import is_conversational

    files = unsloth.write_inputs(dataset(), BASE, hyper, work)
    kwargs = json.loads((files / "sft_config.json").read_text())
    try:
        SFTConfig(**kwargs)
    except ValueError as exc:  # TRL defaults to bf16: refused without a bf16 GPU
        assert "bf16" in str(exc), exc
        print(f"trl: without a precision, SFTConfig needs a bf16 GPU ({exc})")
    cpu = unsloth.sft_arguments(hyper, work, bf16=False)
    assert cpu["fp16"] is True
    sft = SFTConfig(**{**cpu, "fp16": False, "use_cpu": True})  # this machine has no GPU
    assert sft.assistant_only_loss is True and sft.max_length == hyper.max_seq_length
    assert sft.num_train_epochs == hyper.epochs and sft.learning_rate == hyper.learning_rate
    print(f"trl {version('trl')}: SFTConfig(**sft_arguments(...)) builds (fp16 on a non-bf16 GPU)")
    rows = [json.loads(line) for line in (files / "train.jsonl").read_text().splitlines()]
    assert all(is_conversational(row) for row in rows)
    print("trl: train.jsonl rows are conversational")


def main() -> int:
    hyper = config.TrainingConfig(lora_rank=16, lora_alpha=32, epochs=2, batch_size=4)
    with tempfile.TemporaryDirectory() as tmp:
        check_axolotl(Path(tmp), hyper)
        check_trl(Path(tmp), hyper)
    return 0


if __name__ == "__main__":
    sys.exit(main())
