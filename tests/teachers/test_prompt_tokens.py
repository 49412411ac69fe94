"""prompt_tokens (admission's cost estimate) counts the prompt the call sends:
estimate_tokens of prompts.build_messages, for any input and any task description."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from apprentice import prompts
from apprentice.config import TaskConfig
from apprentice.teachers.remote import estimate_tokens, prompt_tokens

TASKS = [
    TaskConfig.model_validate(
        {
            "name": "classify_ticket",
            "input_schema": {"text": "str"},
            "output_schema": {"category": "str", "priority": "int"},
            **extra,
        }
    )
    for extra in ({}, {"description": "Sort a support ticket. Réponds en JSON; 日本語も可。"})
]
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TASKS), st.dictionaries(st.text(), values, max_size=4))
def test_prompt_tokens_is_the_estimate_of_the_built_messages(
    task: TaskConfig, task_input: dict[str, Any]
) -> None:
    built = prompts.build_messages(task, task_input)
    assert prompt_tokens(task, task_input) == estimate_tokens(built)
