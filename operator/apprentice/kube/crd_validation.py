"""Validate a custom resource against a generated CRD offline, as the API server would.

Three steps, in the API server's order: structural defaults are applied, the OpenAPI v3
schema is checked (translated to JSON Schema draft 4, whose boolean ``exclusiveMinimum``
matches OpenAPI 3.0), and every ``x-kubernetes-validations`` CEL rule is evaluated by its
Python twin from :mod:`apprentice.kube.cel`. Unknown fields are errors, as with
``kubectl apply``'s strict field validation (the default). Transition rules
(``oldSelf``) need an old object and are skipped here. Used by the tests and by anyone
checking manifests in CI.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft4Validator

from apprentice.kube import cel

__all__ = ["apply_defaults", "check_defaults", "json_schema", "validate"]

Schema = dict[str, Any]
_TWINS = {
    rule.rule: rule for rules in [*cel.RULES.values(), *cel.ROOT_RULES.values()] for rule in rules
}


def json_schema(node: Schema) -> Schema:
    """The JSON Schema (draft 4) equivalent of a structural OpenAPI v3 schema node."""
    out: Schema = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {k: json_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = json_schema(value)
        elif not key.startswith("x-kubernetes-") and key not in ("nullable", "default"):
            out[key] = value
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False  # kubectl's strict field validation
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def apply_defaults(node: Schema, value: Any) -> Any:
    """A copy of ``value`` with the schema's defaults filled in, recursively."""
    if isinstance(value, dict):
        out = dict(value)
        for key, prop in (node.get("properties") or {}).items():
            if key not in out and "default" in prop:
                out[key] = copy.deepcopy(prop["default"])
            if key in out:
                out[key] = apply_defaults(prop, out[key])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            out = {
                k: apply_defaults(extra, v) if k not in (node.get("properties") or {}) else v
                for k, v in out.items()
            }
        return out
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [apply_defaults(node["items"], v) for v in value]
    return value


def _cel(node: Schema, value: Any, path: str, errors: list[str]) -> None:
    if value is None:
        return
    for rule in node.get("x-kubernetes-validations") or []:
        twin = _TWINS.get(rule["rule"])
        try:
            broken = twin is not None and not twin.check(value)
        except KeyError as exc:  # what CEL reports as "no such key"
            errors.append(f"{path}: no such key: {exc.args[0]} evaluating rule: {rule['message']}")
            continue
        if broken:
            errors.append(f"{path}: {rule['message']}")
    if isinstance(value, dict):
        for key, prop in (node.get("properties") or {}).items():
            if key in value:
                _cel(prop, value[key], f"{path}.{key}", errors)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        for i, item in enumerate(value):
            _cel(node["items"], item, f"{path}[{i}]", errors)


def validate(crd: Schema, obj: Schema) -> list[str]:
    """Every problem the API server would report for ``obj`` (empty when it is valid)."""
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    kind = crd["spec"]["names"]["kind"]
    errors: list[str] = []
    if obj.get("kind") != kind:
        errors.append(f"kind: expected {kind}, got {obj.get('kind')!r}")
    want = f"{crd['spec']['group']}/{version['name']}"
    if obj.get("apiVersion") != want:
        errors.append(f"apiVersion: expected {want}, got {obj.get('apiVersion')!r}")
    defaulted = apply_defaults(schema, obj)
    validator = Draft4Validator(json_schema(schema))
    for err in sorted(validator.iter_errors(defaulted), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in err.absolute_path) or "<root>"
        errors.append(f"{where}: {err.message}")
    if not errors:
        _cel(schema, defaulted, "", errors)
    return errors


def check_defaults(node: Schema, path: str = "") -> list[str]:
    """Problems of the schema's own defaults, checked as the API server checks a CRD: each
    default *as written* (nested defaults not applied) against its schema and CEL rules."""
    errors: list[str] = []
    if "default" in node:
        value = node["default"]
        validator = Draft4Validator(json_schema(node))
        errors += [f"{path}.default: {e.message}" for e in validator.iter_errors(value)]
        _cel(node, value, f"{path}.default", errors)
    for key, prop in (node.get("properties") or {}).items():
        errors += check_defaults(prop, f"{path}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            errors += check_defaults(node[key], f"{path}.{key}")
    return errors
