"""Real peft LoRA adapter files, tiny: ``adapter_config.json`` + ``adapter_model.safetensors``.

The tensors are named as peft names them for a Llama model
(``base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight``), so whatever
reads them (Ollama's converter, vLLM, our fakes) sees the real layout; only the
sizes are small. ``metadata`` lands in the safetensors ``__metadata__``, which lets a
stand-in trainer tell a fake server what it learnt.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

__all__ = ["write_peft_adapter"]


def write_peft_adapter(
    directory: Path,
    *,
    base_model: str = "meta-llama/Llama-3.1-8B-Instruct",
    rank: int = 16,
    alpha: int = 32,
    layers: int = 2,
    hidden: int = 32,
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
    metadata: dict[str, str] | None = None,
    seed: int = 0,
) -> Path:
    """Write a peft adapter directory and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for layer in range(layers):
        for module in target_modules:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, hidden)).astype(
                np.float32
            )
            tensors[f"{prefix}.lora_B.weight"] = np.zeros((hidden, rank), dtype=np.float32)
    save_file(tensors, str(directory / "adapter_model.safetensors"), metadata=metadata)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": 0.05,
        "target_modules": list(target_modules),
        "bias": "none",
        "inference_mode": True,
    }
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return directory
