"""Unsloth and Axolotl inputs in the tools' own formats, and their progress parsed as printed.

No GPU here, so the runs themselves are not exercised; what each tool reads
(TRL's conversational JSONL, ``SFTConfig`` / ``FastLanguageModel`` arguments,
axolotl's YAML) and what it prints (the HF Trainer's log dicts, as transformers 4
and 5 print them) are.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from apprentice import config, prompts
from apprentice.training.backends import axolotl, unsloth
from apprentice.training.dataset import TrainingDataset

HYPER = config.TrainingConfig(lora_rank=16, lora_alpha=32, epochs=2, batch_size=4)
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


def test_unsloth_inputs_are_trl_conversations_and_sft_config_fields(tmp_path: Path) -> None:
    data = dataset()
    work = unsloth.write_inputs(data, BASE, HYPER, tmp_path / "v1")
    rows = [json.loads(line) for line in (work / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and set(rows[0]) == {"messages"}
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert rows[0]["messages"] == list(data.conversations[0])
    sft = json.loads((work / "sft_config.json").read_text())
    assert sft["assistant_only_loss"] is True and sft["num_train_epochs"] == 2
    assert sft["per_device_train_batch_size"] == 4 and sft["max_length"] == 512
    model = json.loads((work / "model.json").read_text())
    assert model["from_pretrained"] == {
        "model_name": BASE,
        "max_seq_length": 512,
        "load_in_4bit": True,
    }
    assert model["get_peft_model"]["r"] == 16 and model["get_peft_model"]["lora_alpha"] == 32
    assert "down_proj" in model["get_peft_model"]["target_modules"]


def test_unsloth_reports_every_logged_step() -> None:
    from transformers import TrainerCallback

    events: list[dict[str, Any]] = []
    losses: list[float] = []
    callback = unsloth.loss_callback(events.append, losses)
    assert isinstance(callback, TrainerCallback)
    for step, logs in enumerate(
        [
            {"loss": 1.25, "learning_rate": 2e-4, "epoch": 0.5},
            {"train_runtime": 3.0},
            {"loss": 0.5, "learning_rate": 1e-4, "epoch": 1.0},
        ],
        1,
    ):
        callback.on_log(None, SimpleNamespace(global_step=step), None, logs=logs)
    assert losses == [1.25, 0.5]
    assert events == [
        {"event": "step", "step": 1, "loss": 1.25, "learning_rate": 2e-4, "epoch": 0.5},
        {"event": "step", "step": 3, "loss": 0.5, "learning_rate": 1e-4, "epoch": 1.0},
    ]


# transformers 5 prints floats formatted as strings; 4.x printed floats. Progress bars
# share the stream, with carriage returns.
AXOLOTL_OUTPUT = """#!{python}
import json, sys, pathlib, yaml
cfg = yaml.safe_load(pathlib.Path(sys.argv[2]).read_text())
out = pathlib.Path(cfg["output_dir"])
print("[axolotl.cli.train] loading tokenizer", flush=True)
print("  0%|          | 0/3 [00:00<?, ?it/s]\\r 33%|###3      | 1/3", end="", flush=True)
print(" {{'loss': '1.482', 'grad_norm': '3.1', 'learning_rate': '0.0002', 'epoch': '0.33'}}")
print({{"loss": 0.9, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": 0.67}}, flush=True)
print("{{'loss': '0.3961', 'grad_norm': '0.8', 'learning_rate': '0', 'epoch': '1'}}")
print("{{'train_runtime': '12.3', 'train_loss': '0.93', 'epoch': '1'}}")
(out / "adapter_config.json").write_text(json.dumps({{"r": cfg["lora_r"]}}))
(out / "adapter_model.safetensors").write_bytes(b"x")
"""


def test_axolotl_parses_the_loss_as_transformers_4_and_5_print_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "axolotl"
    exe.write_text(AXOLOTL_OUTPUT.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    events: list[dict[str, Any]] = []
    result = axolotl.AxolotlFineTuner().train(
        dataset(), base_model=BASE, hyper=HYPER, out_dir=tmp_path / "v1", progress=events.append
    )
    assert result.loss_curve == [1.482, 0.9, 0.3961]
    assert [e["loss"] for e in events] == [1.482, 0.9, 0.3961]


def test_axolotl_config_is_the_documented_chat_template_lora_layout(tmp_path: Path) -> None:
    cfg = axolotl.axolotl_config(
        base_model=BASE, hyper=HYPER, dataset_path=tmp_path / "train.jsonl", out_dir=tmp_path
    )
    text = yaml.safe_dump(cfg, sort_keys=False)
    again = yaml.safe_load(text)
    assert again == cfg
    assert cfg["adapter"] == "lora" and cfg["lora_r"] == 16 and cfg["lora_target_linear"]
    ds = cfg["datasets"][0]
    assert ds["type"] == "chat_template" and ds["ds_type"] == "json"
    assert ds["message_property_mappings"] == {"role": "role", "content": "content"}


def test_unsloth_states_its_precision_so_a_t4_is_not_asked_for_bf16(tmp_path: Path) -> None:
    # TRL defaults to bf16, which cards before Ampere refuse (checked with trl's SFTConfig
    # by tool_config_check.py); the run passes what the GPU supports.
    assert unsloth.sft_arguments(HYPER, tmp_path, bf16=False)["fp16"] is True
    on_a100 = unsloth.sft_arguments(HYPER, tmp_path, bf16=True)
    assert on_a100["bf16"] is True and on_a100["fp16"] is False
    assert "bf16" not in unsloth.sft_arguments(HYPER, tmp_path)
