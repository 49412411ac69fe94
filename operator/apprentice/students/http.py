"""What the HTTP student backends share: one client, one error translation.

Every transport failure becomes :class:`~apprentice.students.base.StudentUnavailable`
with the backend's name and the URL path (never headers: they may carry keys).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from apprentice import prompts
from apprentice.config import LocalConfig, TaskConfig
from apprentice.students.base import StudentAnswer, StudentUnavailable, answer_from_text
from apprentice.teachers import streaming
from apprentice.teachers.base import TextSink, Usage

__all__ = ["HTTPStudentBase", "ModelMissing", "server_usage"]


def server_usage(body: object) -> Usage | None:
    """An OpenAI-compatible answer's ``usage`` (vLLM and llama.cpp report the tokens their
    tokenizer counted); ``None`` when the server sent none or something else."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 <= completion:
        return Usage(prompt, completion)
    return None


class ModelMissing(StudentUnavailable):
    """The server answered 404 for the model asked: it does not hold that version now."""


class HTTPStudentBase:
    """A student served over HTTP; subclasses say how to ask it."""

    backend = "http"
    #: How to bring the server up; appended to "unreachable" errors.
    start_hint = "is the server running?"

    def __init__(
        self,
        local: LocalConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        base_url: str | None = None,
    ) -> None:
        url = base_url or local.base_url
        if not url:
            raise ValueError(f"local.backend {self.backend} needs local.base_url")
        self.local = local
        self.base_url = url.rstrip("/")
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(local.timeout_s, connect=min(10.0, local.timeout_s)),
            transport=transport,
        )
        self._active: str | None = None

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: object = None,
        content: bytes | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """Send one request; transport errors and unexpected 5xx become StudentUnavailable."""
        try:
            response = await self._client.request(
                method, self.url(path), json=json_body, content=content
            )
        except httpx.TimeoutException as exc:
            raise StudentUnavailable(
                f"{self.backend} student timed out after {self.local.timeout_s}s on {path}"
            ) from exc
        except httpx.HTTPError as exc:
            raise StudentUnavailable(
                f"{self.backend} student at {self.base_url} is unreachable ({type(exc).__name__}); "
                f"{self.start_hint}"
            ) from exc
        if response.status_code >= 500 and response.status_code not in ok:
            raise StudentUnavailable(
                f"{self.backend} student answered {response.status_code} on {path}: "
                f"{error_message(response)}"
            )
        return response

    async def chat_completion(
        self, task: TaskConfig, task_input: dict[str, Any], model: str, sink: TextSink | None = None
    ) -> StudentAnswer:
        """One answer from an OpenAI-compatible server (vLLM, llama.cpp), JSON-constrained;
        with ``sink``, streamed to it as generated (validated once whole)."""
        started = self.now()
        body: dict[str, Any] = {
            "model": model,
            "messages": prompts.build_messages(task, task_input),
            "temperature": 0,
            "max_tokens": self.local.max_new_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": task.name, "schema": task.output_schema},
            },
        }
        if sink is not None:
            text, usage = await self._streamed(body, sink)
            return self.answer(task, text, started, usage)
        response = await self.request("POST", "/v1/chat/completions", json_body=body)
        self._refused(response, model)
        try:
            body = response.json()
            text = body["choices"][0]["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise StudentUnavailable(
                f"{self.backend} answered without choices[0].message.content"
            ) from exc
        return self.answer(task, str(text), started, server_usage(body))

    def _refused(self, response: httpx.Response, model: str) -> None:
        """A chat answer that is not a 200: the model is missing, or the server failed."""
        if response.status_code == 404:
            raise ModelMissing(
                f"{self.backend} does not know the model {model!r}: {error_message(response)}; "
                "the server restarted or the version was unloaded: promote or roll back to "
                "load it again"
            )
        if response.status_code != 200:
            raise StudentUnavailable(
                f"{self.backend} answered {response.status_code}: {error_message(response)}"
            )

    async def _streamed(self, body: dict[str, Any], sink: TextSink) -> tuple[str, Usage | None]:
        """The answer's text read as the server streams it (OpenAI's chunk events, as the
        teacher's: :mod:`apprentice.teachers.streaming`), each piece to ``sink``."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        reader, decoder = streaming.OpenAIReader(), streaming.SseDecoder()
        try:
            async with self._client.stream("POST", self.url("/v1/chat/completions"),
                                           json=body) as response:  # fmt: skip
                if response.status_code != 200:
                    await response.aread()
                    self._refused(response, str(body["model"]))
                async for chunk in response.aiter_bytes():
                    for event in decoder.feed(chunk):
                        piece = reader.read(event)
                        if piece:
                            sink(piece)
        except httpx.HTTPError as exc:
            raise StudentUnavailable(
                f"{self.backend} student's stream failed ({type(exc).__name__}); {self.start_hint}"
            ) from exc
        except streaming.StreamFailure as exc:
            raise StudentUnavailable(f"{self.backend} student's stream failed: {exc}") from exc
        if not reader.complete:
            raise StudentUnavailable(f"{self.backend} student's stream ended before [DONE]")
        result = reader.result()
        usage = result.usage if result.usage.total_tokens else None
        return result.text, usage

    def answer(
        self, task: TaskConfig, text: str, started: float, usage: Usage | None = None
    ) -> StudentAnswer:
        return answer_from_text(task, text, version=self._active, started=started, usage=usage)

    def active_version(self) -> str | None:
        return self._active

    async def aclose(self) -> None:
        await self._client.aclose()

    @staticmethod
    def now() -> float:
        return time.perf_counter()


def error_message(response: httpx.Response) -> str:
    """The server's error text: ``{"error": {"message"}}``, ``{"error": str}`` or the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300]
    if isinstance(body, dict):
        err = body.get("error", body.get("message", body.get("detail")))
        if isinstance(err, dict):
            return str(err.get("message", err))[:300]
        if err is not None:
            return str(err)[:300]
    return str(body)[:300]
