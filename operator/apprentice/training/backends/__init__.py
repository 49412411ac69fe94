"""Fine-tuning backends behind one interface: :data:`REGISTRY` and :func:`get_fine_tuner`.

The registry lives here, above every backend module, so none imports it back.
The backend modules themselves are light: each imports its heavy dependency
(torch, peft, unsloth, an ``axolotl`` subprocess) inside ``train``, when a run
starts, so importing all of them here costs nothing on a machine without them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apprentice.config import FineTuneBackend
from apprentice.training.backends import axolotl, huggingface, openai_ft, unsloth
from apprentice.training.backends.base import (
    BackendUnavailable,
    FineTuner,
    TrainingError,
    TrainingFailed,
    TrainingResult,
)

__all__ = [
    "REGISTRY",
    "BackendUnavailable",
    "FineTuner",
    "TrainingError",
    "TrainingFailed",
    "TrainingResult",
    "TunerOptions",
    "get_fine_tuner",
]


@dataclass(frozen=True)
class TunerOptions:
    """Run settings that only some backends read; the defaults are each backend's own."""

    device: str = "auto"
    """huggingface: auto | cpu | cuda | cuda:N."""
    max_steps: int | None = None
    """huggingface: a cap on optimiser steps (smoke runs); None lets the epochs decide."""
    base_url: str | None = None
    """openai: the API root (a proxy, a test server); None reads OPENAI_BASE_URL."""
    api_key_env: str | None = None
    """openai: the environment variable of the key; None means OPENAI_API_KEY."""
    init_adapter: str | None = None
    """huggingface: an earlier version's adapter to start from (a warm start)."""


FineTunerFactory = Callable[[TunerOptions], FineTuner]


def _huggingface(options: TunerOptions) -> FineTuner:
    return huggingface.HuggingFaceFineTuner(
        options.device, max_steps=options.max_steps, init_adapter=options.init_adapter
    )


def _openai(options: TunerOptions) -> FineTuner:
    return openai_ft.OpenAIFineTuner(
        base_url=options.base_url, api_key_env=options.api_key_env or "OPENAI_API_KEY"
    )


REGISTRY: dict[FineTuneBackend, FineTunerFactory] = {
    FineTuneBackend.huggingface: _huggingface,
    FineTuneBackend.unsloth: lambda _: unsloth.UnslothFineTuner(),
    FineTuneBackend.axolotl: lambda _: axolotl.AxolotlFineTuner(),
    FineTuneBackend.openai: _openai,
}


def get_fine_tuner(kind: FineTuneBackend | str, options: TunerOptions | None = None) -> FineTuner:
    """The fine-tuner for ``local.fine_tune_backend``; an unknown kind is an error, no default."""
    try:
        factory = REGISTRY[FineTuneBackend(kind)]
    except (ValueError, KeyError):
        known = ", ".join(k.value for k in REGISTRY)
        raise TrainingError(f"unknown fine_tune_backend {str(kind)!r}; known: {known}") from None
    return factory(options or TunerOptions())
