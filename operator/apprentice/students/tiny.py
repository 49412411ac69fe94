"""Base models: the built-in ``apprentice/tiny`` and real ones, plus THE chat encoding.

``apprentice/tiny`` is a two-layer Llama with a byte-level tokenizer, built in
code from a fixed seed: nothing is downloaded, so the embedded default runs
offline on a laptop CPU. Its weights are random; each task's adapter (LoRA on
every linear layer plus trainable embeddings and output head) teaches it the
task from the teacher's examples.

:func:`encode_chat` is the one function that turns ``prompts.build_messages``
(plus, when training, ``prompts.render_output``) into token ids. Training and
serving both call it, so the student is trained on exactly what it is asked.
A tokenizer's own chat template is used when it has one. The tiny tokenizer's
template leaves out the system message: for a per-task adapter it is the same
text on every request (no information), and on two CPU cores it would triple
the cost of every training example and every answer.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from apprentice import prompts

# torch and transformers (the `train` extra) are imported inside the functions that
# need them: the training backends import this module for encode_chat, and the
# operator and gateway-only images have neither.
if TYPE_CHECKING:
    import torch

__all__ = [
    "TINY_NAME",
    "BaseModelError",
    "ByteCodec",
    "Codec",
    "EncodedChat",
    "HFCodec",
    "build_tiny_model",
    "encode_chat",
    "is_tiny",
    "load_base",
    "resolve_device",
]

TINY_NAME = "apprentice/tiny"
TINY_SEED = 20240601

# Shape of apprentice/tiny: small enough that a training run of a few hundred
# examples takes well under a minute on two CPU cores.
TINY_SHAPE: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 384,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "rope_parameters": {"rope_type": "default", "rope_theta": 100.0},
}
# Layer-0 heads wired to look 1..N bytes back (see _prime_ngram_heads).
TINY_NGRAM_OFFSETS: tuple[int, ...] = (1, 2, 3, 4, 5)
TINY_NGRAM_SHARPNESS = 4.0


class BaseModelError(RuntimeError):
    """A base model that cannot be loaded (unknown name, not cached offline, bad dir)."""


def is_tiny(name: str) -> bool:
    return name.strip().lower() == TINY_NAME


@dataclasses.dataclass(frozen=True, slots=True)
class EncodedChat:
    """Token ids of a prompt and (when training) of its target answer."""

    prompt_ids: list[int]
    target_ids: list[int]


class Codec(Protocol):
    """The tokenizer side of a base model, as the trainer and the decoder need it."""

    @property
    def eos_ids(self) -> frozenset[int]: ...

    @property
    def pad_id(self) -> int: ...

    def encode_chat(
        self, messages: Sequence[prompts.ChatMessage], target: str | None
    ) -> EncodedChat: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class ByteCodec:
    """Byte-level tokenizer of apprentice/tiny: 6 special ids, then one id per byte."""

    PAD, BOS, EOS, SYSTEM, USER, ASSISTANT = range(6)
    OFFSET = 6
    VOCAB_SIZE = 264  # 6 specials + 256 bytes, rounded up to a multiple of 8

    @property
    def eos_ids(self) -> frozenset[int]:
        return frozenset({self.EOS})

    @property
    def pad_id(self) -> int:
        return self.PAD

    def encode_text(self, text: str) -> list[int]:
        return [b + self.OFFSET for b in text.encode("utf-8")]

    def encode_chat(
        self, messages: Sequence[prompts.ChatMessage], target: str | None
    ) -> EncodedChat:
        ids = [self.BOS]
        for message in messages:
            if message["role"] == "user":
                ids.append(self.USER)
                ids.extend(self.encode_text(message["content"]))
            elif message["role"] == "assistant":
                ids.append(self.ASSISTANT)
                ids.extend(self.encode_text(message["content"]))
                ids.append(self.EOS)
        ids.append(self.ASSISTANT)
        tail = [] if target is None else [*self.encode_text(target), self.EOS]
        return EncodedChat(ids, tail)

    def decode(self, ids: Sequence[int]) -> str:
        data = bytes(i - self.OFFSET for i in ids if self.OFFSET <= i < self.OFFSET + 256)
        return data.decode("utf-8", errors="replace")


class HFCodec:
    """A Hugging Face tokenizer: its chat template when it has one, else a fixed template."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id
        ids = {eos} if isinstance(eos, int) else set(eos or [])
        self._eos = frozenset(ids)
        pad = tokenizer.pad_token_id
        self._pad = pad if isinstance(pad, int) else (min(ids) if ids else 0)

    @property
    def eos_ids(self) -> frozenset[int]:
        return self._eos

    @property
    def pad_id(self) -> int:
        return self._pad

    def render(self, messages: Sequence[prompts.ChatMessage]) -> str:
        """Prompt text, ending where the assistant's answer starts."""
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
            return str(text)
        parts = [f"### {m['role'].capitalize()}:\n{m['content']}\n\n" for m in messages]
        return "".join(parts) + "### Assistant:\n"

    def encode_chat(
        self, messages: Sequence[prompts.ChatMessage], target: str | None
    ) -> EncodedChat:
        prompt = self.tokenizer(self.render(messages), add_special_tokens=False)["input_ids"]
        tail: list[int] = []
        if target is not None:
            tail = list(self.tokenizer(target, add_special_tokens=False)["input_ids"])
            if self._eos:
                tail.append(min(self._eos))
        return EncodedChat(list(prompt), tail)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_tiny_model() -> torch.nn.Module:
    """apprentice/tiny's random weights: the same for every call (fixed seed)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=ByteCodec.VOCAB_SIZE,
        bos_token_id=ByteCodec.BOS,
        eos_token_id=ByteCodec.EOS,
        pad_token_id=ByteCodec.PAD,
        **TINY_SHAPE,
    )
    config.name_or_path = TINY_NAME
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(config)
    _prime_ngram_heads(model, TINY_NGRAM_OFFSETS, TINY_NGRAM_SHARPNESS)
    model.name_or_path = TINY_NAME
    return model


def _prime_ngram_heads(model: Any, offsets: Sequence[int], sharpness: float) -> None:
    """Wire layer-0 heads to attend exactly ``k`` bytes back, one head per offset.

    A random byte model must first discover that words are runs of bytes
    before it can learn which words matter, and a few hundred examples are
    not enough for that. These heads hand it the last few bytes at every
    position (an n-gram view) from the start, the way a real pretrained model
    would, so the adapter only learns the task. Mechanism: embedding dimension
    0 is a constant, the heads' queries and keys read only it, and the query
    is pre-rotated by ``-k`` positions so RoPE's score peaks at distance ``k``.
    """
    import torch

    inner = model.model
    cfg = model.config
    head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
    half = head_dim // 2
    inv_freq = inner.rotary_emb.inv_freq.float()
    attn = inner.layers[0].self_attn
    with torch.no_grad():
        inner.embed_tokens.weight[:, 0] = 0.1
        for head, k in enumerate(offsets[: cfg.num_attention_heads]):
            rows = slice(head * head_dim, (head + 1) * head_dim)
            attn.q_proj.weight[rows] = 0.0
            attn.k_proj.weight[rows] = 0.0
            angle = k * inv_freq
            attn.q_proj.weight[rows, 0] = sharpness * torch.cat([angle.cos(), -angle.sin()])
            attn.k_proj.weight[rows, 0] = torch.cat([torch.ones(half), torch.zeros(half)])


def load_base(
    name_or_path: str, device: str = "cpu", *, allow_download: bool | None = None
) -> tuple[torch.nn.Module, Codec]:
    """Load a base model and its codec: ``apprentice/tiny``, a local directory, or an HF id.

    Hugging Face ids load from the local cache only unless ``allow_download`` is
    true (or ``APPRENTICE_ALLOW_DOWNLOAD=1``): a gateway must never fetch
    gigabytes on the request path by surprise.
    """
    device = resolve_device(device)
    if is_tiny(name_or_path):
        tiny = build_tiny_model()
        tiny.to(device)
        return tiny, ByteCodec()
    if allow_download is None:
        allow_download = os.environ.get("APPRENTICE_ALLOW_DOWNLOAD", "") in {"1", "true", "yes"}
    local_dir = Path(name_or_path).expanduser()
    is_dir = local_dir.is_dir()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = str(local_dir) if is_dir else name_or_path
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=not allow_download)
        model: Any = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=not allow_download
        )
    except (OSError, ValueError) as exc:
        hint = (
            "check the directory holds config.json, the weights and the tokenizer files"
            if is_dir
            else "download it first (huggingface-cli download NAME) or set "
            "APPRENTICE_ALLOW_DOWNLOAD=1; or use base_model: apprentice/tiny"
        )
        raise BaseModelError(f"cannot load base model {name_or_path!r}: {exc}; {hint}") from exc
    model.to(device)
    return model, HFCodec(tokenizer)


def encode_chat(
    codec: Codec, messages: Sequence[prompts.ChatMessage], target: str | None = None
) -> EncodedChat:
    """THE encoding of a chat for training (with ``target``) and serving (without).

    ``messages`` are ``prompts.build_messages(task, input)``; ``target`` is
    ``prompts.render_output(teacher_output)``. A trailing assistant message in
    ``messages`` is taken as the target (chat JSONL records carry it that way).
    """
    msgs = list(messages)
    if target is None and msgs and msgs[-1]["role"] == "assistant":
        target = msgs.pop()["content"]
    return codec.encode_chat(msgs, target)
