"""Fine-tuning backends behind one interface: :func:`get_fine_tuner`."""

from __future__ import annotations

from apprentice.config import FineTuneBackend
from apprentice.training.backends.base import (
    BackendUnavailable,
    FineTuner,
    TrainingError,
    TrainingFailed,
    TrainingResult,
)

__all__ = [
    "BackendUnavailable",
    "FineTuner",
    "TrainingError",
    "TrainingFailed",
    "TrainingResult",
    "get_fine_tuner",
]


def get_fine_tuner(kind: FineTuneBackend | str) -> FineTuner:
    """The fine-tuner for ``local.fine_tune_backend`` (imports its heavy deps lazily)."""
    kind = FineTuneBackend(kind)
    if kind is FineTuneBackend.huggingface:
        from apprentice.training.backends import huggingface

        return huggingface.HuggingFaceFineTuner()
    if kind is FineTuneBackend.unsloth:
        from apprentice.training.backends import unsloth

        return unsloth.UnslothFineTuner()
    if kind is FineTuneBackend.axolotl:
        from apprentice.training.backends import axolotl

        return axolotl.AxolotlFineTuner()
    from apprentice.training.backends import openai_ft

    return openai_ft.OpenAIFineTuner()
