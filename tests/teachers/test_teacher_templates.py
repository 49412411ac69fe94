"""A teacher call's body from its template is byte for byte the body encoded whole.

For every adapter, across task inputs that stress JSON string encoding (quotes, escapes,
non-ASCII, control characters, the template's own sentinel), and for the shapes that
must not use a template (a repair's four messages) or must relearn one (a new schema
object of the same name and prompt).
"""

from __future__ import annotations

from typing import Any

import pytest

from apprentice import prompts
from apprentice.config import TaskConfig
from apprentice.prompts import ChatMessage
from apprentice.teachers import ADAPTERS, templates
from apprentice.teachers.remote import Adapter, repair_messages
from apprentice.teachers.transport import encode_json

TASK = TaskConfig.model_validate(
    {
        "name": "classify_ticket",
        "description": 'Classify the "ticket": é, 中文, \\ and a tab\t.',
        "input_schema": {"text": "str"},
        "output_schema": {"category": "str", "priority": "int"},
        "evaluator": "exact_match",
    }
)
INPUTS: list[dict[str, Any]] = [
    {"text": "my invoice is wrong"},
    {"text": 'quotes " and \\ backslashes \\" and \n newlines \u2028'},
    {"text": "non-ASCII: facturación, 請求書, 🧾; control: \x00\x01\x1f"},
    {"text": templates._SENTINEL},  # the sentinel itself, as a user's text
    {"text": ""},
]


def _whole(adapter: Adapter, messages: list[ChatMessage], schema: dict[str, Any]) -> bytes:
    body = adapter.chat_request(
        "model-x", messages, json_schema=schema, schema_name=TASK.name, max_tokens=512
    )
    return encode_json(body)


def _templated(
    bodies: templates.ChatBodies, messages: list[ChatMessage], schema: dict[str, Any]
) -> bytes:
    return bodies.encode(
        "model-x", messages, json_schema=schema, schema_name=TASK.name, max_tokens=512
    )


@pytest.mark.parametrize("kind", list(ADAPTERS), ids=lambda k: k.value)
def test_a_templated_body_is_the_whole_body_byte_for_byte(kind: Any) -> None:
    adapter = ADAPTERS[kind]
    bodies = templates.ChatBodies(adapter.chat_request)
    for task_input in INPUTS * 2:  # the second round from the learned template
        messages = prompts.build_messages(TASK, task_input)
        assert _templated(bodies, messages, TASK.output_schema) == _whole(
            adapter, messages, TASK.output_schema
        )
    assert len(bodies._shapes) == 1  # one prompt shape, learned once
    assert next(iter(bodies._shapes.values())) is not None  # and templated, not whole


@pytest.mark.parametrize("kind", list(ADAPTERS), ids=lambda k: k.value)
def test_a_repair_and_a_new_schema_object_are_encoded_right(kind: Any) -> None:
    adapter = ADAPTERS[kind]
    bodies = templates.ChatBodies(adapter.chat_request)
    messages = prompts.build_messages(TASK, INPUTS[1])
    _templated(bodies, messages, TASK.output_schema)
    repair = repair_messages(messages, '{"category": 1}', ["priority: required"])
    assert _templated(bodies, repair, TASK.output_schema) == _whole(
        adapter, repair, TASK.output_schema
    )
    other = {"type": "object", "properties": {"label": {"type": "string"}}}  # same key else
    assert _templated(bodies, messages, other) == _whole(adapter, messages, other)
    assert _templated(bodies, messages, TASK.output_schema) == _whole(
        adapter, messages, TASK.output_schema
    )


def test_a_body_holding_the_users_text_twice_is_encoded_whole() -> None:
    def echo(
        model: str,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> dict[str, Any]:
        text = messages[-1]["content"]
        return {"model": model, "input": text, "again": text, "max_tokens": max_tokens}

    bodies = templates.ChatBodies(echo)
    messages = prompts.build_messages(TASK, INPUTS[0])
    want = encode_json(echo("m", messages, json_schema=None, schema_name="s", max_tokens=1))
    for _ in range(2):
        assert bodies.encode("m", messages, json_schema=None, schema_name="s", max_tokens=1) == want
    assert list(bodies._shapes.values()) == [None]  # no template: encoded whole each time
