"""Helpers shared by the teacher tests (imported as ``teacher_support``)."""

from __future__ import annotations

from typing import Any

from apprentice.config import ProviderConfig

SECRET = "sk-test-SECRET-0123456789abcdefXYZ"


class FakeClock:
    """Monotonic time that only moves when something sleeps; every delay is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


MODELS = {
    "anthropic": "claude-sonnet-4-6",
    "openai": "gpt-4o-2024-08-06",
    "google": "gemini-2.5-flash",
    "openai_compatible": "gpt-4o",
}


def provider_config(kind: str, base_url: str, **extra: Any) -> ProviderConfig:
    """A provider block pointing at a fake server (small timeout: loopback answers fast)."""
    data: dict[str, Any] = {
        "provider": kind,
        "model": MODELS[kind],
        "base_url": base_url,
        "timeout_s": 2.0,
        "max_retries": 3,
    }
    if kind == "openai_compatible":
        data["api_key_env"] = "COMPAT_KEY"
    data.update(extra)
    return ProviderConfig.model_validate(data)
