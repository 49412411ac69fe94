"""One error taxonomy for every teacher, whatever the provider said.

Provider clients translate HTTP statuses, provider error bodies and transport
failures into this tree at the boundary, raised ``from`` the original, so the
gateway, the evaluators and the budget code handle one set of types::

    TeacherError                  base: provider, status, message that says what to do
    ├── AuthError                 401/403, bad or missing key            never retried
    ├── RateLimited               429 (or 408/409), retry_after_s        retried
    ├── Overloaded                Anthropic 529, Gemini 503 UNAVAILABLE  retried
    ├── QuotaExhausted            insufficient_quota, spend/billing caps never retried
    ├── BadRequest                400/404/422, request the API refuses   never retried
    │   ├── EmbeddingsUnsupported provider without an embeddings API
    │   └── ReplayMiss            replay teacher asked an unknown input
    ├── Timeout                   no answer within timeout_s             retried
    ├── InvalidOutput             JSON still invalid after one repair    never retried
    ├── ProviderError             5xx, transport errors, odd bodies      retried if transient
    └── TeacherConfigError        refused at build time (no key, no price)

Messages never carry the API key: they are built from status codes and the
provider's error text, which is scrubbed twice: of the value of every key this
process loaded (:func:`register_secret`, called for each key in the pool, judges
and embeddings included), and of anything shaped like a provider key. Scrubbing
by value is what catches a key of a shape no pattern knows (a hex key, a
self-hosted gateway's token); the patterns catch keys of other processes and the
partly masked forms providers echo (``sk-ab***yz``).
"""

from __future__ import annotations

import re

__all__ = [
    "AuthError",
    "BadRequest",
    "EmbeddingsUnsupported",
    "InvalidOutput",
    "Overloaded",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "ReplayMiss",
    "TeacherConfigError",
    "TeacherError",
    "Timeout",
    "error_for_status",
    "register_secret",
    "scrub",
]

# Provider error texts sometimes echo a (partial) key: "Incorrect API key provided: sk-ab***yz".
# OpenAI / Anthropic / DeepSeek (sk-, sk-proj-, sk-ant-api03-), Gemini (AIza), Groq (gsk_),
# xAI (xai-), Hugging Face (hf_), Replicate (r8_), Perplexity (pplx-), then any value
# after "key=", "token:", "Bearer ".
_KEYLIKE = re.compile(
    r"(?:\b(?:sk|xai|pplx)-|\b(?:gsk|hf|r8)_|\bAIza)[A-Za-z0-9_\-*]{4,}"
    # A value after "key=" / "token:" / "Bearer " counts only if it holds a digit, so
    # prose ("invalid_api_key: Incorrect API key") survives.
    r"|(?:key|token)[\"']?\s*[=:]\s*[\"']?(?=[A-Za-z_\-*./+]*[0-9])[A-Za-z0-9_\-*./+]{8,}"
    r"|\b[Bb]earer\s+(?=[A-Za-z_\-*./+=]*[0-9])[A-Za-z0-9_\-*./+=]{8,}"
)

#: Values of the keys this process loaded. Shorter ones are ignored: replacing a
#: four-letter "key" everywhere would mangle messages and protect nothing.
_SECRETS: set[str] = set()
_MIN_SECRET = 8


def register_secret(value: str) -> None:
    """Scrub ``value`` from every message from now on (called when a key is loaded)."""
    value = value.strip()
    if len(value) >= _MIN_SECRET:
        _SECRETS.add(value)


def scrub(text: str, *secrets: str) -> str:
    """Remove every registered secret, the given ones and anything key-shaped from ``text``."""
    # Longest first, so a key that contains another is removed whole.
    for secret in sorted({*_SECRETS, *(s for s in secrets if s)}, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


class TeacherError(Exception):
    """A teacher call failed; ``retryable`` says whether the HTTP policy may try again."""

    retryable: bool = False
    cost: float = 0.0
    """USD already billed by the provider before this failure (repair attempts, say)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        retry_after_s: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = scrub(message)
        self.provider = provider
        self.status = status
        self.retry_after_s = retry_after_s
        if retryable is not None:
            self.retryable = retryable
        where = f"{provider}" + (f" HTTP {status}" if status is not None else "")
        super().__init__(f"{where}: {self.message}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, status={self.status!r}, "
            f"message={self.message!r})"
        )


class AuthError(TeacherError):
    """The key is missing, wrong or lacks permission: fix the Secret / env var."""


class RateLimited(TeacherError):
    """The provider asks us to slow down; retried after ``retry_after_s`` or backoff."""

    retryable = True


class Overloaded(TeacherError):
    """The provider is temporarily overloaded (Anthropic 529); retried with backoff."""

    retryable = True


class QuotaExhausted(TeacherError):
    """Credit, quota or spend limit reached at the provider: retrying cannot help."""


class BadRequest(TeacherError):
    """The provider refused the request as malformed or unknown (model name, schema)."""


class EmbeddingsUnsupported(BadRequest):
    """This provider has no embeddings endpoint; use the local embedding model."""


class ReplayMiss(BadRequest):
    """The replay teacher has no recorded answer for this input."""


class Timeout(TeacherError):
    """No answer within the per-attempt timeout; retried."""

    retryable = True


class InvalidOutput(TeacherError):
    """The answer did not match the output schema, even after one repair request."""


class ProviderError(TeacherError):
    """Anything else the provider or the network did; 5xx and transport errors are retried."""


class TeacherConfigError(TeacherError):
    """A teacher cannot be built from its config (missing key, unknown price)."""


def error_for_status(provider: str, status: int, detail: str) -> TeacherError:
    """The default translation of an HTTP status; providers refine it from their bodies."""
    detail = detail or "no error message"
    if status in (401, 403):
        return AuthError(
            f"key rejected ({detail}); check the key in api_key_env / api_key_file and its "
            "permissions for this model",
            provider=provider,
            status=status,
        )
    if status == 429:
        return RateLimited(
            f"rate limited ({detail}); lower rate_limits or ask the provider for more",
            provider=provider,
            status=status,
        )
    if status == 408:
        return Timeout(f"the provider timed out ({detail})", provider=provider, status=status)
    if status == 409 or status >= 500:
        return ProviderError(
            f"provider-side failure ({detail}); retried, then check the provider's status page",
            provider=provider,
            status=status,
            retryable=True,
        )
    if status == 404:
        return BadRequest(
            f"not found ({detail}); check the model name and base_url",
            provider=provider,
            status=status,
        )
    return BadRequest(
        f"request refused ({detail}); check the model name, output_schema and max_output_tokens",
        provider=provider,
        status=status,
    )
