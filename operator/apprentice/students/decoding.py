"""Deterministic greedy decoding that stops at the end of the JSON object.

Two decoders share one contract (``generate(prompt_ids, max_new_tokens,
stop) -> list[int]``):

- :class:`LlamaGreedy` runs a Llama-shaped model (merged adapter, no bias)
  with a preallocated KV cache in plain torch ops. The gateway calls the
  student once per request at batch size 1; ``transformers.generate`` spends
  about a millisecond per token in Python bookkeeping, which for a tiny model
  is ten times the arithmetic.
- :class:`HFGreedy` calls the model's own forward with its cache, for any
  other architecture.

:class:`JsonStop` ends decoding when the first top-level JSON object closes,
so a student never rambles past its answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
import torch.nn.functional as F

__all__ = ["Decoder", "HFGreedy", "JsonStop", "LlamaGreedy", "make_decoder"]


class JsonStop:
    """Tracks brace depth outside strings; ``done`` once the first object closes."""

    def __init__(self) -> None:
        self.depth = 0
        self.started = False
        self.in_string = False
        self.escaped = False
        self.done = False

    def feed(self, text: str) -> bool:
        for ch in text:
            if self.done:
                break
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif ch == "\\":
                    self.escaped = True
                elif ch == '"':
                    self.in_string = False
            elif ch == '"':
                self.in_string = self.started
            elif ch == "{":
                self.depth += 1
                self.started = True
            elif ch == "}" and self.started:
                self.depth -= 1
                if self.depth == 0:
                    self.done = True
        return self.done


StopFn = Callable[[int], bool]


class Decoder(Protocol):
    def generate(self, prompt_ids: list[int], max_new_tokens: int, stop: StopFn) -> list[int]:
        """Greedy token ids after the prompt; ``stop(token)`` true ends it (token kept)."""
        ...


class LlamaGreedy:
    """Greedy decoding for a plain ``LlamaForCausalLM`` (adapter already merged)."""

    def __init__(self, model: Any) -> None:
        cfg = model.config
        inner = model.model
        self.eps = float(cfg.rms_norm_eps)
        self.n_heads = int(cfg.num_attention_heads)
        self.n_kv = int(cfg.num_key_value_heads or cfg.num_attention_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads)
        self.max_pos = int(cfg.max_position_embeddings)
        with torch.no_grad():
            self.embed = inner.embed_tokens.weight.detach().clone()
            # Rows of q/k reordered per head from rotate_half's [reals | imags] to interleaved
            # pairs, so RoPE is one complex multiply (dot products are unchanged).
            half = self.head_dim // 2
            within = [i // 2 + (i % 2) * half for i in range(self.head_dim)]
            q_perm = [h * self.head_dim + j for h in range(self.n_heads) for j in within]
            k_perm = [h * self.head_dim + j for h in range(self.n_kv) for j in within]
            self.layers = []
            for layer in inner.layers:
                attn, mlp = layer.self_attn, layer.mlp
                wqkv = torch.cat(
                    [attn.q_proj.weight[q_perm], attn.k_proj.weight[k_perm], attn.v_proj.weight]
                )
                wgu = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
                self.layers.append(
                    (
                        layer.input_layernorm.weight.detach().clone(),
                        wqkv.detach().t().contiguous(),
                        attn.o_proj.weight.detach().t().contiguous(),
                        layer.post_attention_layernorm.weight.detach().clone(),
                        wgu.detach().t().contiguous(),
                        mlp.down_proj.weight.detach().t().contiguous(),
                    )
                )
            self.norm = inner.norm.weight.detach().clone()
            self.head = model.lm_head.weight.detach().t().contiguous()
            rotary = inner.rotary_emb
            inv_freq = rotary.inv_freq.detach().float()
            scale = float(getattr(rotary, "attention_scaling", 1.0))
            pos = torch.arange(self.max_pos, dtype=torch.float32, device=inv_freq.device)
            freqs = torch.outer(pos, inv_freq)
            self.rope = torch.polar(torch.full_like(freqs, scale), freqs).unsqueeze(1)
        self.q_size = self.n_heads * self.head_dim
        self.kv_size = self.n_kv * self.head_dim
        self.scale = 1.0 / math.sqrt(self.head_dim)

    @staticmethod
    def supports(model: Any) -> bool:
        cfg = getattr(model, "config", None)
        if cfg is None or getattr(cfg, "model_type", None) != "llama":
            return False
        if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
            return False
        rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
        kind = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else ""
        return kind == "default" and getattr(cfg, "hidden_act", "silu") == "silu"

    def _step(
        self, x: torch.Tensor, start: int, kcache: list[torch.Tensor], vcache: list[torch.Tensor]
    ) -> torch.Tensor:
        """Run ``x`` (T, H) at positions start.. through the layers; fills the caches."""
        t = x.shape[0]
        end = start + t
        rope = self.rope[start:end]
        qk_size = self.q_size + self.kv_size
        n_qk = self.n_heads + self.n_kv
        shape = (x.shape[-1],)
        for i, (ln1, wqkv, wo, ln2, wgu, wdown) in enumerate(self.layers):
            h = F.rms_norm(x, shape, ln1, self.eps) @ wqkv
            pairs = torch.view_as_complex(h[:, :qk_size].reshape(t, n_qk, -1, 2))
            qk = torch.view_as_real(pairs * rope).reshape(t, n_qk, self.head_dim)
            q, k = qk[:, : self.n_heads], qk[:, self.n_heads :]
            v = h[:, qk_size:].view(t, self.n_kv, self.head_dim)
            kcache[i][start:end] = k
            vcache[i][start:end] = v
            keys = kcache[i][:end].transpose(0, 1)
            values = vcache[i][:end].transpose(0, 1)
            if self.n_kv != self.n_heads:
                rep = self.n_heads // self.n_kv
                keys = keys.repeat_interleave(rep, dim=0)
                values = values.repeat_interleave(rep, dim=0)
            attn = F.scaled_dot_product_attention(
                q.transpose(0, 1), keys, values, is_causal=t > 1, scale=self.scale
            )
            x = x + attn.transpose(0, 1).reshape(t, self.q_size) @ wo
            g = F.rms_norm(x, shape, ln2, self.eps) @ wgu
            half = g.shape[-1] // 2
            x = x + (F.silu(g[:, :half]) * g[:, half:]) @ wdown
        return x

    @torch.inference_mode()
    def generate(self, prompt_ids: list[int], max_new_tokens: int, stop: StopFn) -> list[int]:
        total = min(len(prompt_ids) + max_new_tokens, self.max_pos)
        if len(prompt_ids) >= total:
            return []
        dtype, device = self.embed.dtype, self.embed.device
        shape = (total, self.n_kv, self.head_dim)
        kcache = [torch.empty(shape, dtype=dtype, device=device) for _ in self.layers]
        vcache = [torch.empty(shape, dtype=dtype, device=device) for _ in self.layers]
        ids = torch.tensor(prompt_ids, device=device)
        x = self._step(self.embed[ids], 0, kcache, vcache)
        pos = len(prompt_ids)
        out: list[int] = []
        while True:
            logits = F.rms_norm(x[-1:], (x.shape[-1],), self.norm, self.eps) @ self.head
            token = int(logits.argmax(-1))
            out.append(token)
            if stop(token) or len(out) >= max_new_tokens or pos >= total:
                return out
            x = self._step(self.embed[token : token + 1], pos, kcache, vcache)
            pos += 1


class HFGreedy:
    """Greedy decoding through the model's own forward and KV cache (any architecture)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @torch.inference_mode()
    def generate(self, prompt_ids: list[int], max_new_tokens: int, stop: StopFn) -> list[int]:
        device = next(self.model.parameters()).device
        ids = torch.tensor([prompt_ids], device=device)
        result = self.model(input_ids=ids, use_cache=True)
        past = result.past_key_values
        out: list[int] = []
        for _ in range(max_new_tokens):
            token = int(result.logits[0, -1].argmax(-1))
            out.append(token)
            if stop(token):
                break
            step = torch.tensor([[token]], device=device)
            result = self.model(input_ids=step, past_key_values=past, use_cache=True)
            past = result.past_key_values
        return out


def make_decoder(model: Any) -> Decoder:
    """The fastest exact decoder for ``model`` (put in eval mode, adapter merged)."""
    model.eval()
    if LlamaGreedy.supports(model):
        return LlamaGreedy(model)
    return HFGreedy(model)
