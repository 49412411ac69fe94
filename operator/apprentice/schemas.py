"""Task input/output schemas: the seed's shorthand and full JSON Schema, one normal form.

The seed writes schemas as ``{text: str, metadata: dict}``; real users write JSON
Schema. Both become one JSON Schema object here, so every later consumer (the
gateway's validation, a provider's structured-output request, the CRD) sees one
shape. Shorthand objects are closed (``additionalProperties: false``) with every
field required, because providers' strict structured-output modes demand that.
A trailing ``?`` makes a shorthand field optional: ``{note: str?}``. A shorthand
field may be named like a JSON Schema keyword (``{type: str, text: str}``): a mapping
is JSON Schema only when such a key holds something other than a shorthand type name.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from apprentice import schema_checks

JSONSchema = dict[str, Any]

_SCALARS: dict[str, JSONSchema] = {
    "str": {"type": "string"},
    "string": {"type": "string"},
    "int": {"type": "integer"},
    "integer": {"type": "integer"},
    "float": {"type": "number"},
    "number": {"type": "number"},
    "bool": {"type": "boolean"},
    "boolean": {"type": "boolean"},
    "dict": {"type": "object"},
    "object": {"type": "object"},
    "list": {"type": "array"},
    "array": {"type": "array"},
    "any": {},
}
_LIST_OF = re.compile(r"^list\[(\w+)\]$")
_JSON_SCHEMA_KEYS = frozenset(
    {"type", "properties", "$schema", "$ref", "anyOf", "oneOf", "allOf", "enum", "items", "const"}
)
ANY_OBJECT: JSONSchema = {"type": "object"}


class SchemaSyntaxError(ValueError):
    """A schema that is neither valid shorthand nor valid JSON Schema."""


_JSON_TYPE_NAMES = frozenset({"string", "integer", "number", "boolean", "object", "array", "null"})


def _shorthand_only(spec: Any) -> bool:
    """Whether ``spec`` is a type name only the shorthand writes (``str``, ``list[int]``,
    ``note?``), never a JSON Schema keyword's value; ``string`` or ``object`` are both."""
    if not isinstance(spec, str):
        return False
    name = spec.strip()
    if name.endswith("?"):
        return True
    known = name in _SCALARS or bool(_LIST_OF.match(name))
    return known and name not in _JSON_TYPE_NAMES


def is_json_schema(raw: dict[str, Any]) -> bool:
    """Whether ``raw`` is written as JSON Schema rather than the seed's shorthand: a
    keyword key whose value is no shorthand type (``{type: str}`` is a field)."""
    return any(k in _JSON_SCHEMA_KEYS and not _shorthand_only(v) for k, v in raw.items())


def _shorthand_type(spec: Any, where: str) -> JSONSchema:
    if isinstance(spec, dict):
        return shorthand_to_json_schema(spec, where)
    if not isinstance(spec, str):
        raise SchemaSyntaxError(
            f"{where}: expected a type name such as str, int, float, bool, dict, list or "
            f"list[str], got {spec!r}"
        )
    name = spec.strip()
    if name in _SCALARS:
        return dict(_SCALARS[name])
    match = _LIST_OF.match(name)
    if match and match.group(1) in _SCALARS:
        return {"type": "array", "items": dict(_SCALARS[match.group(1)])}
    raise SchemaSyntaxError(
        f"{where}: unknown type {name!r}; use one of {', '.join(sorted(_SCALARS))}, "
        "list[T], a nested mapping, or write full JSON Schema"
    )


def shorthand_to_json_schema(raw: dict[str, Any], where: str = "schema") -> JSONSchema:
    """Turn ``{text: str, tags: list[str], note: str?}`` into a closed JSON Schema object."""
    properties: dict[str, JSONSchema] = {}
    required: list[str] = []
    for field, spec in raw.items():
        optional = isinstance(spec, str) and spec.strip().endswith("?")
        if optional:
            spec = spec.strip()[:-1]
        properties[str(field)] = _shorthand_type(spec, f"{where}.{field}")
        if not optional:
            required.append(str(field))
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def normalize(raw: dict[str, Any] | None, where: str = "schema") -> JSONSchema:
    """Return the JSON Schema for a task schema written either way; ``None`` means any object."""
    if raw is None or raw == {}:
        return dict(ANY_OBJECT)
    schema = dict(raw) if is_json_schema(raw) else shorthand_to_json_schema(raw, where)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise SchemaSyntaxError(f"{where}: not a valid JSON Schema: {exc.message}") from exc
    if schema.get("type") != "object":
        raise SchemaSyntaxError(
            f"{where}: task inputs and outputs are JSON objects; the schema's type must be "
            f"'object', got {schema.get('type')!r}"
        )
    return schema


def validation_errors(schema: JSONSchema, instance: Any) -> list[str]:
    """Every way ``instance`` breaks ``schema``, each as 'path: message' (empty when valid).

    The validator is compiled once per schema object (:mod:`apprentice.schema_checks`).
    """
    return schema_checks.compiled(schema).problems(instance)
