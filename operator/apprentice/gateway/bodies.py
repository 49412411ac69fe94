"""Request bodies of the HTTP API as pydantic models: the handlers parse with them and
``openapi`` publishes their JSON Schemas, so the document and the server cannot drift.

A body that does not fit its model is a 400 ``bad_request`` whose message names
each field at fault (``messages[0].content[1].text: Input should be a valid
string``) and whose details list them. Unknown extra fields are ignored, as the
OpenAI API does, so a client that sends ``temperature`` still works.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from apprentice.gateway import errors, tags

__all__ = [
    "MODELS",
    "VERSION_PATTERN",
    "ChatCompletionRequest",
    "ChatMessage",
    "ContentPart",
    "RegisterVersion",
    "StreamOptions",
    "TaskRequest",
    "TrainingFinished",
    "parse",
    "task_request",
]

#: ``v<N>``: at most nine ASCII digits, so the number always fits the store's integer.
VERSION_PATTERN = r"^v[0-9]{1,9}$"

M = TypeVar("M", bound=BaseModel)

#: Per-request tags within OpenAI's limits on ``metadata`` (see gateway.tags).
Tags = dict[
    Annotated[str, StringConstraints(min_length=1, max_length=tags.MAX_KEY)],
    Annotated[str, StringConstraints(max_length=tags.MAX_VALUE)],
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class TaskRequest(_Body):
    """``POST /v1/tasks/{task}``."""

    input: dict[str, Any] = Field(description="The task input; must match the task's schema.")
    metadata: Tags | None = Field(
        default=None,
        max_length=tags.MAX_TAGS,
        description="Tags stored with the request (customer=acme).",
    )
    stream: bool | None = Field(
        default=None,
        description="Answer as Server-Sent Events: {delta} events with the teacher's text as "
        "it is produced (none when the answer was not streamed), then one event with output "
        "and request_id once the answer is validated and stored, then data: [DONE].",
    )


class ContentPart(_Body):
    """One part of a message's content; only ``text`` parts carry the input."""

    type: str = Field(description='"text" parts are joined; other parts are ignored.')
    text: str | None = Field(default=None, description="The text of a text part.")


class ChatMessage(_Body):
    role: str = Field(description='"user", "system", "assistant", ...')
    content: str | list[ContentPart] | None = Field(
        default=None, description="Text, or a list of content parts."
    )


class StreamOptions(_Body):
    """``stream_options`` of a chat completion (OpenAI's)."""

    include_usage: bool | None = Field(
        default=None, description="End the stream with a chunk carrying usage, no choices."
    )


class ChatCompletionRequest(_Body):
    """``POST /v1/chat/completions``: ``model`` names the task, the last user message is
    the task input as JSON text."""

    model: str = Field(description="The task name.")
    messages: list[ChatMessage] = Field(
        min_length=1, description="The last user message holds the task input as JSON."
    )
    stream: bool | None = Field(
        default=None,
        description="Answer as Server-Sent Events of chat.completion.chunk objects ending with "
        "data: [DONE]: the teacher's (or a server student's) text token by token as it is "
        "produced, validated and stored once it is whole (else the answer in pieces once "
        "stored); a failure after the first chunk is one error event.",
    )
    metadata: Tags | None = Field(
        default=None,
        max_length=tags.MAX_TAGS,
        description="Tags stored with the request (OpenAI's).",
    )
    stream_options: StreamOptions | None = Field(
        default=None, description="With stream: include_usage adds a last chunk with usage."
    )


class RegisterVersion(_Body):
    """``POST /admin/tasks/{task}/versions``: record a trained adapter as a candidate."""

    path: str = Field(min_length=1, description="The adapter directory.")
    metrics: dict[str, Any] | None = Field(
        default=None, description="Training metrics to keep with the version."
    )
    version: str | None = Field(
        default=None,
        pattern=VERSION_PATTERN,
        description="Its name, v<N> (N up to 9 digits); the next free one if omitted.",
    )


class TrainingFinished(_Body):
    """``POST /admin/tasks/{task}/training/finished``."""

    ok: bool = Field(description="Whether the training run produced a version.")
    reason: str | None = Field(default=None, description="Why it failed, if it did.")


MODELS: tuple[type[BaseModel], ...] = (
    TaskRequest,
    ContentPart,
    ChatMessage,
    StreamOptions,
    ChatCompletionRequest,
    RegisterVersion,
    TrainingFinished,
)


def task_request(body: dict[str, Any]) -> tuple[dict[str, Any], Tags | None, bool | None]:
    """``body`` as a :class:`TaskRequest`'s ``input``, ``metadata`` and ``stream``. The usual
    bodies, ``{"input": {...}}`` with or without ``metadata`` within :data:`Tags`' limits,
    always fit the model and are taken as they are (its validation only copies them: 1.1 to
    1.2 us a request); any other goes through :func:`parse`, with its 400s."""
    task_input = body.get("input")
    if type(task_input) is dict:
        if len(body) == 1:
            return task_input, None, None
        metadata = body.get("metadata")
        if len(body) == 2 and tags.fits(metadata):
            return task_input, metadata, None
    parsed = parse(TaskRequest, body)
    return parsed.input, parsed.metadata, parsed.stream


def _where(loc: tuple[int | str, ...]) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return text or "<body>"


def parse(model: type[M], body: dict[str, Any]) -> M:
    """``body`` as ``model``, or a 400 naming every field at fault."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = [
            # Union members repeat the location with a tag (str | list[...]); keep the
            # path a client wrote, not pydantic's internal branch names.
            {"path": _where(tuple(p for p in e["loc"] if p not in _BRANCHES)), "message": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        unique = [
            p
            for p in {(p["path"], p["message"]): p for p in problems}.values()
            # A union's other branch failing higher up only adds noise: keep the deepest.
            if not any(q["path"].startswith((p["path"] + ".", p["path"] + "[")) for q in problems)
        ]
        raise errors.BadRequest(
            f"request body does not match {model.__name__}: "
            + "; ".join(f"{p['path']}: {p['message']}" for p in unique[:5]),
            details=unique,
        ) from None


_BRANCHES = frozenset(
    {"str", "list[ContentPart]", "none", "literal[False]", "dict[str,any]", "constrained-float"}
)
