"""A teacher call's JSON body, encoded once per prompt shape.

A task's chat request is the same bytes on every call but one string: the user's
message (the task input as JSON). The system prompt, the output schema, the model and
the token cap are the task's. Encoding the whole body was ~6.7 us of event-loop CPU
per paid request for a two-field schema (more for a real task's description and
schema); encoding the user's text alone is ~0.2 us.

:class:`ChatBodies` encodes the adapter's body once with a sentinel for the user's
text, keeps the bytes before and after it, and then sends ``head + text + tail``. The
result is the same bytes as encoding the whole body (tests/teachers/test_teacher_templates.py
checks it for every adapter): a JSON string encodes the same wherever it stands. A
body that does not hold the sentinel exactly once (an adapter that copies or rewrites
the text) is encoded whole, every call, as before.
"""

from __future__ import annotations

from typing import Any, Protocol

from apprentice.prompts import ChatMessage
from apprentice.teachers.transport import encode_json

__all__ = ["ChatBodies", "ChatRequest"]

_SENTINEL = "\x00apprentice: the user's text goes here\x00"
"""Stands for the user's text while a template is made (no prompt holds a NUL pair)."""
_MAX_SHAPES = 256
"""Prompt shapes kept (a shape per task and token cap): never grows unbounded."""


class ChatRequest(Protocol):
    """An adapter's ``chat_request`` (:class:`apprentice.teachers.remote.Adapter`)."""

    def __call__(
        self,
        model: str,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> dict[str, Any]: ...


_Key = tuple[str, str, str, int, int]
"""model, system prompt, schema name, token cap, the schema's id (checked by identity)."""


class _Template:
    __slots__ = ("head", "schema", "tail")

    def __init__(self, schema: dict[str, Any] | None, head: bytes, tail: bytes) -> None:
        self.schema, self.head, self.tail = schema, head, tail


class ChatBodies:
    """Encodes a chat request's body from its template (see the module doc)."""

    def __init__(self, build: ChatRequest) -> None:
        self._build = build
        self._shapes: dict[_Key, _Template | None] = {}  # None: encode whole

    def encode(
        self,
        model: str,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> bytes:
        """``build(model, messages, ...)`` as compact UTF-8 JSON."""
        if len(messages) != 2 or messages[0]["role"] != "system" or messages[1]["role"] != "user":
            return self._whole(model, messages, json_schema, schema_name, max_tokens)
        key = (model, messages[0]["content"], schema_name, max_tokens, id(json_schema))
        shape = self._shapes.get(key, _UNSEEN)
        if shape is _UNSEEN or (shape is not None and shape.schema is not json_schema):
            shape = self._learn(key, model, messages[0], json_schema, schema_name, max_tokens)
        if shape is None:
            return self._whole(model, messages, json_schema, schema_name, max_tokens)
        return shape.head + encode_json(messages[1]["content"]) + shape.tail

    def _whole(
        self,
        model: str,
        messages: list[ChatMessage],
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> bytes:
        body = self._build(
            model, messages, json_schema=json_schema, schema_name=schema_name, max_tokens=max_tokens
        )
        return encode_json(body)

    def _learn(
        self,
        key: _Key,
        model: str,
        system: ChatMessage,
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> _Template | None:
        """The template of one prompt shape (``None`` when the sentinel is not there once)."""
        probe: list[ChatMessage] = [system, {"role": "user", "content": _SENTINEL}]
        parts = self._whole(model, probe, json_schema, schema_name, max_tokens).split(
            encode_json(_SENTINEL)
        )
        shape = _Template(json_schema, parts[0], parts[1]) if len(parts) == 2 else None
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes[key] = shape
        return shape


_UNSEEN = _Template(None, b"", b"")
"""What :meth:`dict.get` answers for a shape not seen yet."""
