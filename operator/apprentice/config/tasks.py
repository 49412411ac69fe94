"""One task: its schemas, evaluator, thresholds and per-task overrides."""

from __future__ import annotations

import enum
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from apprentice import schemas
from apprentice.config.base import EvaluatorKind, JudgeMode, Model, NonNegFloat
from apprentice.config.errors import RuleError
from apprentice.config.providers import ProviderConfig
from apprentice.config.settings import BudgetCaps, SamplingConfig, SamplingOverride


class ConfidenceThresholds(Model):
    """When a task changes phase; agreement thresholds are in [0, 1]."""

    phase1_to_phase2: int = Field(default=50, ge=1, description="Examples before training.")
    phase2_to_phase3: float = Field(default=0.85, gt=0, le=1, description="Graduation bound.")
    coaching_trigger: float = Field(default=0.70, gt=0, le=1, description="Coaching below this.")
    emergency_threshold: float = Field(default=0.50, ge=0, le=1, description="Full remote.")

    @model_validator(mode="after")
    def _ordered(self) -> ConfidenceThresholds:
        if not self.coaching_trigger < self.phase2_to_phase3:
            raise RuleError(
                "coaching_trigger",
                f"({self.coaching_trigger}) must be below phase2_to_phase3 "
                f"({self.phase2_to_phase3})",
            )
        if not self.emergency_threshold < self.coaching_trigger:
            raise RuleError(
                "emergency_threshold",
                f"({self.emergency_threshold}) must be below coaching_trigger "
                f"({self.coaching_trigger})",
            )
        return self


class EvaluatorOptions(Model):
    """Knobs of the evaluators; each evaluator reads the ones it knows."""

    weights: dict[str, float] = Field(default_factory=dict, description="Field weights.")
    numeric_tolerance: NonNegFloat = Field(default=0.0, description="Absolute tolerance.")
    case_insensitive: bool = Field(default=True, description="Compare strings ignoring case.")
    normalize_whitespace: bool = Field(default=True, description="Collapse whitespace.")
    lists_as_sets: bool = Field(default=False, description="Ignore list order and repeats.")
    function: str | None = Field(default=None, description="custom: 'module:function'.")
    embedding: Literal["local", "teacher"] = Field(default="local", description="semantic.")
    judges: list[ProviderConfig] = Field(default_factory=list, description="llm_judge models.")
    judge_mode: JudgeMode = Field(
        default=JudgeMode.single,
        description="llm_judge: one judge, the median of all, or a cheap judge that escalates.",
    )
    rubric: str | None = Field(default=None, description="llm_judge grading rubric.")
    uncertain_range: tuple[float, float] = Field(
        default=(0.3, 0.8), description="hierarchical: cheap-judge scores that go to the ensemble."
    )

    @field_validator("function")
    @classmethod
    def _entry_point(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.]+:[\w.]+", value):
            raise ValueError(f"{value!r} is not 'module:function', e.g. mypkg.scoring:score")
        return value


class CacheConfig(Model):
    """An exact-input answer cache for one task (off unless ``enabled``).

    Off by default: serving a stored answer is a change of meaning the task's owner
    opts into (an input that does not say everything, e.g. "today's summary", or a
    caller that wants a fresh sample each time, must never get a stale one).
    """

    enabled: bool = Field(default=False, description="Answer repeated inputs from the cache.")
    ttl_s: float = Field(default=300.0, gt=0, le=86400 * 30, description="Seconds an answer lives.")
    max_entries: int = Field(default=10_000, gt=0, description="Oldest answers evicted beyond.")


class CanaryMode(enum.StrEnum):
    off = "off"
    share = "share"
    shadow = "shadow"


