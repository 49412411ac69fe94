"""Cross-field rules as CEL ``x-kubernetes-validations``, each with its Python twin.

The API server cannot run pydantic validators, so each cross-field rule of the config
models is restated here in CEL and attached to the generated schema of the model it
belongs to (keyed by the model's class name, the name of its ``$defs`` entry). The
Python twin restates the same rule over the camelCase object *after* schema defaults
are applied (as the API server does before it runs CEL); tests hold the twins, the
pydantic validators and the examples in agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from apprentice.config.settings import VLLM_LORA_RANKS
from apprentice.kube.models import MAX_TASK_NAME

__all__ = ["ROOT_RULES", "RULES", "CelRule", "name_problem", "rules_for"]

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class CelRule:
    """One CEL rule, its message and an equivalent Python predicate over ``self``."""

    rule: str
    message: str
    check: Callable[[Obj], bool]

    def schema(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


def _le(small: str, big: str) -> CelRule:
    return CelRule(
        rule=f"!has(self.{small}) || !has(self.{big}) || self.{small} <= self.{big}",
        message=f"{small} must not exceed {big}",
        check=lambda s: s.get(small) is None or s.get(big) is None or s[small] <= s[big],
    )


_REPLICAS = "!has(self.gateway) || !has(self.gateway.replicas) || self.gateway.replicas <= 1"


def _one_replica(s: Obj) -> bool:
    return bool(s.get("gateway", {}).get("replicas", 1) <= 1)


def _name(s: Obj) -> str:
    return str(s.get("metadata", {}).get("name", ""))


#: Rules on a whole object (the schema root, where CEL may read ``self.metadata.name``),
#: keyed by kind: a DistilledTask's name prefixes every child's name.
ROOT_RULES: dict[str, list[CelRule]] = {
    "DistilledTask": [
        CelRule(
            f"size(self.metadata.name) <= {MAX_TASK_NAME}",
            f"metadata.name must be at most {MAX_TASK_NAME} characters: children are named"
            " <name>-gateway-config and <name>-v<N>-train, which must fit in 63",
            lambda s: len(_name(s)) <= MAX_TASK_NAME,
        ),
        CelRule(
            "self.metadata.name.matches('^[a-z]')",
            "metadata.name must start with a lowercase letter: it names the task's Service"
            " <name>-gateway (a DNS-1035 label)",
            lambda s: _name(s)[:1].isalpha() and _name(s)[:1].islower(),
        ),
    ],
}

_OPENAI_STUDENT = "has(self.student.backend) && self.student.backend == 'openai'"
_OPENAI_TUNE = (
    "has(self.training) && has(self.training.fineTuneBackend)"
    " && self.training.fineTuneBackend == 'openai'"
)
#: The student's effective backend is vllm: named, or the gpu profile's default.
_VLLM = (
    "has(self.student.backend) ? self.student.backend == 'vllm'"
    " : (has(self.student.profile) ? self.student.profile : 'gpu') == 'gpu'"
)


def _backend(s: Obj) -> str:
    student = s.get("student", {})
    default = "vllm" if student.get("profile", "gpu") == "gpu" else "transformers"
    return str(student.get("backend", default))


def _openai_pair(s: Obj) -> bool:
    student = _backend(s) == "openai"
    tune = s.get("training", {}).get("fineTuneBackend") == "openai"
    return student == tune and (not student or "apiKeySecretRef" in s.get("student", {}))


_BUDGET = [_le("daily", "weekly"), _le("weekly", "monthly"), _le("daily", "monthly")]

RULES: dict[str, list[CelRule]] = {
    "ConfidenceThresholds": [
        CelRule(
            "self.emergencyThreshold < self.coachingTrigger",
            "emergencyThreshold must be below coachingTrigger",
            lambda s: s["emergencyThreshold"] < s["coachingTrigger"],
        ),
        CelRule(
            "self.coachingTrigger < self.phase2ToPhase3",
            "coachingTrigger must be below phase2ToPhase3",
            lambda s: s["coachingTrigger"] < s["phase2ToPhase3"],
        ),
    ],
    "BudgetCaps": _BUDGET,
    "BudgetConfig": _BUDGET,
    "ProviderConfig": [
        CelRule(
            "!has(self.apiKeyEnv) || !has(self.apiKeyFile)",
            "set either apiKeyEnv or apiKeyFile, not both",
            lambda s: s.get("apiKeyEnv") is None or s.get("apiKeyFile") is None,
        ),
        CelRule(
            "self.provider != 'replay' || has(self.path)",
            "the replay teacher needs path",
            lambda s: s["provider"] != "replay" or s.get("path") is not None,
        ),
        CelRule(
            "self.provider == 'replay' || has(self.model)",
            "this provider needs a model name",
            lambda s: s["provider"] == "replay" or s.get("model") is not None,
        ),
    ],
    "TeacherSpec": [
        CelRule(
            "self.provider in ['replay', 'openai_compatible'] || has(self.secretRef)",
            "this provider needs secretRef: {name, key} holding the API key",
            lambda s: s["provider"] in ("replay", "openai_compatible") or "secretRef" in s,
        ),
        CelRule(
            "self.provider != 'replay' || has(self.replayFrom)",
            "the replay teacher needs replayFrom: {name, key} (a ConfigMap with answers JSONL)",
            lambda s: s["provider"] != "replay" or "replayFrom" in s,
        ),
        CelRule(
            "self.provider == 'replay' || has(self.model)",
            "this provider needs a model name",
            lambda s: s["provider"] == "replay" or s.get("model") is not None,
        ),
        CelRule(
            "self.provider != 'openai_compatible' || has(self.baseUrl)",
            "openai_compatible needs baseUrl",
            lambda s: s["provider"] != "openai_compatible" or s.get("baseUrl") is not None,
        ),
    ],
    "StudentSpec": [
        CelRule(
            "!has(self.backend) || !(self.backend in ['ollama', 'llama_cpp']) || has(self.baseUrl)",
            "backend ollama and llama_cpp need baseUrl (the operator runs no such server)",
            lambda s: s.get("backend") not in ("ollama", "llama_cpp") or "baseUrl" in s,
        ),
        CelRule(
            "!has(self.backend) || self.backend != 'vllm' || has(self.baseUrl)"
            " || (has(self.profile) ? self.profile : 'gpu') == 'gpu'",
            "backend vllm on profile cpu needs baseUrl (the operator runs vLLM on a GPU node only)",
            lambda s: (
                s.get("backend") != "vllm" or "baseUrl" in s or s.get("profile", "gpu") == "gpu"
            ),
        ),
    ],
    "DistilledTaskSpec": [
        CelRule(
            f"({_OPENAI_STUDENT}) == ({_OPENAI_TUNE})"
            " && (!(" + _OPENAI_STUDENT + ") || has(self.student.apiKeySecretRef))",
            "student.backend openai goes with training.fineTuneBackend openai (an OpenAI"
            " fine-tune is served by OpenAI only) and student.apiKeySecretRef",
            lambda s: _openai_pair(s),
        ),
        CelRule(
            f"!({_VLLM}) || !has(self.training) || !has(self.training.hyperparameters)"
            " || !has(self.training.hyperparameters.loraRank)"
            f" || self.training.hyperparameters.loraRank in {list(VLLM_LORA_RANKS)}",
            f"vLLM serves LoRA ranks {'/'.join(map(str, VLLM_LORA_RANKS))} only:"
            " set training.hyperparameters.loraRank to one of them",
            lambda s: (
                _backend(s) != "vllm"
                or s.get("training", {}).get("hyperparameters", {}).get("loraRank", 16)
                in VLLM_LORA_RANKS
            ),
        ),
        CelRule(
            f"{_REPLICAS} || (has(self.storage) && has(self.storage.postgres))",
            "gateway.replicas > 1 needs storage.postgres (SQLite has one writer)",
            lambda s: _one_replica(s) or "postgres" in s.get("storage", {}),
        ),
        CelRule(
            f"{_REPLICAS} || (has(self.storage) && has(self.storage.accessMode)"
            " && self.storage.accessMode == 'ReadWriteMany')",
            "gateway.replicas > 1 needs storage.accessMode ReadWriteMany (every replica mounts"
            " the task's volume, maybe on another node)",
            lambda s: _one_replica(s) or s.get("storage", {}).get("accessMode") == "ReadWriteMany",
        ),
        CelRule(
            "!has(self.training) || !has(self.training.hyperparameters)"
            " || !has(self.training.hyperparameters.loraRank) || !has(self.student.maxLoraRank)"
            " || self.training.hyperparameters.loraRank <= self.student.maxLoraRank",
            "training.hyperparameters.loraRank must not exceed student.maxLoraRank",
            lambda s: (
                s.get("training", {}).get("hyperparameters", {}).get("loraRank", 16)
                <= s["student"].get("maxLoraRank", 64)
            ),
        ),
        CelRule(
            "!has(self.fineTuneBatchSize) || !has(self.training)"
            " || !has(self.training.fineTuneBatchSize)",
            "set training.fineTuneBatchSize only, not both",
            lambda s: (
                "fineTuneBatchSize" not in s or "fineTuneBatchSize" not in s.get("training", {})
            ),
        ),
        CelRule(
            "!has(self.evaluator) || self.evaluator != 'structured_match'"
            " || (has(self.matchFields) && size(self.matchFields) > 0)",
            "structured_match needs matchFields",
            lambda s: s.get("evaluator") != "structured_match" or bool(s.get("matchFields")),
        ),
        CelRule(
            "!has(self.evaluator) || self.evaluator != 'custom'"
            " || (has(self.evaluatorOptions) && has(self.evaluatorOptions.function))",
            "custom needs evaluatorOptions.function: 'module:function'",
            lambda s: (
                s.get("evaluator") != "custom"
                or s.get("evaluatorOptions", {}).get("function") is not None
            ),
        ),
    ],
}

#: Transition rules on single fields (``oldSelf``): the task name keys the gateway's store.
IMMUTABLE_FIELDS: dict[str, list[str]] = {
    "DistilledTaskSpec": ["name"],
    "TrainingJobSpec": ["taskRef", "version"],
    "ModelVersionSpec": ["taskRef", "version", "path"],
}


def rules_for(model_name: str) -> list[CelRule]:
    """The CEL rules of one model (empty when it has none)."""
    return RULES.get(model_name, [])


def name_problem(kind: str, name: str) -> str | None:
    """The message of the first root rule ``name`` breaks (the operator's own check)."""
    obj = {"metadata": {"name": name}}
    return next((r.message for r in ROOT_RULES.get(kind, []) if not r.check(obj)), None)
