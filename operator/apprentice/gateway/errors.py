"""The gateway's error tree: every failure a caller can see, with its HTTP status.

::

    GatewayError                      status  type
    ├── BadRequest                    400     bad_request
    ├── Unauthorized                  401     unauthorized
    │   ├── ApiKeyMissing             401     api_key_missing
    │   └── ApiKeyInvalid             401     api_key_invalid
    ├── Forbidden                     403     forbidden
    │   ├── ApiKeyRevoked             403     api_key_revoked
    │   └── ApiKeyWrongTask           403     api_key_wrong_task
    ├── NotFound                      404     not_found
    │   ├── UnknownTask               404     unknown_task
    │   └── UnknownRequest            404     unknown_request  (feedback on an unknown id)
    ├── MethodNotAllowed              405     method_not_allowed  (answered for aiohttp's router)
    ├── BodyTimeout (gateway.reading) 408     request_timeout
    ├── Conflict                      409     conflict
    │   └── FeedbackUnavailable       409     feedback_unavailable  (request input not kept)
    ├── TooLarge                      413     too_large
    ├── InvalidInput                  422     invalid_input
    │   └── InvalidCorrection         422     invalid_correction  (feedback output vs schema)
    ├── BudgetExhausted               429     budget_exhausted
    │   └── KeyBudgetExhausted        429     key_budget_exhausted  (an API key's own budget)
    ├── RateLimited                   429     rate_limited  (an API key's rate_per_s)
    ├── TeacherUnavailable            502|503 teacher_unavailable  (details.reason: AuthError, ...)
    ├── StreamBroken                  (502)   stream_broken  (only as a stream's last event)
    ├── StudentUnavailable            503     student_unavailable
    ├── Overloaded                    503     overloaded
    ├── StoreUnavailable (settling)   503     store_unavailable  (paid answer in details.output)
    └── StartupError                  -       the app cannot start (config, key, store)

The tree is the one list of error types: :func:`error_types` walks it for the
OpenAPI document and the errors reference (an unhandled exception answers 500
``internal_error``, the root's type).

Every 503 carries ``Retry-After``: the provider's own back-off when the teacher
reported one (``retry_after_s``), else one second; so does a 429 ``rate_limited``.

The Python facade raises the same classes the HTTP layer renders, so a script
and an HTTP client see the same failure with the same words. Messages never carry
secrets: provider errors are re-worded here from their type, status and message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from apprentice.config.errors import docs_url

__all__ = [
    "ApiKeyInvalid",
    "ApiKeyMissing",
    "ApiKeyRevoked",
    "ApiKeyWrongTask",
    "BadRequest",
    "BudgetExhausted",
    "Conflict",
    "FeedbackUnavailable",
    "Forbidden",
    "GatewayError",
    "InvalidCorrection",
    "InvalidInput",
    "KeyBudgetExhausted",
    "MethodNotAllowed",
    "NotFound",
    "Overloaded",
    "RateLimited",
    "StartupError",
    "StreamBroken",
    "StudentUnavailable",
    "TeacherUnavailable",
    "TooLarge",
    "Unauthorized",
    "UnknownRequest",
    "UnknownTask",
    "error_types",
]

#: Typed reasons a provider call can fail with (the teachers' error taxonomy).
PROVIDER_REASONS = (
    "AuthError",
    "RateLimited",
    "Overloaded",
    "QuotaExhausted",
    "BadRequest",
    "Timeout",
    "InvalidOutput",
    "ProviderError",
)


class GatewayError(Exception):
    """A failure with an HTTP status, a stable type code, a message and optional details."""

    status: int = 500
    type: str = "internal_error"
    over_http: ClassVar[bool] = True  # False: never an HTTP answer (the app does not start)

    retry_after_s: float | None = None
    """For a 503: how long the caller should wait, when known (else one second)."""

    def __init__(self, message: str, *, details: object = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if status is not None:
            self.status = status

    @property
    def docs(self) -> str:
        """The link to this error type's entry (cause and fix) in the errors reference."""
        return docs_url("gateway", self.type)

    def body(self) -> dict[str, object]:
        """The JSON error body of the contract; ``docs`` links to the type's entry."""
        return {
            "error": {
                "type": self.type,
                "message": self.message,
                "details": self.details,
                "docs": self.docs,
            }
        }


class BadRequest(GatewayError):
    status = 400
    type = "bad_request"


class Unauthorized(GatewayError):
    status = 401
    type = "unauthorized"


class ApiKeyMissing(Unauthorized):
    """API keys are required (``gateway.require_api_keys``) and the request sent none."""

    type = "api_key_missing"


class ApiKeyInvalid(Unauthorized):
    """The bearer token is not a key this gateway issued (never echoed back)."""

    type = "api_key_invalid"


class Forbidden(GatewayError):
    status = 403
    type = "forbidden"


