"""The CRD schema and pydantic agree on defaults, and admission checks names and topology.

The API server fills a custom resource's defaults from the structural schema before it
runs CEL; the gateway fills them from pydantic. Both must build the same object, or a
spec the cluster accepted means something else inside the pod (issue 8, item 2).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from apprentice.kube import cel, crd_validation, crds, models
from apprentice.kube.objects import Names

CRDS = crds.all_crds()

# Only the required fields. The schemas are given in their normalised JSON Schema form:
# pydantic rewrites the ``{"field": "type"}`` shorthand, which is normalisation, not a default.
MINIMAL: dict[str, Any] = {
    "name": "t",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
        "additionalProperties": False,
    },
    "outputSchema": {
        "type": "object",
        "properties": {"label": {"type": "string"}},
        "required": ["label"],
        "additionalProperties": False,
    },
    "teacher": {"provider": "anthropic", "model": "m", "secretRef": {"name": "a", "key": "k"}},
    "student": {"baseModel": "b"},
}


def _schema(kind: str, part: str = "spec") -> dict[str, Any]:
    root = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(root["properties"][part])


def _body(spec: dict[str, Any], name: str = "classify-ticket") -> dict[str, Any]:
    return {
        "apiVersion": "apprentice.dev/v1alpha1",
        "kind": "DistilledTask",
        "metadata": {"name": name, "namespace": "ns1"},
        "spec": spec,
    }


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"student": {"baseModel": "b", "profile": "cpu"}},
        {"teacher": {"provider": "replay", "replayFrom": {"name": "a", "key": "k"}}},
        {"training": {"hyperparameters": {"epochs": 2}}, "gateway": {"port": 9090}},
    ],
    ids=["minimal", "cpu", "replay", "nested"],
)
def test_schema_defaults_equal_pydantic_defaults(changes: dict[str, Any]) -> None:
    spec = {**copy.deepcopy(MINIMAL), **changes}
    server = crd_validation.apply_defaults(_schema("DistilledTask"), spec)
    model = models.DistilledTaskSpec.model_validate(spec)
    assert server == model.model_dump(by_alias=True, mode="json", exclude_none=True)
    # And the defaulted object is accepted, by the schema and CEL as by pydantic.
    assert crd_validation.validate(CRDS["DistilledTask"], _body(spec)) == []
    assert models.DistilledTaskSpec.model_validate(server) == model


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_default_is_valid_as_written(kind: str) -> None:
    """The API server rejects a CRD whose default breaks its own schema or a CEL rule."""
    root = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert crd_validation.check_defaults(root) == []
    # It would have caught the first attempt: ``confidenceThresholds: {default: {}}``.
    thresholds = copy.deepcopy(_schema("DistilledTask")["properties"]["confidenceThresholds"])
    thresholds["default"] = {}
    assert any("no such key" in e for e in crd_validation.check_defaults(thresholds))


def test_the_defaults_issue_8_lost_are_in_the_schema() -> None:
    server = crd_validation.apply_defaults(_schema("DistilledTask"), copy.deepcopy(MINIMAL))
    assert server["evaluator"] == "exact_match"
    assert server["student"]["profile"] == "gpu"
    assert server["training"]["fineTuneBackend"] == "huggingface"
    assert server["evaluatorOptions"]["judgeMode"] == "single"
    assert server["storage"]["accessMode"] == "ReadWriteOnce"


@pytest.mark.parametrize(
    ("kind", "model", "spec"),
    [
        (
            "TrainingJob",
            models.TrainingJobSpec,
            {"taskRef": "t", "task": "t", "version": "v1"},
        ),
        (
            "ModelVersion",
            models.ModelVersionSpec,
            {"taskRef": "t", "task": "t", "version": "v1", "path": "/p"},
        ),
    ],
)
def test_tj_and_mv_defaults_equal_pydantic(kind: str, model: Any, spec: dict[str, Any]) -> None:
    server = crd_validation.apply_defaults(_schema(kind), spec)
    assert server == model.model_validate(spec).model_dump(
        by_alias=True, mode="json", exclude_none=True
    )


def test_cel_rules_without_has_guards_would_not_read_optional_fields() -> None:
    """Every rule that reads an optional field of self guards it with has()."""
    no_evaluator = {k: v for k, v in MINIMAL.items() if k != "evaluator"}
    for rule in cel.rules_for("DistilledTaskSpec"):
        # The twin over the *undefaulted* object must not raise (CEL would: no such key).
        assert rule.check(no_evaluator) in (True, False)
        assert "self.evaluator" not in rule.rule or "has(self.evaluator)" in rule.rule


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * (models.MAX_TASK_NAME + 1), "at most 48 characters"),
        ("1-classify", "must start with a lowercase letter"),
    ],
)
def test_task_names_that_break_children_are_rejected_at_admission(name: str, message: str) -> None:
    errors = crd_validation.validate(CRDS["DistilledTask"], _body(copy.deepcopy(MINIMAL), name))
    assert len(errors) == 1 and message in errors[0], errors
    assert cel.name_problem("DistilledTask", name) == errors[0].split(": ", 1)[1]


def test_the_longest_accepted_name_gives_children_within_63_characters() -> None:
    name = "a" * models.MAX_TASK_NAME
    assert crd_validation.validate(CRDS["DistilledTask"], _body(copy.deepcopy(MINIMAL), name)) == []
    names = Names(name)
    children = [names.config_map, names.pvc, names.deployment, names.service, names.admin_secret]
    children += [f"{name}-v9999", f"{name}-v9999-train"]
    assert max(len(c) for c in children) <= 63


def test_gateway_replicas_over_one_need_a_read_write_many_volume() -> None:
    spec = copy.deepcopy(MINIMAL)
    spec["gateway"] = {"replicas": 2}
    spec["storage"] = {"postgres": {"dsnSecretRef": {"name": "pg", "key": "dsn"}}}
    errors = crd_validation.validate(CRDS["DistilledTask"], _body(spec))
    assert errors == [
        ".spec: gateway.replicas > 1 needs storage.accessMode ReadWriteMany (every replica"
        " mounts the task's volume, maybe on another node)"
    ]
    with pytest.raises(ValidationError, match="ReadWriteMany"):
        models.DistilledTaskSpec.model_validate(spec)
    spec["storage"]["accessMode"] = "ReadWriteMany"
    assert crd_validation.validate(CRDS["DistilledTask"], _body(spec)) == []
    models.DistilledTaskSpec.model_validate(spec)
