"""The base model and the enumerations every config section shares.

Unknown keys are errors everywhere (a typo must not be silently ignored);
``alias_generator=to_camel`` with ``populate_by_name`` lets the same models read
snake_case ``apprentice.yaml`` and camelCase custom resources.
"""

from __future__ import annotations

import enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

NonNegFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Model(BaseModel):
    """Base: unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        use_enum_values=False,
    )


class ProviderKind(enum.StrEnum):
    anthropic = "anthropic"
    openai = "openai"
    google = "google"
    openai_compatible = "openai_compatible"
    replay = "replay"


class StudentBackend(enum.StrEnum):
    vllm = "vllm"
    ollama = "ollama"
    llama_cpp = "llama_cpp"
    transformers = "transformers"
    openai = "openai"


class FineTuneBackend(enum.StrEnum):
    huggingface = "huggingface"
    unsloth = "unsloth"
    axolotl = "axolotl"
    openai = "openai"


class EvaluatorKind(enum.StrEnum):
    exact_match = "exact_match"
    structured_match = "structured_match"
    semantic_similarity = "semantic_similarity"
    llm_judge = "llm_judge"
    custom = "custom"


class DecayFunction(enum.StrEnum):
    linear = "linear"
    exponential = "exponential"
    step = "step"


class JudgeMode(enum.StrEnum):
    single = "single"
    ensemble = "ensemble"
    hierarchical = "hierarchical"
