"""Configuration models: the one source of truth for ``apprentice.yaml`` and the CRD specs.

Every setting lives in a small model grouped by concern, documented with its unit
and default. ``apprentice.yaml`` is snake_case; the Kubernetes custom resources
use the same models in camelCase (``populate_by_name`` accepts both), and
``apprentice.kube.crds`` generates the CRD schemas from them.

Errors never say only "validation failed": :func:`load` raises
:class:`ConfigError`, whose issues each carry a path such as
``tasks[0].confidence_thresholds.coaching_trigger``, a stable code and the fix.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from apprentice import schemas
from apprentice.config_errors import ConfigError, ConfigIssue, RuleError, issues_from

__all__ = [
    "AlertsConfig",
    "ApprenticeConfig",
    "BudgetCaps",
    "BudgetConfig",
    "ConfidenceThresholds",
    "ConfigError",
    "ConfigIssue",
    "DecayFunction",
    "DriftConfig",
    "EvaluatorKind",
    "EvaluatorOptions",
    "FineTuneBackend",
    "GatewayConfig",
    "JudgeMode",
    "LocalConfig",
    "Price",
    "ProviderConfig",
    "ProviderKind",
    "RateLimits",
    "RemoteConfig",
    "SamplingConfig",
    "SamplingOverride",
    "StoreConfig",
    "StudentBackend",
    "TaskConfig",
    "TrainingConfig",
    "expand_env",
    "load",
    "loads",
]

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


class Price(Model):
    """List price of a model in the budget currency per million tokens."""

    input_per_mtok: NonNegFloat = Field(description="Price per 1M input tokens.")
    output_per_mtok: NonNegFloat = Field(description="Price per 1M output tokens.")


class RateLimits(Model):
    """Client-side limits per provider; the provider's own headers tighten them further."""

    requests_per_minute: int | None = Field(default=None, gt=0, description="Requests/minute.")
    tokens_per_minute: int | None = Field(default=None, gt=0, description="Tokens/minute.")


class ProviderConfig(Model):
    """One teacher endpoint. The API key is read from the environment or a mounted file only."""

    provider: ProviderKind = Field(description="Which wire protocol to speak.")
    model: str | None = Field(default=None, description="Provider's model name.")
    api_key_env: str | None = Field(default=None, description="Env var holding the API key.")
    api_key_file: str | None = Field(default=None, description="File holding the API key.")
    base_url: str | None = Field(default=None, description="Proxy, regional or test endpoint.")
    weight: float = Field(default=1.0, gt=0, description="Share of teacher calls.")
    price: Price | None = Field(default=None, description="Overrides the built-in price table.")
    price_as: str | None = Field(
        default=None, description="Price as this model (replay teachers, unknown proxies)."
    )
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    timeout_s: float = Field(default=60.0, gt=0, description="Per-attempt timeout, seconds.")
    max_retries: int = Field(default=4, ge=0, le=20, description="Retries on transient errors.")
    max_output_tokens: int = Field(default=1024, gt=0, description="Output token cap per call.")
    path: str | None = Field(default=None, description="replay only: JSONL of input/output.")

    @model_validator(mode="after")
    def _provider_rules(self) -> ProviderConfig:
        if self.api_key_env and self.api_key_file:
            raise RuleError("api_key_file", "set either api_key_env or api_key_file, not both")
        if self.provider is ProviderKind.replay:
            if not self.path:
                raise RuleError("path", "the replay teacher needs path: answers.jsonl")
        elif not self.model:
            raise RuleError("model", f"provider {self.provider.value} needs a model name")
        if self.provider is ProviderKind.openai_compatible and not self.base_url:
            raise RuleError(
                "base_url", "openai_compatible needs base_url, e.g. https://openrouter.ai/api/v1"
            )
        return self


class RemoteConfig(ProviderConfig):
    """The primary teacher plus optional others that share the calls by weight."""

    additional_providers: list[ProviderConfig] = Field(default_factory=list)

    def providers(self) -> list[ProviderConfig]:
        """All teachers, primary first."""
        primary = ProviderConfig.model_validate(self.model_dump(exclude={"additional_providers"}))
        return [primary, *self.additional_providers]


