"""bodies.task_request reads a task API body as the TaskRequest model does, 400s included."""

from __future__ import annotations

from typing import Any

import pytest

from apprentice.gateway import bodies, errors

GOOD: list[dict[str, Any]] = [
    {"input": {"text": "hi", "n": [1, {"x": None}]}},
    {"input": {}},
    {"input": {"text": "hi"}, "metadata": {"customer": "acme"}},
    {"input": {"text": "hi"}, "metadata": {}},
    {"input": {"text": "hi"}, "metadata": {f"k{i}": "v" * 512 for i in range(16)}},
    {"input": {"text": "hi"}, "metadata": {"k" * 64: "", "é": "✓"}},
    {"input": {"text": "hi"}, "metadata": None},
    {"input": {"text": "hi"}, "stream": True},
    {"input": {"text": "hi"}, "temperature": 0.2},  # unknown fields are ignored
]
BAD: list[dict[str, Any]] = [
    {},
    {"input": "text"},
    {"input": ["a"]},
    {"input": None},
    {"input": {"text": "hi"}, "metadata": {"k": 1}},
    {"input": {"text": "hi"}, "metadata": {"": "v"}},
    {"input": {"text": "hi"}, "metadata": {"k" * 65: "v"}},
    {"input": {"text": "hi"}, "metadata": {"k": "v" * 513}},
    {"input": {"text": "hi"}, "metadata": {f"k{i}": "v" for i in range(17)}},
    {"input": {"text": "hi"}, "metadata": ["k"]},
    {"input": {"text": "hi"}, "metadata": "k=v"},
    {"input": {"text": "hi"}, "stream": "yes"},
]


@pytest.mark.parametrize("body", GOOD)
def test_a_valid_body_reads_as_the_model_reads_it(body: dict[str, Any]) -> None:
    model = bodies.parse(bodies.TaskRequest, body)
    assert bodies.task_request(body) == (model.input, model.metadata, model.stream)


@pytest.mark.parametrize("body", BAD)
def test_an_invalid_body_gets_the_models_400(body: dict[str, Any]) -> None:
    with pytest.raises(errors.BadRequest) as expected:
        bodies.parse(bodies.TaskRequest, body)
    with pytest.raises(errors.BadRequest) as got:
        bodies.task_request(body)
    assert got.value.body() == expected.value.body()
