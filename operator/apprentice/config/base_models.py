"""Which base a student trains on and which it serves: Ollama tags to Hugging Face ids.

One ``base_model`` cannot name both: Ollama serves ``llama3.1:8b`` (a quantised
GGUF in its own store) while Unsloth, Axolotl and peft train on the Hugging Face
weights ``meta-llama/Llama-3.1-8B-Instruct``. A LoRA adapter trained on the
latter applies to the former because the architecture and tensor names are the
same. This table says which Hugging Face id each common Ollama tag is, and
which architecture Ollama gives it: Ollama converts a safetensors LoRA adapter
itself only for the ``llama`` and ``gemma2`` architectures (its
``convert.ConvertAdapter``), so for the others the adapter must be GGUF.
"""

from __future__ import annotations

import dataclasses

__all__ = [
    "OLLAMA_ADAPTER_ARCHITECTURES",
    "OLLAMA_FAMILIES",
    "OllamaBase",
    "is_ollama_tag",
    "ollama_base",
]

#: Architectures whose safetensors LoRA adapters Ollama converts on ``/api/create``.
OLLAMA_ADAPTER_ARCHITECTURES = frozenset({"llama", "gemma2"})


@dataclasses.dataclass(frozen=True, slots=True)
class OllamaBase:
    """An Ollama tag's trainable Hugging Face id and the architecture Ollama reports."""

    hf_id: str
    architecture: str


def _b(hf_id: str, architecture: str) -> OllamaBase:
    return OllamaBase(hf_id, architecture)


# model -> {tag (size): base}; "" is the tag Ollama pulls for a bare name (``latest``).
OLLAMA_FAMILIES: dict[str, dict[str, OllamaBase]] = {
    "llama3.1": {
        "8b": _b("meta-llama/Llama-3.1-8B-Instruct", "llama"),
        "70b": _b("meta-llama/Llama-3.1-70B-Instruct", "llama"),
        "405b": _b("meta-llama/Llama-3.1-405B-Instruct", "llama"),
        "": _b("meta-llama/Llama-3.1-8B-Instruct", "llama"),
    },
    "llama3.2": {
        "1b": _b("meta-llama/Llama-3.2-1B-Instruct", "llama"),
        "3b": _b("meta-llama/Llama-3.2-3B-Instruct", "llama"),
        "": _b("meta-llama/Llama-3.2-3B-Instruct", "llama"),
    },
    "llama3": {
        "8b": _b("meta-llama/Meta-Llama-3-8B-Instruct", "llama"),
        "70b": _b("meta-llama/Meta-Llama-3-70B-Instruct", "llama"),
        "": _b("meta-llama/Meta-Llama-3-8B-Instruct", "llama"),
    },
    # Ollama's mistral is v0.3 and reports the llama architecture.
    "mistral": {
        "7b": _b("mistralai/Mistral-7B-Instruct-v0.3", "llama"),
        "": _b("mistralai/Mistral-7B-Instruct-v0.3", "llama"),
    },
    "qwen2.5": {
        "0.5b": _b("Qwen/Qwen2.5-0.5B-Instruct", "qwen2"),
        "1.5b": _b("Qwen/Qwen2.5-1.5B-Instruct", "qwen2"),
        "3b": _b("Qwen/Qwen2.5-3B-Instruct", "qwen2"),
        "7b": _b("Qwen/Qwen2.5-7B-Instruct", "qwen2"),
        "14b": _b("Qwen/Qwen2.5-14B-Instruct", "qwen2"),
        "32b": _b("Qwen/Qwen2.5-32B-Instruct", "qwen2"),
        "72b": _b("Qwen/Qwen2.5-72B-Instruct", "qwen2"),
        "": _b("Qwen/Qwen2.5-7B-Instruct", "qwen2"),
    },
    "gemma2": {
        "2b": _b("google/gemma-2-2b-it", "gemma2"),
        "9b": _b("google/gemma-2-9b-it", "gemma2"),
        "27b": _b("google/gemma-2-27b-it", "gemma2"),
        "": _b("google/gemma-2-9b-it", "gemma2"),
    },
    "phi3": {
        "mini": _b("microsoft/Phi-3-mini-4k-instruct", "phi3"),
        "3.8b": _b("microsoft/Phi-3-mini-4k-instruct", "phi3"),
        "medium": _b("microsoft/Phi-3-medium-4k-instruct", "phi3"),
        "14b": _b("microsoft/Phi-3-medium-4k-instruct", "phi3"),
        "": _b("microsoft/Phi-3-mini-4k-instruct", "phi3"),
    },
    "phi3.5": {
        "3.8b": _b("microsoft/Phi-3.5-mini-instruct", "phi3"),
        "": _b("microsoft/Phi-3.5-mini-instruct", "phi3"),
    },
}


def is_ollama_tag(name: str) -> bool:
    """An Ollama name (``model[:tag]``), not a Hugging Face id (``org/model``) or a path."""
    return "/" not in name and "\\" not in name and not name.endswith((".gguf", ".safetensors"))


def ollama_base(tag: str) -> OllamaBase | None:
    """The Hugging Face base of an Ollama tag, or ``None`` when the table does not know it.

    ``llama3.1``, ``llama3.1:latest``, ``llama3.1:8b`` and quantised variants such
    as ``llama3.1:8b-instruct-q4_K_M`` are all the same trainable base.
    """
    model, _, size = tag.strip().lower().partition(":")
    family = OLLAMA_FAMILIES.get(model)
    if family is None:
        return None
    if size in ("", "latest"):
        return family.get("")
    if size in family:
        return family[size]
    head = size.split("-", 1)[0]
    if head in family:
        return family[head]
    # ``8b-instruct-...`` without a size first (``instruct-q4_0``) is the default size.
    return family.get("") if head in ("instruct", "text") else None
