"""quick_init: a frozen dataclass filled in one step is the instance its generated
``__init__`` built (same fields, values, equality, hash, frozenness, errors), for every
class that uses it and for the shapes it must cover (defaults, factories, keyword-only
fields, fields out of ``__init__``, slots)."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest

from apprentice.engine.budget import BudgetLimits, Ledger
from apprentice.engine.lifecycle import Decision
from apprentice.engine.state import TaskState
from apprentice.gateway.request import Meta, Result
from apprentice.quick_init import original_init, quick_init
from apprentice.teachers.base import TeacherAnswer, Usage
from apprentice.teachers.remote import ChatResult
from apprentice.teachers.transport import Response
from apprentice.vocabulary import Route


@dataclass(frozen=True)
class Plain:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int = field(default=4, init=False)
    e: list[int] = field(default_factory=lambda: [5], init=False, compare=False)
    f: int = field(default=6, kw_only=True)
    g: int = field(kw_only=True, default_factory=lambda: 7)


@dataclass(frozen=True, slots=True)
class Slotted:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int = field(default=4, init=False)
    e: int | None = field(default=None, init=False, compare=False)
    f: int = field(default=6, kw_only=True)


@dataclass(frozen=True)
class Unset:
    a: int
    later: int = field(init=False)  # no default: the generated __init__ leaves it unset


ZOO: list[tuple[type, list[tuple[tuple[Any, ...], dict[str, Any]]]]] = [
    (Plain, [((1,), {}), ((1, "x", [2]), {"f": 9, "g": 8}), ((), {"a": 1, "c": [3]})]),
    (Slotted, [((1,), {}), ((1, "x"), {"c": [2], "f": 0})]),
]
for _cls, _ in ZOO:
    quick_init(_cls)
quick_init(Unset)


def _state(obj: object) -> dict[str, object]:
    """Every field set on ``obj`` (compare=False ones too), read past ``__eq__``."""
    out = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        try:
            out[f.name] = getattr(obj, f.name)
        except AttributeError:
            out[f.name] = "<unset>"
    return out


def _built_both_ways(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    quick = cls(*args, **kwargs)
    slow = object.__new__(cls)
    original_init(cls)(slow, *args, **kwargs)
    return quick, slow


@pytest.mark.parametrize(
    ("cls", "args", "kwargs"), [(c, a, k) for c, cases in ZOO for a, k in cases]
)
def test_the_same_instance_as_the_generated_init(
    cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    quick, slow = _built_both_ways(cls, args, kwargs)
    assert _state(quick) == _state(slow)
    assert quick == slow
    assert repr(quick) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.a = 2  # type: ignore[misc]
    try:
        digest = hash(slow)
    except TypeError:  # a list field: unhashable either way
        with pytest.raises(TypeError):
            hash(quick)
    else:
        assert hash(quick) == digest
    assert dataclasses.replace(quick, a=3) == dataclasses.replace(slow, a=3)


def test_a_field_without_default_out_of_init_stays_unset() -> None:
    quick, slow = _built_both_ways(Unset, (1,), {})
    assert _state(quick) == _state(slow) == {"a": 1, "later": "<unset>"}


def test_factories_run_per_instance() -> None:
    one, two = Plain(1), Plain(1)
    assert one.c == [] and one.c is not two.c and one.e is not two.e


@pytest.mark.parametrize("cls", [Plain, Slotted])
def test_bad_calls_fail_as_before(cls: type) -> None:
    for args, kwargs in [((), {}), ((1,), {"nope": 1}), ((1, "x", [], 5), {})]:
        with pytest.raises(TypeError):
            cls(*args, **kwargs)
        with pytest.raises(TypeError):
            original_init(cls)(object.__new__(cls), *args, **kwargs)


def test_refuses_what_it_does_not_cover() -> None:
    @dataclass
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class Post:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True)
    class WithInitVar:
        a: int
        seed: InitVar[int] = 0

    for cls in (Mutable, Post, WithInitVar):
        with pytest.raises(TypeError, match="quick_init"):
            quick_init(cls)


SAMPLES: dict[type, tuple[tuple[Any, ...], dict[str, Any]]] = {
    Usage: ((12, 3), {}),
    ChatResult: (("{}", Usage(1, 2)), {"model": "m", "truncated": True}),
    TeacherAnswer: (({"a": 1}, Usage(1, 2), 0.5, "openai", "gpt-4o", 0.1, 1), {}),
    Response: ((200, {"content-type": "application/json"}, b"{}"), {}),
    Result: (({"a": 1}, "rid"), {"usage": Usage(1, 1)}),
    Meta: ((), {"tags": {"k": "v"}, "caller": "key"}),
    Decision: ((Route.remote_only, None, 0.5, "cold start"), {"budget_exhausted": True}),
    Ledger: ((), {"limits": BudgetLimits(), "next_id": 3, "totals": {"t": 1.0}}),
    TaskState: ((), {"examples": 5, "active_version": "v1"}),
}


@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda c: c.__name__)
def test_every_class_that_uses_it(cls: type) -> None:
    """A field added to one of these and missed by quick_init fails here."""
    assert inspect.signature(cls).parameters.keys() == inspect.signature(
        original_init(cls)
    ).parameters.keys() - {"self"}
    quick, slow = _built_both_ways(cls, *SAMPLES[cls])
    assert _state(quick) == _state(slow)
    assert quick == slow
    assert repr(quick) == repr(slow)
