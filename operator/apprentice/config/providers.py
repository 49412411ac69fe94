"""Teacher endpoints: provider, model, credentials, price, rate limits."""

from __future__ import annotations

from pydantic import Field, model_validator

from apprentice.config.base import Model, NonNegFloat, ProviderKind
from apprentice.config.errors import RuleError


class Price(Model):
    """List price of a model in the budget currency per million tokens."""

    input_per_mtok: NonNegFloat = Field(description="Price per 1M input tokens.")
    output_per_mtok: NonNegFloat = Field(description="Price per 1M output tokens.")


class RateLimits(Model):
    """Client-side limits per provider; the provider's own headers tighten them further."""

    requests_per_minute: int | None = Field(default=None, gt=0, description="Requests/minute.")
    tokens_per_minute: int | None = Field(default=None, gt=0, description="Tokens/minute.")


class ProviderEndpoint(Model):
    """What a teacher endpoint is, whatever runs it: wire protocol, model, price, limits.

    Where its key and a replay file come from differs between one process (an env var,
    a file path: :class:`ProviderConfig`) and a cluster (Secret and ConfigMap references:
    ``apprentice.kube.models.TeacherSpec``); both derive from this one declaration.
    """

    provider: ProviderKind = Field(description="Which wire protocol to speak.")
    model: str | None = Field(default=None, description="Provider's model name.")
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

    def check_endpoint(self) -> None:
        """The endpoint's own rules (a plain method: each subclass's validator calls it
        after its credential rules, so the first error reported stays the same)."""
        if self.provider is not ProviderKind.replay and not self.model:
            raise RuleError("model", f"provider {self.provider.value} needs a model name")
        if self.provider is ProviderKind.openai_compatible and not self.base_url:
            raise RuleError(
                "base_url", "openai_compatible needs base_url, e.g. https://openrouter.ai/api/v1"
            )


class ProviderConfig(ProviderEndpoint):
    """One teacher endpoint. The API key is read from the environment or a mounted file only."""

    api_key_env: str | None = Field(default=None, description="Env var holding the API key.")
    api_key_file: str | None = Field(default=None, description="File holding the API key.")
    path: str | None = Field(default=None, description="replay only: JSONL of input/output.")

    @model_validator(mode="after")
    def _provider_rules(self) -> ProviderConfig:
        if self.api_key_env and self.api_key_file:
            raise RuleError("api_key_file", "set either api_key_env or api_key_file, not both")
        if self.provider is ProviderKind.replay and not self.path:
            raise RuleError("path", "the replay teacher needs path: answers.jsonl")
        self.check_endpoint()
        return self


class RemoteConfig(ProviderConfig):
    """The primary teacher plus optional others that share the calls by weight."""

    additional_providers: list[ProviderConfig] = Field(default_factory=list)

    def providers(self) -> list[ProviderConfig]:
        """All teachers, primary first."""
        primary = ProviderConfig.model_validate(self.model_dump(exclude={"additional_providers"}))
        return [primary, *self.additional_providers]
