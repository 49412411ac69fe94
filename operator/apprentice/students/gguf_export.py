"""A trained version as one GGUF file that llama.cpp serves: base and adapter merged.

Why merged rather than base GGUF + GGUF LoRA: the tiny student's adapter also
trains the embeddings and the output head in full (peft ``modules_to_save``),
which a llama.cpp LoRA adapter cannot express; and the merged tiny model is a
couple of megabytes, so one file per version costs nothing.

apprentice/tiny's byte tokenizer (:class:`~apprentice.students.tiny.ByteCodec`)
becomes a GPT-2 style byte-level BPE vocabulary with no merges: the 6 special
ids as control tokens, then byte ``b`` at id ``6 + b`` spelt through GPT-2's
``bytes_to_unicode``, so llama.cpp tokenizes any UTF-8 text to exactly the ids
ByteCodec gives. A chat template in the file rebuilds ByteCodec's chat layout
(BOS, ``<|user|>`` text, ``<|assistant|>``; no system message), so the server's
chat endpoint prompts the model exactly as the in-process student does.

Llama's q/k projection rows are permuted the way llama.cpp's
``convert_hf_to_gguf.py`` (``LlamaModel.permute``) does: Hugging Face rotates
halves of each head (NeoX order), llama.cpp rotates adjacent pairs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apprentice.students import tiny

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CHAT_TEMPLATE",
    "GGUF_NAME",
    "ConversionError",
    "byte_vocab",
    "convert_version",
    "write_gguf",
]

GGUF_NAME = "model.gguf"
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}{{ eos_token }}"
    "{% endif %}{% endfor %}<|assistant|>"
)
# gguf's TokenType values (kept literal so this module imports without gguf).
_NORMAL, _CONTROL, _UNUSED = 1, 3, 5


class ConversionError(RuntimeError):
    """A version that cannot be turned into a GGUF file; the message names the fix."""


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (as llama.cpp inverts it)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def byte_vocab() -> tuple[list[str], list[int]]:
    """ByteCodec's ids as GGUF tokens and token types, index = id."""
    to_char = _bytes_to_unicode()
    tokens = [*SPECIAL_TOKENS, *(to_char[b] for b in range(256))]
    types = [_CONTROL] * len(SPECIAL_TOKENS) + [_NORMAL] * 256
    for i in range(len(tokens), tiny.ByteCodec.VOCAB_SIZE):
        tokens.append(f"<unused{i}>")
        types.append(_UNUSED)
    return tokens, types


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's row order for q/k: pairs instead of halves, per head."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _merged_tiny(adapter_dir: Path) -> Any:
    """The tiny base with the version's adapter merged in (plain Llama module)."""
    # peft and torch are the `train` extra: heavy, imported only when converting.
    from peft import PeftModel

    base, _ = tiny.load_base(tiny.TINY_NAME, "cpu")
    try:
        return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConversionError(
            f"llama_cpp: cannot read the adapter in {adapter_dir} ({exc}); "
            "retrain the version or check the folder holds adapter_config.json and the weights"
        ) from exc


def _tensors(model: Any) -> dict[str, np.ndarray]:
    """GGUF tensor name -> float32 array, q/k permuted."""
    cfg = model.config
    n_head, n_kv = int(cfg.num_attention_heads), int(cfg.num_key_value_heads)
    sd = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    out = {
        "token_embd.weight": sd["model.embed_tokens.weight"],
        "output_norm.weight": sd["model.norm.weight"],
        "output.weight": sd["lm_head.weight"],
    }
    parts = {
        "attn_norm": "input_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for layer in range(int(cfg.num_hidden_layers)):
        for gguf_name, hf_name in parts.items():
            w = sd[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                w = _permute(w, n_head)
            elif gguf_name == "attn_k":
                w = _permute(w, n_kv)
            out[f"blk.{layer}.{gguf_name}.weight"] = w
    return out


def write_gguf(model: Any, path: Path) -> None:
    """Write a plain tiny Llama (adapter merged) and its byte vocabulary to ``path``."""
    # gguf is the `llamacpp` extra: imported only when converting.
    import gguf

    cfg = model.config
    head_dim = int(cfg.hidden_size) // int(cfg.num_attention_heads)
    rope = getattr(cfg, "rope_parameters", None) or {}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(tiny.TINY_NAME)
    writer.add_context_length(int(cfg.max_position_embeddings))
    writer.add_embedding_length(int(cfg.hidden_size))
    writer.add_block_count(int(cfg.num_hidden_layers))
    writer.add_feed_forward_length(int(cfg.intermediate_size))
    writer.add_head_count(int(cfg.num_attention_heads))
    writer.add_head_count_kv(int(cfg.num_key_value_heads))
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(cfg, "rope_theta", 1e4))))
    writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
    writer.add_vocab_size(int(cfg.vocab_size))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    tokens, types = byte_vocab()
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # llama.cpp refuses a BPE vocabulary without merges; this one can never fire
    # (BPE pairs single characters, never these multi-character names).
    writer.add_token_merges([f"{tokens[-2]} {tokens[-1]}"])
    writer.add_bos_token_id(tiny.ByteCodec.BOS)
    writer.add_eos_token_id(tiny.ByteCodec.EOS)
    writer.add_pad_token_id(tiny.ByteCodec.PAD)
    writer.add_add_bos_token(False)  # the chat template writes BOS itself
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, array in _tensors(model).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def convert_version(base_model: str, adapter_dir: str | Path, *, force: bool = False) -> Path:
    """``adapter_dir/model.gguf`` for this version, written once (returns its path).

    The file is written beside the adapter under a temporary name and renamed,
    so a server never opens a half-written model.
    """
    folder = Path(adapter_dir)
    target = folder / GGUF_NAME
    if target.exists() and not force:
        return target
    if not tiny.is_tiny(base_model):
        raise ConversionError(
            f"llama_cpp: the managed llama.cpp student converts {tiny.TINY_NAME} only, not "
            f"{base_model!r}; convert that model with llama.cpp's convert_hf_to_gguf.py and "
            "convert_lora_to_gguf.py and point local.base_url at your own llama-server"
        )
    if not (folder / "adapter_config.json").exists():
        raise ConversionError(
            f"llama_cpp: no adapter in {folder} (adapter_config.json missing); "
            "train the version first"
        )
    try:
        import gguf  # noqa: F401  (checked here for a clear error; used in write_gguf)
    except ImportError as exc:
        raise ConversionError(
            "llama_cpp: the gguf package is missing; pip install 'apprentice[llamacpp]'"
        ) from exc
    model = _merged_tiny(folder)
    partial = folder / f".{GGUF_NAME}.{time.monotonic_ns()}.partial"
    try:
        write_gguf(model, partial)
        partial.replace(target)
    except (OSError, ValueError, KeyError) as exc:
        raise ConversionError(f"llama_cpp: writing {target} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return target
