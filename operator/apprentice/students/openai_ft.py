"""An OpenAI fine-tune (``ft:`` model) as the student, served by OpenAI's chat API.

``local.fine_tune_backend: openai`` trains a remote fine-tune; this backend
serves it. A version's directory holds the ``metadata.json`` the trainer wrote,
whose ``adapter_dir`` is the ``ft:`` model name (a literal ``ft:...`` path works
too, for versions registered by hand). Each answer goes through the same
:class:`~apprentice.teachers.remote.RemoteTeacher` the teachers use, so the key
policy (``api_key_env`` / ``api_key_file``, never logged), retries with backoff,
``Retry-After``, JSON-schema output and cost accounting are the teachers' own.

A fine-tuned model is billed at its own price, not its base's: the table below
is OpenAI's published per-1M-token price for inference on fine-tuned models.
``local.price`` overrides it (and is required for a base the table lacks).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from apprentice import prompts, teachers
from apprentice.config import LocalConfig, Price, ProviderConfig, ProviderKind, TaskConfig
from apprentice.students.base import (
    Health,
    NoStudent,
    StudentAnswer,
    StudentUnavailable,
    VersionLoadError,
    VersionRef,
)
from apprentice.teachers import errors as teacher_errors
from apprentice.teachers.keys import resolve_api_key

__all__ = ["DEFAULT_URL", "FINE_TUNED_PRICES", "OpenAIStudent", "fine_tuned_price", "ft_model"]

DEFAULT_URL = "https://api.openai.com/v1"
KEY_ENV = "OPENAI_API_KEY"

#: USD per 1M input / output tokens for inference on a fine-tuned model, by base.
FINE_TUNED_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4.1": (3.00, 12.00),
    "gpt-4.1-mini": (0.80, 3.20),
    "gpt-4.1-nano": (0.20, 0.80),
    "gpt-4o": (3.75, 15.00),
    "gpt-4o-mini": (0.30, 1.20),
    "gpt-3.5-turbo": (3.00, 6.00),
    "o4-mini": (4.00, 16.00),
}


def fine_tuned_price(model: str) -> Price | None:
    """The price of ``ft:<base>:...`` (or of a fine-tune of ``<base>``), longest prefix first."""
    base = model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 1 else model
    best = None
    for key in FINE_TUNED_PRICES:
        if (base == key or base.startswith(key + "-")) and (best is None or len(key) > len(best)):
            best = key
    if best is None:
        return None
    inp, out = FINE_TUNED_PRICES[best]
    return Price(input_per_mtok=inp, output_per_mtok=out)


def ft_model(path: str) -> str:
    """The ``ft:`` model a version names: the path itself, or its metadata.json's."""
    if path.startswith("ft:"):
        return path
    try:
        raw = json.loads((Path(path) / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VersionLoadError(
            f"openai student: {path} is neither an ft: model name nor a version directory "
            f"with metadata.json ({exc}); register the fine-tuned model name"
        ) from None
    metrics = raw.get("metrics") if isinstance(raw, dict) else None
    name = (metrics or {}).get("fine_tuned_model") or raw.get("adapter_dir")
    if not isinstance(name, str) or not name.startswith("ft:"):
        raise VersionLoadError(
            f"openai student: {path}/metadata.json names no ft: model (got {name!r}); was "
            "it trained with local.fine_tune_backend: openai?"
        )
    return name


class OpenAIStudent:
    """The active version is an ``ft:`` model; answers are RemoteTeacher calls to it."""

    backend = "openai"

    def __init__(
        self,
        local: LocalConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.local = local
        self.base_url = (local.base_url or DEFAULT_URL).rstrip("/")
        self._transport = transport
        self._env = os.environ if env is None else env
        if local.price is None and fine_tuned_price(local.base_model) is None:
            raise ValueError(
                f"no fine-tuned price known for base {local.base_model!r}: refusing to treat "
                "the student as free; set local.price: {input_per_mtok, output_per_mtok}"
            )
        self._models: dict[str, tuple[str, teachers.Teacher]] = {}
        self._active: str | None = None

    def provider(self, model: str) -> ProviderConfig:
        """The provider block the student's calls use (shared policy with the teachers)."""
        price = (
            self.local.price or fine_tuned_price(model) or fine_tuned_price(self.local.base_model)
        )
        return ProviderConfig(
            provider=ProviderKind.openai,
            model=model,
            api_key_env=self.local.api_key_env,
            api_key_file=self.local.api_key_file,
            base_url=self.base_url,
            price=price,
            timeout_s=self.local.timeout_s,
            max_retries=self.local.max_retries,
            max_output_tokens=self.local.max_new_tokens,
        )

    async def _check_model(self, provider: ProviderConfig, model: str) -> None:
        """``GET /models/{model}``: the fine-tune exists and this key may use it."""
        try:
            key = resolve_api_key(provider, self._env, default_env=KEY_ENV)
        except teacher_errors.TeacherConfigError as exc:
            raise VersionLoadError(f"openai student: {exc}") from None
        headers = {} if key is None else {"Authorization": f"Bearer {key.reveal()}"}
        try:
            async with httpx.AsyncClient(
                transport=self._transport, timeout=self.local.timeout_s
            ) as client:
                response = await client.get(f"{self.base_url}/models/{model}", headers=headers)
        except httpx.HTTPError as exc:
            raise VersionLoadError(
                f"openai student: {self.base_url} is unreachable ({type(exc).__name__}); "
                "check the network or local.base_url"
            ) from None
        if response.status_code == 401:
            raise VersionLoadError(
                "openai student: the API key was refused (401); set local.api_key_env to the "
                "variable holding a key of the organisation that owns the fine-tune"
            )
        if response.status_code == 404:
            raise VersionLoadError(
                f"openai student: OpenAI has no model {model!r} (404); it was deleted or "
                "belongs to another organisation: retrain, or register an existing ft: model"
            )
        if response.status_code != 200:
            raise VersionLoadError(
                f"openai student: GET /models/{model} answered {response.status_code}"
            )

    async def load_version(self, version: VersionRef) -> None:
        model = await asyncio.to_thread(ft_model, version.path)
        if version.name not in self._models or self._models[version.name][0] != model:
            provider = self.provider(model)
            await self._check_model(provider, model)
            try:
                teacher = teachers.build_teacher(provider, env=self._env)
            except teacher_errors.TeacherError as exc:
                raise VersionLoadError(f"openai student: {exc}") from None
            old = self._models.pop(version.name, None)
            if old is not None:
                await old[1].aclose()
            self._models[version.name] = (model, teacher)
        self._active = version.name

    async def generate(self, task: TaskConfig, task_input: dict[str, Any]) -> StudentAnswer:
        version = self._active
        if version is None:
            raise NoStudent()
        model, teacher = self._models[version]
        started = time.perf_counter()
        try:
            answer = await teacher.generate(task, task_input)
        except teacher_errors.InvalidOutput as exc:  # billed all the same: keep its cost
            latency = time.perf_counter() - started
            return StudentAnswer(
                None, "", version, latency, f"schema-invalid output: {exc}", cost=exc.cost or 0.0
            )
        except teacher_errors.TeacherError as exc:  # the cause carries what it billed
            raise StudentUnavailable(f"openai student {model}: {exc}") from exc
        return StudentAnswer(
            answer.output,
            prompts.canonical_json(answer.output),
            version,
            time.perf_counter() - started,
            None,
            cost=answer.cost,
            usage=answer.usage,
        )

    def estimate_cost(self, task: TaskConfig, task_input: dict[str, Any]) -> float:
        """Worst-case USD of :meth:`generate` (the gateway reserves it before the call)."""
        if self._active is None:
            return 0.0
        return self._models[self._active][1].estimate_cost(task, task_input)

    async def health(self) -> Health:
        if self._active is None:
            return Health(True, "openai student: no fine-tuned version loaded yet")
        return Health(True, f"openai student: {self._models[self._active][0]}")

    async def unload_version(self, name: str) -> None:
        entry = self._models.pop(name, None)
        if entry is not None:
            await entry[1].aclose()
        if self._active == name:
            self._active = None

    def active_version(self) -> str | None:
        return self._active

    async def aclose(self) -> None:
        for _, teacher in self._models.values():
            await teacher.aclose()
        self._models.clear()