class CanaryConfig(Model):
    """Try a validated version on live traffic before it replaces the active one.

    Off by default: a version that passes held-out validation is promoted at once.
    ``share``: the candidate answers ``share`` of the student's requests (chosen by
    a hash of the request id, so a request id always goes to the same version).
    ``shadow``: the active version answers; the candidate also answers ``share`` of
    the requests and is scored, its answer never served. It takes over once its live
    agreement minus the active's is at least ``margin`` (docs/guides/thresholds.md);
    otherwise it is rolled back (rejected, with an alert).
    """

    mode: CanaryMode = Field(default=CanaryMode.off, description="off, share or shadow.")
    share: float = Field(
        default=0.1, gt=0, le=1, description="Requests routed to the candidate (share: <= 0.5)."
    )
    margin: float = Field(
        default=0.0,
        ge=-0.5,
        le=0.5,
        description="Candidate agreement minus the active's needed to take over (0: match).",
    )
    min_comparisons: int = Field(
        default=50, ge=5, description="Live comparisons each version needs before a verdict."
    )
    max_comparisons: int = Field(
        default=400, ge=5, description="Candidate comparisons after which the point estimate rules."
    )
    sampling_rate: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="Teacher sampling of every request while a canary runs (unset: the task's).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> CanaryConfig:
        if self.mode is CanaryMode.share and self.share > 0.5:
            raise RuleError(
                "share",
                f"({self.share}) must be at most 0.5 in share mode: an unproven candidate "
                "never answers most requests (shadow mode may shadow up to 1.0)",
            )
        if self.max_comparisons < self.min_comparisons:
            raise RuleError(
                "max_comparisons",
                f"({self.max_comparisons}) must be at least min_comparisons "
                f"({self.min_comparisons})",
            )
        return self


class TaskConfig(Model):
    """One recurring structured operation."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="Task name (URL-safe).")
    description: str = Field(default="", description="What the task does; goes in the prompt.")
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(schemas.ANY_OBJECT),
        description="JSON Schema (or {field: type} shorthand) every input must match.",
    )
    output_schema: dict[str, Any] = Field(
        default_factory=lambda: dict(schemas.ANY_OBJECT),
        description="JSON Schema (or shorthand) of an answer; invalid student answers score 0.",
    )
    evaluator: EvaluatorKind = Field(
        default=EvaluatorKind.exact_match,
        description="How a student answer is scored against the teacher's.",
    )
    match_fields: list[str] | None = Field(default=None, description="structured_match fields.")
    evaluator_options: EvaluatorOptions = Field(default_factory=EvaluatorOptions)
    confidence_thresholds: ConfidenceThresholds = Field(default_factory=ConfidenceThresholds)
    sampling: SamplingOverride = Field(default_factory=SamplingOverride)
    budget: BudgetCaps = Field(default_factory=BudgetCaps)
    fine_tune_batch_size: int | None = Field(default=None, gt=0, description="Overrides local.")
    examples: list[dict[str, Any]] = Field(default_factory=list, description="Few-shot inputs.")
    cache: CacheConfig = Field(default_factory=CacheConfig)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)

    @field_validator("input_schema", "output_schema", mode="before")
    @classmethod
    def _schema(cls, value: Any) -> dict[str, Any]:
        if value is None:
            return dict(schemas.ANY_OBJECT)
        if not isinstance(value, dict):
            raise ValueError("a schema is a mapping: shorthand {text: str} or JSON Schema")
        try:
            return schemas.normalize(value, "schema")
        except schemas.SchemaSyntaxError as exc:
            raise ValueError(str(exc).removeprefix("schema: ").removeprefix("schema.")) from exc

    @model_validator(mode="after")
    def _evaluator_rules(self) -> TaskConfig:
        kind = self.evaluator
        if kind is EvaluatorKind.structured_match and not self.match_fields:
            raise RuleError("match_fields", "structured_match needs match_fields: [field, ...]")
        if kind is EvaluatorKind.custom and not self.evaluator_options.function:
            raise RuleError(
                "evaluator_options", "custom needs evaluator_options.function: 'module:function'"
            )
        props = self.output_schema.get("properties")
        if self.match_fields and isinstance(props, dict):
            unknown = [f for f in self.match_fields if f.split(".")[0] not in props]
            if unknown:
                raise RuleError(
                    "match_fields", f"{unknown} are not in output_schema ({sorted(props)})"
                )
        return self

    def effective_sampling(self, base: SamplingConfig) -> SamplingConfig:
        """The global sampling block with this task's overrides applied."""
        return base.model_copy(update=self.sampling.model_dump(exclude_none=True))
