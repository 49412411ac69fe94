"""Process-wide sections: the student and its training, sampling, budget, store, gateway, alerts."""

from __future__ import annotations

from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from apprentice.config import base_models
from apprentice.config.base import (
    DecayFunction,
    FineTuneBackend,
    Fraction,
    Model,
    NonNegFloat,
    StudentBackend,
)
from apprentice.config.errors import RuleError
from apprentice.config.providers import Price


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
    warm_start: bool = Field(
        default=True,
        description="A retrain starts from the active version's adapter (huggingface "
        "backend, same base and LoRA shape); false trains every version from the base.",
    )


class LocalConfig(Model):
    """The student: base model, serving backend and fine-tuning backend.

    ``base_model`` alone still works: an Ollama tag such as ``llama3.1:8b`` is
    served as is and trained on its Hugging Face id (:mod:`.base_models`); any
    other name is both. ``train_base`` and ``serve_base`` split the two when the
    table does not know the model or the server names it differently.
    """

    backend: StudentBackend = Field(
        default=StudentBackend.transformers, description="Server that answers as the student."
    )
    base_url: str | None = Field(
        default=None, description="Student server URL (ollama: $OLLAMA_HOST or localhost:11434)."
    )
    base_model: str = Field(default="apprentice/tiny", description="HF id, directory or tag.")
    train_base: str | None = Field(
        default=None, description="HF id or directory the adapter is trained on (default: derived)."
    )
    serve_base: str | None = Field(
        default=None,
        description="Ollama tag, vLLM model or GGUF file served (default: base_model).",
    )
    fine_tune_backend: FineTuneBackend = Field(
        default=FineTuneBackend.huggingface, description="Tool that trains the adapters."
    )
    fine_tune_batch_size: int = Field(default=100, gt=0, description="New examples per run.")
    model_dir: str = Field(default="./models/", description="Adapters, one folder per version.")
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    cost_per_hour: NonNegFloat = Field(default=0.0, description="Local compute, currency/hour.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N.")
    timeout_s: float = Field(default=60.0, gt=0, description="Student call timeout, seconds.")
    max_new_tokens: int = Field(default=256, gt=0, description="Generation cap per answer.")
    keep_versions: int = Field(
        default=2, ge=0, le=100, description="Older versions a server keeps for a fast rollback."
    )
    api_key_env: str | None = Field(default=None, description="openai: env var of the API key.")
    api_key_file: str | None = Field(default=None, description="openai: file of the API key.")
    price: Price | None = Field(default=None, description="openai: overrides the ft: price.")
    max_retries: int = Field(default=2, ge=0, le=20, description="openai: transient retries.")

    def training_base(self) -> str:
        """What the fine-tuner loads: ``train_base``, an Ollama tag's HF id, or ``base_model``."""
        if self.train_base:
            return self.train_base
        if self._serves_ollama_tag():
            found = base_models.ollama_base(self.base_model)
            if found is not None:
                return found.hf_id
        return self.base_model

    def serving_base(self) -> str:
        """What the server applies adapters to: ``serve_base`` or ``base_model``."""
        return self.serve_base or self.base_model

    def _serves_ollama_tag(self) -> bool:
        if not base_models.is_ollama_tag(self.base_model):
            return False
        return self.backend is StudentBackend.ollama or ":" in self.base_model

    @model_validator(mode="after")
    def _base_rules(self) -> LocalConfig:
        if self.api_key_env and self.api_key_file:
            raise RuleError("api_key_file", "set either api_key_env or api_key_file, not both")
        openai_student = self.backend is StudentBackend.openai
        openai_tune = self.fine_tune_backend is FineTuneBackend.openai
        if openai_tune and not openai_student:
            raise RuleError(
                "backend",
                f"an OpenAI fine-tune (an ft: model) is served by OpenAI only, not by "
                f"{self.backend.value}; set local.backend: openai",
            )
        if openai_student and not openai_tune:
            raise RuleError(
                "fine_tune_backend",
                "local.backend openai serves OpenAI fine-tunes only; set "
                "local.fine_tune_backend: openai (or serve a local model: ollama, vllm, ...)",
            )
        if openai_tune:
            return self
        if self.backend is StudentBackend.vllm and self.training.lora_rank not in VLLM_LORA_RANKS:
            allowed = "/".join(str(r) for r in VLLM_LORA_RANKS)
            raise RuleError(
                "training.lora_rank",
                f"({self.training.lora_rank}) cannot be served by vLLM, which accepts LoRA "
                f"ranks {allowed} only; set local.training.lora_rank to one of them (e.g. 16)",
            )
        if self.train_base is None and self._serves_ollama_tag():
            found = base_models.ollama_base(self.base_model)
            if found is None:
                known = ", ".join(
                    f"{m}:{s}" for m, f in base_models.OLLAMA_FAMILIES.items() for s in f if s
                )[:300]
                raise RuleError(
                    "train_base",
                    f"the Ollama tag {self.base_model!r} has no known Hugging Face id to train "
                    f"an adapter on; set local.train_base to the Hugging Face weights of the "
                    f"same model (e.g. meta-llama/Llama-3.1-8B-Instruct), or use a known tag "
                    f"({known}, ...)",
                )
            ollama_arch = found.architecture
            if (
                self.backend is StudentBackend.ollama
                and ollama_arch not in base_models.OLLAMA_ADAPTER_ARCHITECTURES
            ):
                raise RuleError(
                    "base_model",
                    f"({self.base_model}) is a {ollama_arch} model, and Ollama converts "
                    f"safetensors LoRA adapters for the "
                    f"{'/'.join(sorted(base_models.OLLAMA_ADAPTER_ARCHITECTURES))} architectures "
                    f"only; use a llama3.x, mistral or gemma2 tag, or serve "
                    f"{found.hf_id} with local.backend: vllm",
                )
        return self


