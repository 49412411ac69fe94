"""Base models other than apprentice/tiny: a local directory with a Hugging Face tokenizer,
and a Hub id that is not cached (never downloaded behind the user's back)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).parents[1] / "training"))
from ticket_workload import TASK, workload

from apprentice import config, prompts
from apprentice.students import build_student, tiny
from apprentice.students.base import VersionRef
from apprentice.training import corpus
from apprentice.training.backends.huggingface import HuggingFaceFineTuner


@pytest.fixture(scope="module")
def local_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Llama with a byte-level BPE tokenizer (no chat template), saved to disk."""
    path = tmp_path_factory.mktemp("base")
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus_text = [prompts.user_prompt(i) + prompts.render_output(o) for i, o in workload(50)]
    bpe.train_from_iterator(
        corpus_text,
        trainers.BpeTrainer(
            vocab_size=400,
            special_tokens=["<pad>", "</s>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="</s>", pad_token="<pad>")
    tokenizer.save_pretrained(str(path))
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    model.save_pretrained(str(path))
    return path


def test_local_directory_uses_the_fixed_template_without_a_chat_template(
    local_base: Path,
) -> None:
    _model, codec = tiny.load_base(str(local_base), "cpu")
    assert isinstance(codec, tiny.HFCodec)
    messages = prompts.build_messages(TASK, workload(1)[0][0])
    assert codec.render(messages).startswith("### System:\n" + messages[0]["content"])
    assert codec.render(messages).endswith("### Assistant:\n")
    chat = tiny.encode_chat(codec, [*messages, {"role": "assistant", "content": "{}"}])
    assert codec.decode(chat.target_ids) == "{}" and chat.target_ids[-1] in codec.eos_ids


def test_uncached_hub_model_is_a_clear_error_not_a_download(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("APPRENTICE_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(tiny.BaseModelError, match="APPRENTICE_ALLOW_DOWNLOAD=1"):
        tiny.load_base("apprentice-tests/no-such-model", "cpu")


@pytest.mark.slow
async def test_lora_on_a_real_base_then_served_in_process(local_base: Path, tmp_path: Path) -> None:
    local = config.LocalConfig(backend="transformers", base_model=str(local_base), device="cpu")
    rows = [{"input": i, "output": o, "split": "train"} for i, o in workload(8)]
    data = corpus.training_selection(TASK, rows, hyper=local.training).dataset
    result = HuggingFaceFineTuner("cpu", max_steps=2).train(
        data, base_model=str(local_base), hyper=local.training, out_dir=tmp_path / "v1"
    )
    assert result.hyper_parameters["learning_rate"] == local.training.learning_rate  # as asked
    assert result.hyper_parameters["steps"] == 2
    student = build_student(local)
    await student.load_version(VersionRef("v1", result.adapter_dir))
    answer = await student.generate(TASK, workload(1)[0][0])
    assert answer.version == "v1" and (answer.output is not None or answer.error)
    await student.aclose()
