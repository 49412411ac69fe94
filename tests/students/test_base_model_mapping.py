"""Training base vs serving name: Ollama tags train on their Hugging Face ids, or fail in config."""

from __future__ import annotations

import textwrap

import pytest

from apprentice import config
from apprentice.config import base_models


def loads_local(local: str) -> config.ApprenticeConfig:
    text = textwrap.dedent(
        """
        tasks: [{name: t}]
        remote: {provider: anthropic, model: claude-sonnet-4-5}
        local:
        """
    ) + textwrap.indent(textwrap.dedent(local), "  ")
    return config.loads(text, env={})


@pytest.mark.parametrize(
    ("tag", "hf_id"),
    [
        ("llama3.1:8b", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama3.1", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama3.1:latest", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama3.1:8b-instruct-q4_K_M", "meta-llama/Llama-3.1-8B-Instruct"),
        ("llama3.2:1b", "meta-llama/Llama-3.2-1B-Instruct"),
        ("mistral:7b", "mistralai/Mistral-7B-Instruct-v0.3"),
        ("gemma2:2b", "google/gemma-2-2b-it"),
        ("qwen2.5:0.5b", "Qwen/Qwen2.5-0.5B-Instruct"),
        ("phi3:mini", "microsoft/Phi-3-mini-4k-instruct"),
    ],
)
def test_common_tags_map_to_their_hugging_face_weights(tag: str, hf_id: str) -> None:
    found = base_models.ollama_base(tag)
    assert found is not None and found.hf_id == hf_id


def test_the_seed_trains_on_the_hf_id_and_serves_the_tag() -> None:
    cfg = loads_local("backend: ollama\nbase_model: llama3.1:8b\nfine_tune_backend: unsloth\n")
    assert cfg.local.training_base() == "meta-llama/Llama-3.1-8B-Instruct"
    assert cfg.local.serving_base() == "llama3.1:8b"


def test_explicit_bases_win_and_plain_names_are_both() -> None:
    cfg = loads_local(
        "backend: ollama\nbase_model: my-llama:8b\ntrain_base: /models/my-llama\n"
        "serve_base: my-llama:8b-q8\n"
    )
    assert cfg.local.training_base() == "/models/my-llama"
    assert cfg.local.serving_base() == "my-llama:8b-q8"
    vllm = loads_local("backend: vllm\nbase_url: http://x:8000\nbase_model: Qwen/Qwen2.5-7B\n")
    assert vllm.local.training_base() == vllm.local.serving_base() == "Qwen/Qwen2.5-7B"


def test_a_tag_with_no_trainable_id_is_a_config_error_naming_the_fix() -> None:
    with pytest.raises(config.ConfigError) as err:
        loads_local("backend: ollama\nbase_model: wizardcoder:13b\n")
    issue = err.value.issues[0]
    assert issue.path == "local.train_base"
    assert "wizardcoder:13b" in issue.message and "set local.train_base" in issue.message


def test_an_architecture_ollama_cannot_convert_is_a_config_error() -> None:
    with pytest.raises(config.ConfigError) as err:
        loads_local("backend: ollama\nbase_model: qwen2.5:7b\n")
    issue = err.value.issues[0]
    assert issue.path == "local.base_model"
    assert "qwen2" in issue.message and "local.backend: vllm" in issue.message


def test_a_rank_vllm_refuses_is_a_config_error() -> None:
    with pytest.raises(config.ConfigError) as err:
        loads_local(
            "backend: vllm\nbase_url: http://x:8000\nbase_model: m/m\ntraining: {lora_rank: 12}\n"
        )
    assert err.value.issues[0].path == "local.training.lora_rank"
    assert "8/16/32/64/128/256/320/512" in err.value.issues[0].message
