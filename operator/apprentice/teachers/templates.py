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
    """An adapter's ``chat_request``: the signature :class:`apprentice.teachers.remote.Adapter`
    declares, written once here (``templates`` sits below ``remote``)."""

    def __call__(
        self,
        model: str,
        messages: list[ChatMessage],
        *,
        json_schema: dict[str, Any] | None,
        schema_name: str,
        max_tokens: int,
    ) -> dict[str, Any]: ...


_Schema = dict[str, Any] | None
"""A task's output schema, as the adapter's ``chat_request`` takes it."""
_Key = tuple[str, str, str, int, int]
"""model, system prompt, schema name, token cap, the schema's id (checked by identity)."""


class _Template:
    __slots__ = ("head", "schema", "tail")

    def __init__(self, schema: _Schema, head: bytes, tail: bytes) -> None:
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
        shape: _Template | None = None
        if len(messages) == 2 and messages[0]["role"] == "system" and messages[1]["role"] == "user":
            key = (model, messages[0]["content"], schema_name, max_tokens, id(json_schema))
            found = self._shapes.get(key, _UNSEEN)
            if found is _UNSEEN or (found is not None and found.schema is not json_schema):
                probe: list[ChatMessage] = [messages[0], {"role": "user", "content": _SENTINEL}]
                whole = self._whole(model, probe, json_schema, schema_name, max_tokens)
                found = self._learn(key, json_schema, whole)
            shape = found
        if shape is None:  # not a system + user prompt, or the text not there once
            return self._whole(model, messages, json_schema, schema_name, max_tokens)
        return shape.head + encode_json(messages[1]["content"]) + shape.tail

    def _whole(
        self, model: str, messages: list[ChatMessage], schema: _Schema, name: str, tokens: int
    ) -> bytes:
        """The whole body encoded, as every call did before templates."""
        body = self._build(model, messages, json_schema=schema, schema_name=name, max_tokens=tokens)
        return encode_json(body)

    def _learn(self, key: _Key, json_schema: _Schema, probe: bytes) -> _Template | None:
        """The template of one prompt shape from its ``probe`` body (the sentinel for the
        user's text); ``None`` when the sentinel is not there exactly once."""
        parts = probe.split(encode_json(_SENTINEL))
        shape = _Template(json_schema, parts[0], parts[1]) if len(parts) == 2 else None
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes[key] = shape
        return shape


_UNSEEN = _Template(None, b"", b"")
"""What :meth:`dict.get` answers for a shape not seen yet."""
