"""``custom-resources.md``: every field of the three CRDs, as the API server sees them.

Read from ``crds/*.yaml`` (generated from the models by :mod:`apprentice.kube.crds`), so
printer columns, defaults, bounds and CEL rules are the ones ``kubectl`` and the API
server apply, camelCase included. Conditions are listed from the operator's catalogue
below; the sync test checks it against :data:`apprentice.kube.status_models.CONDITION_TYPES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from apprentice.docs_reference import ROOT
from apprentice.docs_reference.markdown import GENERATED, cell, code, literal, table

Schema = dict[str, Any]

CRD_FILES = ("distilledtasks.yaml", "trainingjobs.yaml", "modelversions.yaml")

#: Conditions each kind carries: (type, what True means, reasons a user meets).
CONDITIONS: dict[str, list[tuple[str, str, str]]] = {
    "DistilledTask": [
        (
            "Ready",
            "the gateway serves and answers its state endpoint",
            "GatewayServing; False: GatewayUnavailable, InvalidSpec, ApplyFailed",
        ),
        (
            "Reconciling",
            "the operator is still converging (first start, a new spec)",
            "WaitingForGateway; False: Reconciled",
        ),
        (
            "Stalled",
            "the spec cannot be reconciled until someone changes it",
            "InvalidSpec, ApplyFailed; False: Reconciled",
        ),
        (
            "Training",
            "a TrainingJob runs or waits for capacity",
            "TrainingRunning, WaitingForGPU; False: Idle, BackingOff, TrainingStopped",
        ),
        (
            "Degraded",
            "the task serves but something needs attention",
            "Emergency, TrainingFailed; False: Healthy",
        ),
        (
            "BudgetExhausted",
            "a budget window's cap is reached: no teacher calls",
            "CapReached; False: WithinBudget",
        ),
        (
            "Canary",
            "a candidate version is on live traffic (`status.canary`); absent until a "
            "task's first canary",
            "CanaryRunning; False: CanaryEnded",
        ),
    ],
    "TrainingJob": [
        ("Ready", "the run succeeded", "Succeeded"),
        (
            "Reconciling",
            "the run is pending or running",
            "JobCreated, Running, WaitingForGPU, WaitingForNode",
        ),
        ("Stalled", "the run failed; it is not retried as is", "TrainingFailed"),
        ("Succeeded", "the trainer finished and its ModelVersion exists", "Succeeded"),
        ("Failed", "the trainer failed (the message says why)", "TrainingFailed"),
    ],
    "ModelVersion": [
        (
            "Ready",
            "the version is promoted and serving",
            "Promoted; False: Validating, Rejected, Retired",
        ),
        ("Reconciling", "the version is a candidate or being validated", "Validating"),
        ("Stalled", "never True: a rejected version is final, not stuck", "the state's reason"),
    ],
}


def load_crds() -> list[Schema]:
    return [
        yaml.safe_load((ROOT / "crds" / name).read_text(encoding="utf-8")) for name in CRD_FILES
    ]


def _type(node: Schema) -> str:
    if node.get("x-kubernetes-int-or-string"):
        kind = "int or string"
    elif node.get("type") == "array":
        kind = f"list of {_type(node.get('items') or {})}"
    elif node.get("type") == "object" and node.get("x-kubernetes-preserve-unknown-fields"):
        kind = "object (free-form)"
    elif node.get("type") == "object" and "additionalProperties" in node:
        kind = f"map of string to {_type(node['additionalProperties'])}"
    else:
        kind = str(node.get("type") or "any")
    if node.get("format"):
        kind += f" ({node['format']})"
    if node.get("nullable"):
        kind += ", nullable"
    return kind


def _constraints(node: Schema, required: bool) -> str:
    out: list[str] = ["required"] if required else []
    if "enum" in node:
        out.append("one of " + ", ".join(code(v) for v in node["enum"]))
    for key, sign in (("minimum", ">="), ("maximum", "<=")):
        if key in node:
            exclusive = node.get(f"exclusive{key.capitalize()}")
            out.append(f"{sign.rstrip('=') if exclusive else sign} {node[key]}")
    for key, words in (("minLength", "length >="), ("maxLength", "length <="),
                       ("minItems", "items >="), ("maxItems", "items <=")):  # fmt: skip
        if key in node:
            out.append(f"{words} {node[key]}")
    if "pattern" in node:
        out.append(f"matches {code(node['pattern'])}")
    if node.get("x-kubernetes-list-type") == "map":
        out.append("list-map keyed by " + ", ".join(node.get("x-kubernetes-list-map-keys", [])))
    return "; ".join(out)


def fields(
    node: Schema, path: str = "", required: bool = False
) -> Iterator[tuple[str, Schema, bool]]:
    """(path, schema, required) for every field under ``node``, depth first."""
    if path:
        yield path, node, required
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        yield from _children(node["items"], f"{path}[]")
    else:
        yield from _children(node, path)


def _children(node: Schema, path: str) -> Iterator[tuple[str, Schema, bool]]:
    needed = set(node.get("required") or [])
    for name, child in (node.get("properties") or {}).items():
        yield from fields(child, f"{path}.{name}" if path else name, name in needed)


def rules(node: Schema, path: str = "") -> Iterator[tuple[str, str, str]]:
    """(path, CEL rule, message) for every ``x-kubernetes-validations`` entry."""
    for rule in node.get("x-kubernetes-validations") or []:
        yield path or "(root)", rule["rule"], rule.get("message", "")
    if node.get("type") == "array" and isinstance(node.get("items"), dict):
        yield from rules(node["items"], f"{path}[]")
    for name, child in (node.get("properties") or {}).items():
        yield from rules(child, f"{path}.{name}" if path else name)


def field_paths() -> dict[str, list[str]]:
    """Kind -> every spec/status field path, for the sync tests."""
    out: dict[str, list[str]] = {}
    for crd in load_crds():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        out[crd["spec"]["names"]["kind"]] = [p for p, _, _ in fields(schema) if p.split(".")[0]
                                             in ("spec", "status")]  # fmt: skip
    return out


_INTRO = """# Custom resources reference