class ApiKeyRevoked(Forbidden):
    """The key was revoked; only its public id is named."""

    type = "api_key_revoked"


class ApiKeyWrongTask(Forbidden):
    """The key is valid but scoped to other tasks."""

    type = "api_key_wrong_task"


class NotFound(GatewayError):
    status = 404
    type = "not_found"


class UnknownTask(NotFound):
    type = "unknown_task"

    def __init__(self, task: str, known: list[str]) -> None:
        super().__init__(
            f"no task named {task!r}; configured tasks: {', '.join(known) or '(none)'}",
            details={"task": task, "tasks": known},
        )


class UnknownRequest(NotFound):
    """Feedback names a request id this gateway's store does not hold: never recorded, or
    pruned after ``store.request_retention_days`` (``retention_days``; None: kept forever)."""

    type = "unknown_request"

    def __init__(self, request_id: str, retention_days: float | None = None) -> None:
        aged = (
            f", or it is older than the store's {retention_days:g}-day retention "
            "(store.request_retention_days) and was pruned"
            if retention_days
            else ""
        )
        super().__init__(
            f"no request with id {request_id!r}{aged} (use the request_id a task or chat "
            "answer gave)",
            details={"request_id": request_id},
        )


class MethodNotAllowed(GatewayError):
    """The path exists but not with this method (aiohttp's router decides; ``http`` answers)."""

    status = 405
    type = "method_not_allowed"


class Conflict(GatewayError):
    status = 409
    type = "conflict"


class FeedbackUnavailable(Conflict):
    """A correction on a request whose input the store does not hold (recorded before it
    kept them; see :mod:`apprentice.gateway.feedback`): a score is still accepted."""

    type = "feedback_unavailable"


class TooLarge(GatewayError):
    status = 413
    type = "too_large"


class InvalidInput(GatewayError):
    status = 422
    type = "invalid_input"


class InvalidCorrection(InvalidInput):
    """A feedback ``output`` that does not match the task's output schema (paths in details)."""

    type = "invalid_correction"


class BudgetExhausted(GatewayError):
    status = 429
    type = "budget_exhausted"


class KeyBudgetExhausted(BudgetExhausted):
    """The calling API key's own budget (``budget`` on ``POST /admin/keys``) is at its cap;
    ``details`` name the key, the window, the cap and ``resets_at``."""

    type = "key_budget_exhausted"


class RateLimited(GatewayError):
    """An API key made more requests than its ``rate_per_s``; ``Retry-After`` says when."""

    status = 429
    type = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, details: object = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class TeacherUnavailable(GatewayError):
    """The teacher failed and no student could answer; ``details.reason`` is the typed cause."""

    status = 502
    type = "teacher_unavailable"

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        # Transient causes (rate limits, overload, timeouts, provider 5xx, an unreachable
        # provider) are 503 so clients retry; permanent ones (auth, quota, bad request,
        # invalid output) are 502.
        super().__init__(
            f"teacher failed ({reason}): {message}",
            details={"reason": reason},
            status=503 if retryable else 502,
        )
        self.reason = reason
        if retryable:
            self.retry_after_s = retry_after_s


class StreamBroken(GatewayError):
    """A ``stream=true`` answer whose text went out is not the answer that was stored.

    Its streamed text failed validation, or its stream broke off, after the first byte,
    and the request was answered otherwise (the teacher stepped in; stored and booked).
    The client already has a 200 and text it must not use, so this is never a status: it
    is the stream's last event (:mod:`apprentice.gateway.streaming`), with no ``[DONE]``.
    """

    status = 502
    type = "stream_broken"

    def __init__(self, request_id: str) -> None:
        super().__init__(
            "the streamed answer is not the one that was validated (it failed validation or "
            "its stream broke off after it started, and the request was answered otherwise, "
            f"request {request_id}); retry without stream",
            details={"request_id": request_id},
        )


class StudentUnavailable(GatewayError):
    status = 503
    type = "student_unavailable"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"student failed ({reason}): {message}", details={"reason": reason})
        self.reason = reason


class Overloaded(GatewayError):
    status = 503
    type = "overloaded"


class StartupError(GatewayError):
    """Start-up failed (a teacher without a key, an unreachable store...); says how to fix."""

    status = 503
    type = "startup_failed"
    over_http = False


def _tree(cls: type[GatewayError]) -> Iterator[type[GatewayError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _tree(sub)


def error_types() -> list[str]:
    """Every error ``type`` an HTTP caller can get, from the tree, in tree order.

    Subclasses defined in other gateway modules (``reading``, ``settling``) count
    once their module is imported; :mod:`apprentice.gateway.openapi` imports them.
    """
    found: dict[str, None] = {}
    for cls in _tree(GatewayError):
        if cls.over_http:
            found.setdefault(cls.type)
    return list(found)