class TrainingConfig(Model):
    """LoRA hyper-parameters; defaults sit in the range people use for 1B-8B bases."""

    lora_rank: int = Field(default=16, gt=0, le=512, description="LoRA rank r.")
    lora_alpha: int = Field(default=32, gt=0, description="LoRA alpha.")
    lora_dropout: Fraction = Field(default=0.05, description="LoRA dropout.")
    learning_rate: float = Field(default=2.0e-4, gt=0, le=1, description="Peak learning rate.")
    epochs: int = Field(default=3, gt=0, le=100, description="Passes over the train split.")
    batch_size: int = Field(default=8, gt=0, description="Examples per optimiser step.")
    max_seq_length: int = Field(default=512, gt=0, description="Tokens per example.")
    heldout_fraction: float = Field(default=0.1, gt=0, lt=1, description="Held-out share.")
    target_modules: list[str] | None = Field(default=None, description="None: backend default.")
    seed: int = Field(default=0, description="Training seed.")
    coaching_weight: float = Field(
        default=2.0, ge=1, description="Repeat factor for examples the student got wrong."
    )


class LocalConfig(Model):
    """The student: base model, serving backend and fine-tuning backend."""

    backend: StudentBackend = Field(default=StudentBackend.transformers)
    base_url: str | None = Field(default=None, description="Student server URL.")
    base_model: str = Field(default="apprentice/tiny", description="HF id, directory or tag.")
    fine_tune_backend: FineTuneBackend = Field(default=FineTuneBackend.huggingface)
    fine_tune_batch_size: int = Field(default=100, gt=0, description="New examples per run.")
    model_dir: str = Field(default="./models/", description="Adapters, one folder per version.")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    cost_per_hour: NonNegFloat = Field(default=0.0, description="Local compute, currency/hour.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N.")
    timeout_s: float = Field(default=60.0, gt=0, description="Student call timeout, seconds.")
    max_new_tokens: int = Field(default=256, gt=0, description="Generation cap per answer.")


class DriftConfig(Model):
    """Detector parameters, scaled for agreement scores in [0, 1]."""

    page_hinkley_delta: float = Field(default=0.005, ge=0, description="Tolerated change.")
    page_hinkley_threshold: float = Field(default=1.5, gt=0, description="Alarm threshold.")
    shift_window: int = Field(default=10, ge=3, description="Recent window of the shift test.")
    shift_min_drop: float = Field(default=0.2, gt=0, le=1, description="Mean drop that counts.")
    shift_z: float = Field(default=3.0, gt=0, description="z-score for the shift test.")
    chance_agreement: Fraction = Field(
        default=0.5, description="Agreement expected by chance; well under it is anti-correlation."
    )


class SamplingConfig(Model):
    """How often the teacher is asked too, once the student serves (phase 3)."""

    decay_function: DecayFunction = Field(default=DecayFunction.exponential)
    min_floor: float = Field(default=0.02, gt=0, le=1, description="Lowest sampling rate.")
    window_size: int = Field(default=100, ge=5, le=100000, description="Rolling window size.")
    trend_sensitivity: float = Field(default=0.05, ge=0, le=1, description="Trend that reacts.")
    drift: DriftConfig = Field(default_factory=DriftConfig)


class SamplingOverride(Model):
    """Per-task override of the global sampling block; unset fields inherit."""

    decay_function: DecayFunction | None = None
    min_floor: float | None = Field(default=None, gt=0, le=1)
    window_size: int | None = Field(default=None, ge=5, le=100000)
    trend_sensitivity: float | None = Field(default=None, ge=0, le=1)


class BudgetCaps(Model):
    """Spend caps per calendar window; ``None`` means uncapped."""

    daily: float | None = Field(default=None, gt=0, description="Cap per calendar day.")
    weekly: float | None = Field(default=None, gt=0, description="Cap per ISO week.")
    monthly: float | None = Field(default=None, gt=0, description="Cap per calendar month.")

    @model_validator(mode="after")
    def _ordered(self) -> BudgetCaps:
        pairs = [("daily", "weekly"), ("weekly", "monthly"), ("daily", "monthly")]
        for small, big in pairs:
            a, b = getattr(self, small), getattr(self, big)
            if a is not None and b is not None and a > b:
                raise RuleError(small, f"({a}) must not exceed {big} ({b})")
        return self