The operator's API, group `apprentice.dev`, version `v1alpha1`, category `apprentice`
(`kubectl get apprentice` lists all three kinds). The CRDs are generated from the same
pydantic models as [`apprentice.yaml`](configuration.md), camelCase, defaults included,
so the API server fills in the same values the gateway would. CEL rules reject a bad spec
at `kubectl apply` time with the message shown below.

Conditions follow `metav1.Condition` and kstatus (`Ready`, `Reconciling`, `Stalled`), so
`kubectl wait --for=condition=Ready`, Argo CD and Flux read health without plugins (see
[GitOps](../guides/gitops.md)).
"""


def _section(crd: Schema) -> str:
    names = crd["spec"]["names"]
    version = crd["spec"]["versions"][0]
    kind = names["kind"]
    schema = version["schema"]["openAPIV3Schema"]
    parts = [f"\n## {kind} {{#{kind.lower()}}}\n\n"]
    if schema.get("description"):
        parts.append(cell(schema["description"]) + "\n\n")
    parts.append(
        f"`{names['plural']}.{crd['spec']['group']}`, {crd['spec']['scope']}, short names "
        + ", ".join(code(s) for s in names.get("shortNames", []))
        + ".\n\n"
    )
    parts.append(f"### Printer columns {{#{kind.lower()}-columns}}\n\n")
    parts.append(
        table(
            ["column", "type", "JSON path", "description"],
            [
                [c["name"], c["type"], code(c["jsonPath"]), cell(c.get("description", ""))]
                for c in version.get("additionalPrinterColumns", [])
            ],
        )
    )
    parts.append(f"\n### Conditions {{#{kind.lower()}-conditions}}\n\n")
    parts.append(
        table(
            ["type", "True means", "reasons"],
            [[code(t), cell(m), cell(r)] for t, m, r in CONDITIONS.get(kind, [])],
        )
    )
    for top in ("spec", "status"):
        sub = (schema.get("properties") or {}).get(top)
        if not sub:
            continue
        parts.append(f"\n### {top} {{#{kind.lower()}-{top}}}\n\n")
        rows = [
            [
                code(path),
                cell(_type(node)),
                literal(node["default"]) if "default" in node else "",
                cell(_constraints(node, req)),
                cell(node.get("description", "")),
            ]
            for path, node, req in fields(sub, top)
        ]
        parts.append(table(["field", "type", "default", "constraints", "description"], rows))
    cel = list(rules(schema))
    if cel:
        parts.append(f"\n### Validation rules (CEL) {{#{kind.lower()}-rules}}\n\n")
        parts.append(
            table(
                ["on", "rule", "message when it fails"],
                [[code(p), code(r), cell(m)] for p, r, m in cel],
            )
        )
    return "".join(parts)


def render() -> str:
    parts = [GENERATED.format(source="crds/*.yaml"), _INTRO]
    parts += [_section(crd) for crd in load_crds()]
    return "".join(parts)
