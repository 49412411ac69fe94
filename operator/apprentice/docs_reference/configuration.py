"""``configuration.md``: every key of ``apprentice.yaml`` from the pydantic models.

Each model becomes one section named by its path (``tasks[].evaluator_options``); a model
met again under another key links to its first section instead of repeating it. Types,
defaults and constraints come from the field definitions, so the page cannot disagree
with what :func:`apprentice.config.load` accepts.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from apprentice.config import ApprenticeConfig
from apprentice.docs_reference.markdown import GENERATED, cell, code, literal, table

_INTRO = """# Configuration reference

`apprentice.yaml` configures the embedded default (`apprentice serve`, `apprentice demo`,
the Python facade); a `DistilledTask`'s spec uses the same models in camelCase (see
[custom resources](custom-resources.md)). Unknown keys are errors, every error names its
path and links to its [error entry](errors.md). `${VAR}` and `${VAR:-default}` in any
string are replaced from the environment before validation. `apprentice validate-config -c
FILE` checks a file without starting anything.

Each section below is one mapping; `[]` in a path means "each item of the list".
"""


@dataclass(frozen=True)
class Section:
    path: str
    model: type[BaseModel]


def anchor(path: str) -> str:
    """A stable heading id for a key path (``tasks[].budget`` -> ``tasks-budget``)."""
    slug = path.replace("[]", "").replace(".", "-").replace("_", "-")
    return slug or "root"


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """Nested models of a field type, with the path suffix (``[]`` for list items)."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
    elif origin in (list, tuple):
        for arg in typing.get_args(annotation):
            for suffix, model in _models_in(arg):
                yield "[]" + suffix, model
    elif origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            yield from _models_in(arg)


def type_name(annotation: Any) -> str:
    """The type as a user reads it: ``int | null``, ``list of str``, ``"local" | "teacher"``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else str(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {type_name(args[0])} to {type_name(args[1])}" if args else "map"
    if origin is tuple:
        return "[" + ", ".join(type_name(a) for a in args) + "]"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " | ".join(f'"{m.value}"' for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = ((at.Gt, "gt", "> "), (at.Ge, "ge", ">= "), (at.Lt, "lt", "< "), (at.Le, "le", "<= "))


def constraints(info: FieldInfo) -> list[str]:
    out: list[str] = []
    for meta in info.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(meta, kind):
                out.append(f"{sign}{getattr(meta, attr)}")
        if isinstance(meta, at.MinLen):
            out.append(f"at least {meta.min_length} long")
        if isinstance(meta, at.MaxLen):
            out.append(f"at most {meta.max_length} long")
        pattern = getattr(meta, "pattern", None)
        if isinstance(pattern, str):
            out.append(f"matches {code(pattern)}")
    return out


def default_of(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    factory = info.default_factory
    value = factory() if factory is not None else info.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return "**required**"
    if isinstance(value, BaseModel):
        return "(see its section)"
    if isinstance(value, enum.Enum):
        value = value.value
    return literal(value)


def description(info: FieldInfo) -> str:
    text = info.description or ""
    if not text:
        for _, model in _models_in(info.annotation):
            text = (model.__doc__ or "").strip().split("\n\n")[0]
            break
    return cell(text) if text else ""


def sections(root: type[BaseModel] = ApprenticeConfig) -> list[Section]:
    """Every mapping of the config, depth first, each model once."""
    out: list[Section] = []
    seen: set[type[BaseModel]] = set()

    def walk(path: str, model: type[BaseModel]) -> None:
        seen.add(model)
        out.append(Section(path, model))
        for name, info in model.model_fields.items():
            for suffix, nested in _models_in(info.annotation):
                if nested not in seen:
                    walk(f"{path}.{name}{suffix}" if path else f"{name}{suffix}", nested)

    walk("", root)
    return out


def keys(root: type[BaseModel] = ApprenticeConfig) -> list[str]:
    """Every documented key path (``tasks[].name``), for the sync tests."""
    return [
        f"{s.path}.{name}" if s.path else name
        for s in sections(root)
        for name in s.model.model_fields
    ]


def render() -> str:
    found = sections()
    first = {s.model: s.path for s in found}
    parts = [GENERATED.format(source="apprentice/config/"), _INTRO]
    for section in found:
        title = code(section.path) if section.path else "Top level"
        parts.append(f"\n## {title} {{#{anchor(section.path)}}}\n\n")
        doc = (section.model.__doc__ or "").strip()
        if doc:
            parts.append(" ".join(doc.split("\n\n")[0].split()) + "\n\n")
        rows = []
        for name, info in section.model.model_fields.items():
            desc = description(info)
            for _, nested in _models_in(info.annotation):
                target = first[nested]
                link = f"[{code(target)}](#{anchor(target)})"
                desc = f"{desc} See {link}." if desc else f"See {link}."
                break
            rows.append(
                [
                    code(name),
                    cell(type_name(info.annotation)),
                    default_of(info),
                    cell("; ".join(constraints(info))),
                    desc,
                ]
            )
        parts.append(table(["key", "type", "default", "constraints", "description"], rows))
    return "".join(parts)