class BudgetConfig(BudgetCaps):
    """Global caps, currency and the calendar's time zone."""

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    timezone: str = Field(default="UTC", description="IANA zone of the calendar windows.")
    pause_remote_when_exhausted: bool = Field(
        default=True, description="Serve from the student when a cap is reached."
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as UTC") from exc
        return value


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
    judge_mode: JudgeMode = Field(default=JudgeMode.single)
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


class TaskConfig(Model):
    """One recurring structured operation."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="Task name (URL-safe).")
    description: str = Field(default="", description="What the task does; goes in the prompt.")
    input_schema: dict[str, Any] = Field(default_factory=lambda: dict(schemas.ANY_OBJECT))
    output_schema: dict[str, Any] = Field(default_factory=lambda: dict(schemas.ANY_OBJECT))
    evaluator: EvaluatorKind = Field(default=EvaluatorKind.exact_match)
    match_fields: list[str] | None = Field(default=None, description="structured_match fields.")
    evaluator_options: EvaluatorOptions = Field(default_factory=EvaluatorOptions)
    confidence_thresholds: ConfidenceThresholds = Field(default_factory=ConfidenceThresholds)
    sampling: SamplingOverride = Field(default_factory=SamplingOverride)
    budget: BudgetCaps = Field(default_factory=BudgetCaps)
    fine_tune_batch_size: int | None = Field(default=None, gt=0, description="Overrides local.")
    examples: list[dict[str, Any]] = Field(default_factory=list, description="Few-shot inputs.")

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


class StoreConfig(Model):
    url: str = Field(
        default="sqlite:///apprentice.db", description="sqlite:///path or postgresql://..."
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(
                f"store url must start with sqlite:/// or postgresql://, got {value!r}"
            )
        return value


class GatewayConfig(Model):
    host: str = Field(default="127.0.0.1", description="Bind address.")
    port: int = Field(default=8080, ge=0, le=65535, description="Bind port (0: any).")
    admin_token_env: str = Field(default="APPRENTICE_ADMIN_TOKEN", description="Admin token env.")
    max_body_bytes: int = Field(default=1048576, gt=0, description="Largest request body.")
    max_concurrency: int = Field(default=256, gt=0, description="Requests in flight.")
    request_timeout_s: float = Field(default=120.0, gt=0, description="Whole-request timeout.")
    orchestrator: Literal["local", "operator"] = Field(
        default="local",
        description="local: the gateway trains; operator: the kopf operator drives training.",
    )


class AlertsConfig(Model):
    webhook_url: str | None = Field(default=None, description="Where alerts are POSTed.")
    format: Literal["generic", "slack"] = Field(default="generic")
    timeout_s: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0)


class ApprenticeConfig(Model):
    """The whole ``apprentice.yaml``."""

    tasks: list[TaskConfig] = Field(min_length=1)
    remote: RemoteConfig
    local: LocalConfig = Field(default_factory=LocalConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)

    @model_validator(mode="after")
    def _unique_tasks(self) -> ApprenticeConfig:
        seen: set[str] = set()
        for task in self.tasks:
            if task.name in seen:
                raise RuleError("tasks", f"task name {task.name!r} appears twice; names are keys")
            seen.add(task.name)
        return self

    def task(self, name: str) -> TaskConfig:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"no task named {name!r}; configured: {[t.name for t in self.tasks]}")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, dict):
        return {k: expand_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(
            [
                ConfigIssue(
                    path or "<root>",
                    "env_missing",
                    f"environment variable {name} is not set",
                    f"export {name}=... or write ${{{name}:-default}}",
                )
            ]
        )

    return _VAR.sub(sub, value)


def loads(
    text: str, env: Mapping[str, str] | None = None, source: str = "<string>"
) -> ApprenticeConfig:
    """Parse YAML text into a validated config, or raise :class:`ConfigError`."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "<yaml>"
        raise ConfigError(
            [ConfigIssue(where, "yaml", f"not valid YAML: {exc}", "fix the syntax")], source
        ) from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            [
                ConfigIssue(
                    "<root>",
                    "type",
                    "the config must be a mapping",
                    "start from the reference apprentice.yaml",
                )
            ],
            source,
        )
    expanded = expand_env(raw, os.environ if env is None else env)
    try:
        return ApprenticeConfig.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(issues_from(exc), source) from None


def load(path: str | Path, env: Mapping[str, str] | None = None) -> ApprenticeConfig:
    """Load and validate a config file; relative paths inside stay relative to the caller."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [
                ConfigIssue(
                    str(file),
                    "file",
                    f"cannot read: {exc.strerror}",
                    "pass an existing file with -c",
                )
            ],
            str(file),
        ) from exc
    return loads(text, env, str(file))
