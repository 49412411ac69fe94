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

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from apprentice.config.base import (
    DecayFunction,
    EvaluatorKind,
    FineTuneBackend,
    JudgeMode,
    Model,
    ProviderKind,
    StudentBackend,
)
from apprentice.config.errors import ConfigError, ConfigIssue, RuleError, issues_from
from apprentice.config.providers import (
    Price,
    ProviderConfig,
    ProviderEndpoint,
    RateLimits,
    RemoteConfig,
)
from apprentice.config.settings import (
    AlertsConfig,
    BudgetCaps,
    BudgetConfig,
    DriftConfig,
    EventLoopChoice,
    GatewayConfig,
    LocalConfig,
    SamplingConfig,
    SamplingOverride,
    StoreConfig,
    TelemetryConfig,
    TracesConfig,
    TrainingConfig,
)
from apprentice.config.tasks import (
    CanaryConfig,
    CanaryMode,
    ConfidenceThresholds,
    EvaluatorOptions,
    TaskConfig,
)

__all__ = [
    "AlertsConfig",
    "ApprenticeConfig",
    "BudgetCaps",
    "BudgetConfig",
    "CanaryConfig",
    "CanaryMode",
    "ConfidenceThresholds",
    "ConfigError",
    "ConfigIssue",
    "DecayFunction",
    "DriftConfig",
    "EvaluatorKind",
    "EvaluatorOptions",
    "EventLoopChoice",
    "FineTuneBackend",
    "GatewayConfig",
    "JudgeMode",
    "LocalConfig",
    "Model",
    "Price",
    "ProviderConfig",
    "ProviderEndpoint",
    "ProviderKind",
    "RateLimits",
    "RemoteConfig",
    "RuleError",
    "SamplingConfig",
    "SamplingOverride",
    "StoreConfig",
    "StudentBackend",
    "TaskConfig",
    "TelemetryConfig",
    "TracesConfig",
    "TrainingConfig",
    "expand_env",
    "load",
    "loads",
]


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
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)

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
