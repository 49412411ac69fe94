"""The generated CRDs: in sync with the models, structural, valid, and printing columns."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from apprentice.kube import cel, crd_validation, crds, models

ROOT = Path(__file__).resolve().parents[2]
_AT = {"lastTransitionTime": "2026-01-01T00:00:00Z"}
CRDS = crds.all_crds()


def test_committed_crds_and_chart_copies_match_the_models() -> None:
    assert crds.check(ROOT) == [], "run: python -m apprentice.kube.crds --write"


def test_check_reports_a_drifted_file(tmp_path: Path) -> None:
    crds.write(tmp_path)
    assert crds.check(tmp_path) == []
    target = tmp_path / "charts" / "apprentice" / "templates" / "crds" / "modelversions.yaml"
    target.write_text(target.read_text() + "# edited by hand\n")
    assert crds.check(tmp_path) == [target]
    assert crds.main(["--check", "--root", str(tmp_path)]) == 1


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_is_a_valid_apiextensions_v1_object(kind: str) -> None:
    kubernetes_validate.validate(CRDS[kind], "1.33.0", strict=True)
    spec = CRDS[kind]["spec"]
    assert spec["names"]["categories"] == ["apprentice"]
    assert spec["versions"][0]["subresources"] == {"status": {}}


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_schema_is_structural(kind: str) -> None:
    schema = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert not {"$ref", "$defs", "anyOf", "oneOf", "allOf", "title", "const"} & node.keys(), (
            path
        )
        if path.endswith((".properties", "x-kubernetes-validations")) or "rule" in node:
            continue
        if re.search(r"\.default(\.|\[|$)", path):  # a default is a value, not a schema
            continue
        typed = (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{kind}{path} has no type"
        if node.get("type") == "object" and "properties" in node:
            assert "additionalProperties" not in node, path


def test_free_form_fields_only_where_schemas_are_free_form() -> None:
    schema = CRDS["DistilledTask"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    free = sorted(p for p, n in _walk(schema) if n.get("x-kubernetes-preserve-unknown-fields"))
    assert free == [
        ".properties.spec.properties.examples.items",
        ".properties.spec.properties.inputSchema",
        ".properties.spec.properties.outputSchema",
    ]


def test_enums_ranges_and_required_fields_are_carried_over() -> None:
    spec = CRDS["DistilledTask"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    props = spec["properties"]
    assert spec["required"] == ["name", "teacher", "student"]
    assert props["evaluator"]["enum"] == [
        "exact_match",
        "structured_match",
        "semantic_similarity",
        "llm_judge",
        "custom",
    ]
    thresholds = props["confidenceThresholds"]["properties"]
    assert thresholds["phase2ToPhase3"] == {
        "description": "Graduation bound.",
        "minimum": 0,
        "exclusiveMinimum": True,
        "maximum": 1,
        "type": "number",
        "default": 0.85,
    }
    assert props["student"]["properties"]["profile"]["enum"] == ["gpu", "cpu"]
    assert props["name"]["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "name is immutable"}
    ]


# -- printer columns: render their JSONPaths over a sample status, as kubectl does ------

_FILTER = re.compile(r'^\[\?\(@\.(\w+)=="([^"]*)"\)\]$')


def jsonpath(obj: Any, path: str) -> Any:
    """kubectl's printer-column subset: .a.b and [?(@.key=="value")] filters."""
    tokens = re.findall(r'\.\w+|\[\?\(@\.\w+=="[^"]*"\)\]', path)
    assert "".join(tokens) == path, f"unsupported JSONPath {path}"
    for token in tokens:
        if obj is None:
            return None
        match = _FILTER.match(token)
        if match:
            obj = next((i for i in obj if i.get(match[1]) == match[2]), None)
        else:
            obj = obj.get(token[1:]) if isinstance(obj, dict) else None
    return obj


def columns(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    cols = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    return {c["name"]: jsonpath(obj, c["jsonPath"]) for c in cols}


def test_kubectl_get_dt_columns_render_from_a_status() -> None:
    body = {
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "phase": "steady_state",
            "confidence": 0.94,
            "samplingRate": 0.05,
            "spend": {"today": 0.42, "week": 1.0, "month": 2.0, "currency": "USD"},
            "activeModelVersion": "v3",
            "conditions": [
                {"type": "Training", "status": "False", "reason": "Idle", **_AT},
                {"type": "Ready", "status": "True", "reason": "GatewayServing", **_AT},
            ],
        },
    }
    assert columns("DistilledTask", body) == {
        "Phase": "steady_state",
        "Confidence": 0.94,
        "Sampling": 0.05,
        "Spend-Today": 0.42,
        "Model": "v3",
        "Canary": None,  # kubectl prints <none> while no canary runs
        "Ready": "True",
        "Age": "2026-01-01T00:00:00Z",
    }
    models.DistilledTaskStatus.model_validate(body["status"])  # the sample is a real status


def test_kubectl_get_dt_shows_a_running_canary_beside_the_serving_model() -> None:
    tally = {"comparisons": 40, "agreement": 0.93}
    status = {"activeModelVersion": "v3", "canary": {"version": "v4", "candidate": tally}}
    got = columns("DistilledTask", {"metadata": {}, "status": status})
    assert (got["Model"], got["Canary"]) == ("v3", "v4")
    models.DistilledTaskStatus.model_validate(status)


