"""Fine-tuning backends behind one interface: :func:`get_fine_tuner`."""

from __future__ import annotations

from collections.abc import Callable

from apprentice.config import FineTuneBackend
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
    "get_fine_tuner",
]


def _huggingface() -> FineTuner:
    from apprentice.training.backends import huggingface

    return huggingface.HuggingFaceFineTuner()


def _unsloth() -> FineTuner:
    from apprentice.training.backends import unsloth

    return unsloth.UnslothFineTuner()


def _axolotl() -> FineTuner:
    from apprentice.training.backends import axolotl

    return axolotl.AxolotlFineTuner()


def _openai() -> FineTuner:
    from apprentice.training.backends import openai_ft

    return openai_ft.OpenAIFineTuner()


# Each factory imports its module when called: their dependencies (torch, unsloth,
# axolotl, an HTTP client) are heavy and mostly absent, and only one is ever used.
REGISTRY: dict[FineTuneBackend, Callable[[], FineTuner]] = {
    FineTuneBackend.huggingface: _huggingface,
    FineTuneBackend.unsloth: _unsloth,
    FineTuneBackend.axolotl: _axolotl,
    FineTuneBackend.openai: _openai,
}


def get_fine_tuner(kind: FineTuneBackend | str) -> FineTuner:
    """The fine-tuner for ``local.fine_tune_backend``; an unknown kind is an error, no default."""
    try:
        factory = REGISTRY[FineTuneBackend(kind)]
    except (ValueError, KeyError):
        known = ", ".join(k.value for k in REGISTRY)
        raise TrainingError(f"unknown fine_tune_backend {str(kind)!r}; known: {known}") from None
    return factory()
