"""The CRDs on a real API server: examples apply, defaults, every CEL rule, immutability.

The rules are read from the committed CRD files, so a rule added to the models without a
case here fails :func:`test_every_cel_rule_has_a_case` rather than going unchecked.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from cluster_support import CRDS, EXAMPLES, Cluster, example_task

from apprentice.config import StudentBackend
from apprentice.kube import models, task_status

NS = "crd-tests"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def ns(crds: Cluster) -> Iterator[str]:
    yield crds.create_namespace(NS)
    crds.kubectl("delete", "namespace", NS, "--wait=false")


def _rules(kind: str) -> list[tuple[str, str]]:
    """(schema path, message) of every x-kubernetes-validations rule in a committed CRD."""
    crd = yaml.safe_load((CRDS / f"{kind}.yaml").read_text())
    found: list[tuple[str, str]] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for rule in node.get("x-kubernetes-validations", []):
                found.append((path, rule["message"]))
            for key, value in node.get("properties", {}).items():
                walk(value, f"{path}.{key}" if path else key)
            if "items" in node:
                walk(node["items"], f"{path}[]")

    walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "")
    return found


# --- a violating change per rule ----------------------------------------------------------


def _set(dotted: str, value: Any) -> Callable[[Obj], None]:
    def change(body: Obj) -> None:
        node = body
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value

    return change


def _all(*changes: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def change(body: Obj) -> None:
        for c in changes:
            c(body)

    return change


_JUDGE = "spec.evaluatorOptions.judges"
#: (schema path, message) -> a change to the classify-ticket example that breaks that rule.
CASES: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "metadata.name must be at most"): _set("metadata.name", "a" * 49),
    ("", "start with a lowercase letter"): _set("metadata.name", "1st-task"),
    ("spec", "gateway.replicas > 1 needs storage.postgres"): _all(
        _set("spec.gateway", {"replicas": 2}), _set("spec.storage.accessMode", "ReadWriteMany")
    ),
    ("spec", "gateway.replicas > 1 needs storage.accessMode ReadWriteMany"): _all(
        _set("spec.gateway", {"replicas": 2}),
        _set("spec.storage.postgres", {"dsnSecretRef": {"name": "db", "key": "dsn"}}),
    ),
    ("spec", "loraRank must not exceed"): _set("spec.training.hyperparameters.loraRank", 128),
    ("spec", "set training.fineTuneBatchSize only"): _set("spec.fineTuneBatchSize", 10),
    ("spec", "structured_match needs matchFields"): _set("spec.matchFields", []),
    ("spec", "custom needs evaluatorOptions.function"): _all(
        _set("spec.evaluator", "custom"), _set("spec.matchFields", None)
    ),
    ("spec.evaluatorOptions.judges[]", "set either apiKeyEnv or apiKeyFile"): _set(
        _JUDGE, [{"provider": "anthropic", "model": "m", "apiKeyEnv": "K", "apiKeyFile": "/k"}]
    ),
    ("spec.evaluatorOptions.judges[]", "the replay teacher needs path"): _set(
        _JUDGE, [{"provider": "replay"}]
    ),
    ("spec.evaluatorOptions.judges[]", "this provider needs a model name"): _set(
        _JUDGE, [{"provider": "anthropic"}]
    ),
    ("spec.confidenceThresholds", "emergencyThreshold must be below"): _set(
        "spec.confidenceThresholds.emergencyThreshold", 0.75
    ),
    ("spec.confidenceThresholds", "coachingTrigger must be below"): _set(
        "spec.confidenceThresholds.coachingTrigger", 0.9
    ),
    ("spec.budget", "daily must not exceed weekly"): _set("spec.budget.daily", 20.0),
    ("spec.budget", "weekly must not exceed monthly"): _set("spec.budget.weekly", 40.0),
    ("spec.budget", "daily must not exceed monthly"): _set(
        "spec.budget", {"daily": 40.0, "monthly": 30.0}
    ),
    ("spec.teacher", "needs secretRef"): _set("spec.teacher.secretRef", None),
    ("spec.teacher", "the replay teacher needs replayFrom"): _set(
        "spec.teacher", {"provider": "replay"}
    ),
    ("spec.teacher", "this provider needs a model name"): _set("spec.teacher.model", None),
    ("spec.teacher", "openai_compatible needs baseUrl"): _set(
        "spec.teacher", {"provider": "openai_compatible", "model": "m"}
    ),
    ("spec.student", "backend ollama and llama_cpp need baseUrl"): _set(
        "spec.student.backend", "ollama"
    ),
    ("spec.student", "backend vllm on profile cpu needs baseUrl"): _set(
        "spec.student", {"profile": "cpu", "backend": "vllm", "baseModel": "m"}
    ),
    ("spec", "student.backend openai goes with training.fineTuneBackend openai"): _set(
        "spec.training.fineTuneBackend", "openai"
    ),
    ("spec", "vLLM serves LoRA ranks"): _set("spec.training.hyperparameters.loraRank", 24),
}


def _case_for(path: str, message: str) -> tuple[str, str] | None:
    for key in CASES:
        if key[0] == path and key[1] in message:
            return key
    return None


def _transition_rules() -> set[tuple[str, str]]:
    return {(p, m) for p, m in _rules("distilledtasks") if m.endswith("is immutable")}


def test_every_cel_rule_has_a_case() -> None:
    rules = set(_rules("distilledtasks")) - _transition_rules()
    missing = [r for r in rules if _case_for(*r) is None]
    assert not missing, f"CEL rules with no violating case in CASES: {missing}"
    assert len(rules) >= 20


def _base(name: str) -> Obj:
    body = copy.deepcopy(example_task())
    body["metadata"] = {"name": name, "namespace": NS}
    return body


@pytest.mark.parametrize(
    ("path", "message"),
    sorted(set(_rules("distilledtasks")) - _transition_rules()),
    ids=lambda v: str(v)[:40],
)
def test_server_rejects_each_cel_violation_with_its_message(
    crds: Cluster, ns: str, path: str, message: str
) -> None:
    key = _case_for(path, message)
    assert key is not None, f"no case for {path}: {message}"
    good = _base("cel-probe")
    out = crds.try_kubectl("create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(good))
    assert out.returncode == 0, f"the unbroken example is rejected: {out.stderr}"
    bad = _base("cel-probe")
    CASES[key](bad)
    out = crds.try_kubectl("create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(bad))
    assert out.returncode != 0, f"the server accepted a spec that breaks {message!r}"
    assert message in out.stderr, out.stderr
    field = path.replace("[]", "[0]")
    assert field in out.stderr, out.stderr


_MODEL = "meta-llama/Llama-3.2-1B-Instruct"
#: A student of each backend of the config (tests/kube/test_student_backends.py builds
#: their pods and gateway configs), including combinations no profile defaults to.
STUDENTS: dict[StudentBackend, Obj] = {
    StudentBackend.vllm: {"profile": "gpu", "backend": "vllm", "baseModel": _MODEL},
    StudentBackend.transformers: {"profile": "gpu", "backend": "transformers", "baseModel": _MODEL},
    StudentBackend.ollama: {"backend": "ollama", "baseModel": _MODEL, "baseUrl": "http://o:11434"},
    StudentBackend.llama_cpp: {"backend": "llama_cpp", "baseModel": _MODEL, "baseUrl": "http://l"},
    StudentBackend.openai: {
        "profile": "cpu",
        "backend": "openai",
        "baseModel": "gpt-4o-mini-2024-07-18",
        "apiKeySecretRef": {"name": "openai", "key": "api-key"},
    },
}


@pytest.mark.parametrize("backend", list(StudentBackend), ids=lambda b: b.value)
def test_server_accepts_a_task_naming_any_student_backend(
    crds: Cluster, ns: str, backend: StudentBackend
) -> None:
    """Every backend of the config, including those no profile defaults to (issue 12)."""
    assert set(STUDENTS) == set(StudentBackend), "a backend of the config without a case"
    body = _base(f"backend-{backend.value.replace('_', '-')}")
    body["spec"]["student"] = STUDENTS[backend]
    if backend is StudentBackend.openai:
        body["spec"]["training"]["fineTuneBackend"] = "openai"
    models.DistilledTaskSpec.model_validate(body["spec"])  # the operator accepts it too
    out = crds.try_kubectl("create", "--dry-run=server", "-f", "-", stdin=yaml.safe_dump(body))
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_manifest_applies(crds: Cluster, ns: str, path: Any) -> None:
    out = crds.kubectl("apply", "-n", ns, "-f", str(path))
    assert "created" in out or "configured" in out or "unchanged" in out, out
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            assert crds.get(doc["kind"], doc["metadata"]["name"], ns) is not None


MINIMAL: Obj = {
    "apiVersion": "apprentice.dev/v1alpha1",
    "kind": "DistilledTask",
    "metadata": {"name": "minimal", "namespace": NS},
    "spec": {
        "name": "minimal_task",
        "teacher": {
            "provider": "anthropic",
            "model": "claude-sonnet-4-5-20250929",
            "secretRef": {"name": "anthropic", "key": "api-key"},
        },
        "student": {"baseModel": "meta-llama/Llama-3.2-1B-Instruct"},
    },
}


def _scalars(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in ("inputSchema", "outputSchema"):  # free-form, normalised by pydantic
                yield from _scalars(value, f"{path}.{key}" if path else key)
    elif isinstance(node, str | int | float | bool):
        yield path, node


def test_minimal_task_is_accepted_and_the_server_fills_the_models_defaults(
    crds: Cluster, ns: str
) -> None:
    crds.kubectl("create", "-f", "-", stdin=yaml.safe_dump(MINIMAL))
    stored = crds.get("distilledtask", "minimal", ns)
    assert stored is not None
    spec = stored["spec"]
    # The defaults the issue found lost in the generated schema, named one by one:
    assert spec["evaluator"] == "exact_match"
    assert spec["student"]["profile"] == "gpu"
    assert spec["training"]["fineTuneBackend"] == "huggingface"
    assert spec["evaluatorOptions"]["judgeMode"] == "single"
    # ... and every scalar default pydantic applies is one the server applied too.
    expected = models.DistilledTaskSpec.model_validate(MINIMAL["spec"]).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    served = dict(_scalars(spec))
    differ = {p: (v, served.get(p)) for p, v in _scalars(expected) if served.get(p) != v}
    assert not differ, f"pydantic default vs server default: {differ}"


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("distilledtask", "name", "renamed_task"),
        ("trainingjob", "taskRef", "other-task"),
        ("trainingjob", "version", "v9"),
        ("modelversion", "taskRef", "other-task"),
        ("modelversion", "version", "v9"),
        ("modelversion", "path", "/data/models/v9"),
    ],
)
def test_immutable_fields_stay_immutable(
    crds: Cluster, ns: str, kind: str, field: str, value: str
) -> None:
    name = f"immutable-{kind}-{field.lower()}"
    body: Obj
    if kind == "distilledtask":
        body = _base(name)
    else:
        spec: Obj = {"taskRef": "classify-ticket", "task": "classify_ticket", "version": "v1"}
        if kind == "modelversion":
            spec["path"] = "/data/models/v1"
        kinds = {"trainingjob": "TrainingJob", "modelversion": "ModelVersion"}
        body = {
            "apiVersion": "apprentice.dev/v1alpha1",
            "kind": kinds[kind],
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    crds.kubectl("create", "-f", "-", stdin=yaml.safe_dump(body))
    patch = yaml.safe_dump({"spec": {field: value}})
    out = crds.try_kubectl("patch", kind, name, "-n", ns, "--type=merge", "-p", patch)
    assert out.returncode != 0, f"{kind}.spec.{field} changed"
    assert f"{field} is immutable" in out.stderr, out.stderr
    stored = crds.get(kind, name, ns)
    assert stored is not None and stored["spec"][field] == body["spec"][field]


def test_a_running_canary_in_the_status_is_kept_shown_and_cleared_by_the_server(
    crds: Cluster, ns: str
) -> None:
    """The operator's own status (task_status from a gateway state with a canary) goes
    through the status subresource unpruned, ``kubectl get`` shows the candidate, and the
    merge patch the operator sends once the canary ended removes it."""
    crds.kubectl("create", "-f", "-", stdin=yaml.safe_dump(_base("canary-status")))
    live = {
        "version": "v2", "active_version": "v1", "mode": "shadow", "share": 0.25,
        "margin": -0.02, "started_at": "2026-01-01T00:00:00.5+00:00",
        "candidate": {"comparisons": 40, "agreement": 0.925},
        "active": {"comparisons": 120, "agreement": 0.9}, "reason": "undecided",
    }  # fmt: skip
    now = dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC)
    kwargs: Obj = {"generation": 1, "now": now, "endpoint": "http://x:8080"}
    state: Obj = {"phase": "steady_state", "phase_number": 3, "active_version": "v1"}
    running = task_status.task_status({}, state={**state, "canary": live}, **kwargs)

    def patch(status: Obj) -> Obj:
        body = json.dumps({"status": status})
        crds.kubectl("patch", "distilledtask", "canary-status", "-n", ns, "--subresource=status",
                     "--type=merge", "-p", body)  # fmt: skip
        stored = crds.get("distilledtask", "canary-status", ns)
        assert stored is not None
        return dict(stored["status"])

    stored = patch(running)
    assert stored["canary"] == running["canary"]  # nothing pruned or defaulted away
    assert stored["canary"]["candidate"] == {"comparisons": 40, "agreement": 0.925}
    canary = next(c for c in stored["conditions"] if c["type"] == "Canary")
    assert (canary["status"], canary["reason"]) == ("True", "CanaryRunning")
    table = crds.kubectl("get", "distilledtask", "canary-status", "-n", ns)
    header, row = table.splitlines()[:2]
    assert "CANARY" in header.split() and "v2" in row.split()
    ended = task_status.task_status(stored, state=state, **kwargs)
    stored = patch(task_status.status_patch(stored, ended))
    assert "canary" not in stored
    canary = next(c for c in stored["conditions"] if c["type"] == "Canary")
    assert (canary["status"], canary["reason"]) == ("False", "CanaryEnded")