def test_tj_and_mv_columns_render() -> None:
    tj = {
        "spec": {"taskRef": "classify-ticket", "examples": 120},
        "status": {"state": "Running", "duration": "3m2s"},
        "metadata": {},
    }
    assert columns("TrainingJob", tj) == {
        "Task": "classify-ticket",
        "State": "Running",
        "Examples": 120,
        "Duration": "3m2s",
        "Age": None,
    }
    mv = {
        "spec": {"taskRef": "classify-ticket", "version": "v4"},
        "status": {"state": "promoted", "heldoutScore": 0.91},
        "metadata": {},
    }
    assert columns("ModelVersion", mv) == {
        "Task": "classify-ticket",
        "Version": "v4",
        "Score": 0.91,
        "State": "promoted",
        "Age": None,
    }


# -- CEL rules and their Python twins -----------------------------------------------------


def _example(name: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all((ROOT / "examples" / "kubernetes" / name).read_text()):
        if doc and doc["kind"] == "DistilledTask":
            return dict(doc)
    raise AssertionError(name)


BASE = _example("classify-ticket.yaml")

# (rule's model, a spec mutation that breaks exactly that rule)
BREAKS: list[tuple[str, str, Any]] = [
    ("ConfidenceThresholds", "confidenceThresholds.emergencyThreshold", 0.75),
    ("ConfidenceThresholds", "confidenceThresholds.coachingTrigger", 0.9),
    ("BudgetConfig", "budget.daily", 50.0),
    ("BudgetConfig", "budget.weekly", 100.0),
    ("TeacherSpec", "teacher.secretRef", None),
    ("TeacherSpec", "teacher.model", None),
    ("StudentSpec", "student.backend", "ollama"),
    ("StudentSpec", "student", {"profile": "cpu", "backend": "vllm", "baseModel": "m"}),
    ("DistilledTaskSpec", "training.fineTuneBackend", "openai"),
    ("DistilledTaskSpec", "training.hyperparameters.loraRank", 24),
    ("DistilledTaskSpec", "gateway", {"replicas": 3}),
    ("DistilledTaskSpec", "training.hyperparameters.loraRank", 128),
    ("DistilledTaskSpec", "fineTuneBatchSize", 10),
    ("DistilledTaskSpec", "matchFields", []),
]


def _mutate(body: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node = out["spec"]
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return out


def test_examples_pass_every_rule() -> None:
    assert crd_validation.validate(CRDS["DistilledTask"], BASE) == []


@pytest.mark.parametrize(("model", "field", "value"), BREAKS, ids=[b[1] for b in BREAKS])
def test_cel_twin_and_pydantic_reject_the_same_spec(model: str, field: str, value: Any) -> None:
    bad = _mutate(BASE, field, value)
    errors = crd_validation.validate(CRDS["DistilledTask"], bad)
    messages = {r.message for r in cel.rules_for(model)}
    assert errors and all(e.split(": ", 1)[1] in messages for e in errors), errors
    with pytest.raises(ValidationError):
        models.DistilledTaskSpec.model_validate(bad["spec"])


def test_every_rule_is_exercised() -> None:
    broken = set()
    for _, field, value in BREAKS:
        bad = _mutate(BASE, field, value)
        broken |= {e.split(": ", 1)[1] for e in crd_validation.validate(CRDS["DistilledTask"], bad)}
    rules = {
        r.message
        for name in (
            "ConfidenceThresholds",
            "BudgetConfig",
            "TeacherSpec",
            "StudentSpec",
            "DistilledTaskSpec",
        )
        for r in cel.rules_for(name)
    }
    unexercised = rules - broken
    # Rules of other providers' shapes (replay, openai_compatible, custom evaluators) are
    # exercised below; every other rule must have been broken above.
    assert unexercised <= {
        "the replay teacher needs replayFrom: {name, key} (a ConfigMap with answers JSONL)",
        "openai_compatible needs baseUrl",
        "custom needs evaluatorOptions.function: 'module:function'",
    }


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ({"provider": "replay"}, "the replay teacher needs replayFrom"),
        ({"provider": "openai_compatible", "model": "m"}, "openai_compatible needs baseUrl"),
    ],
)
def test_provider_shape_rules(teacher: dict[str, Any], message: str) -> None:
    bad = copy.deepcopy(BASE)
    bad["spec"]["teacher"] = teacher
    errors = crd_validation.validate(CRDS["DistilledTask"], bad)
    assert any(message in e for e in errors), errors
    with pytest.raises(ValidationError):
        models.DistilledTaskSpec.model_validate(bad["spec"])


def test_custom_evaluator_needs_a_function() -> None:
    bad = _mutate(_mutate(BASE, "evaluator", "custom"), "matchFields", None)
    errors = crd_validation.validate(CRDS["DistilledTask"], bad)
    assert errors == [".spec: custom needs evaluatorOptions.function: 'module:function'"]


def test_unknown_fields_and_wrong_types_are_reported() -> None:
    bad = _mutate(BASE, "student.gpuCount", 2)
    bad = _mutate(bad, "confidenceThresholds.phase1ToPhase2", "fifty")
    errors = crd_validation.validate(CRDS["DistilledTask"], bad)
    assert len(errors) == 2 and "gpuCount" in " ".join(errors) and "fifty" in " ".join(errors)