#: LoRA ranks vLLM serves (``--max-lora-rank`` choices).
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


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

    decay_function: DecayFunction = Field(
        default=DecayFunction.exponential,
        description="Shape of the rate's fall from 1.0 to its target in phase 3.",
    )
    min_floor: float = Field(default=0.02, gt=0, le=1, description="Lowest sampling rate.")
    window_size: int = Field(default=100, ge=5, le=100000, description="Rolling window size.")
    trend_sensitivity: float = Field(default=0.05, ge=0, le=1, description="Trend that reacts.")
    max_detection_delay: int = Field(
        default=5000,
        ge=10,
        le=100_000_000,
        description="Requests within which a drop to coaching_trigger is detected (95%).",
    )
    drift: DriftConfig = Field(default_factory=DriftConfig)


class SamplingOverride(Model):
    """Per-task override of the global sampling block; unset fields inherit."""

    decay_function: DecayFunction | None = Field(
        default=None, description="Overrides sampling.decay_function."
    )
    min_floor: float | None = Field(
        default=None, gt=0, le=1, description="Overrides sampling.min_floor."
    )
    window_size: int | None = Field(
        default=None, ge=5, le=100000, description="Overrides sampling.window_size."
    )
    trend_sensitivity: float | None = Field(
        default=None, ge=0, le=1, description="Overrides sampling.trend_sensitivity."
    )
    max_detection_delay: int | None = Field(
        default=None, ge=10, le=100_000_000, description="Overrides sampling.max_detection_delay."
    )


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

    currency: str = Field(
        default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code of prices and caps."
    )
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


class StoreConfig(Model):
    """Where examples, comparisons, engine state, versions and spend live."""

    url: str = Field(
        default="sqlite:///apprentice.db", description="sqlite:///path or postgresql://..."
    )
    request_retention_days: NonNegFloat | None = Field(
        default=30.0,
        description="Days a request row (its input and answer, for feedback) is kept; "
        "0 or null: forever. Examples, comparisons, spend and feedback are never pruned.",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(
                f"store url must start with sqlite:/// or postgresql://, got {value!r}"
            )
        return value


EventLoopChoice = Literal["auto", "asyncio", "uvloop"]
"""``gateway.event_loop`` and ``serve --loop`` (:mod:`apprentice.gateway.event_loop`)."""


class GatewayConfig(Model):
    """The HTTP server: bind address, admin token, limits and who trains."""

    host: str = Field(default="127.0.0.1", description="Bind address.")
    port: int = Field(default=8080, ge=0, le=65535, description="Bind port (0: any).")
    admin_token_env: str = Field(default="APPRENTICE_ADMIN_TOKEN", description="Admin token env.")
    max_body_bytes: int = Field(default=1048576, gt=0, description="Largest request body.")
    max_concurrency: int = Field(default=256, gt=0, description="Requests in flight.")
    request_timeout_s: float = Field(default=120.0, gt=0, description="Whole-request timeout.")
    header_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request line and headers, counted from "
        "when the connection opens or its previous answer ends; a stalled or idle connection "
        "is closed after it.",
    )
    body_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds to receive a whole request body; a slower client gets 408 and "
        "its connection is closed.",
    )
    max_connections: int = Field(
        default=1024,
        gt=0,
        description="Open client connections; past it a new connection gets 503 with "
        "Retry-After and is closed at once.",
    )
    event_loop: EventLoopChoice = Field(
        default="auto",
        description="The server's event loop: auto takes uvloop when it is installed (the "
        "speedups extra; faster on the local path), else asyncio's; uvloop fails start-up "
        "when it is missing.",
    )
    orchestrator: Literal["local", "operator"] = Field(
        default="local",
        description="local: the gateway trains; operator: the kopf operator drives training.",
    )
    require_api_keys: bool = Field(
        default=False,
        description="The task API, the chat API, /v1/models and a task's /state need an API "
        "key for that task, or the admin token (off on a laptop, on in the Helm chart).",
    )


class TracesConfig(Model):
    """OpenTelemetry traces of the request path, sent over OTLP/HTTP (off by default).

    Needs the ``otel`` extra. With tracing off nothing of OpenTelemetry is imported
    and the request path pays one flag check per step.
    """

    enabled: bool = Field(default=False, description="Export spans over OTLP/HTTP.")
    endpoint: str | None = Field(
        default=None,
        description="Collector base URL, e.g. http://otel-collector:4318 (spans go to "
        "/v1/traces); unset: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "
        "$OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318.",
    )
    service_name: str = Field(
        default="apprentice-gateway", min_length=1, description="The spans' service.name."
    )
    sample_ratio: Fraction = Field(
        default=1.0,
        description="Share of requests traced, decided per trace id; a caller's sampled "
        "W3C traceparent is traced whatever the ratio.",
    )

    @field_validator("endpoint")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"traces endpoint must be an http:// or https:// URL, got {value!r}")
        return value


class TelemetryConfig(Model):
    """What the gateway reports about itself besides /metrics: traces."""

    traces: TracesConfig = Field(default_factory=TracesConfig)


class AlertsConfig(Model):
    """Where alerts (coaching, emergency, drift, shift, budget, rejected versions) go."""

    webhook_url: str | None = Field(default=None, description="Where alerts are POSTed.")
    format: Literal["generic", "slack"] = Field(
        default="generic", description="Webhook payload: generic JSON or a Slack message."
    )
    timeout_s: float = Field(default=10.0, gt=0, description="Per-delivery timeout, seconds.")
    max_retries: int = Field(default=3, ge=0, description="Retries of a failed delivery.")
