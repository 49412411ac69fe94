"""Failed calls -> the gateway's typed errors (the contract's 502/503 with a reason).

Provider errors arrive as the teachers' taxonomy; the reason a caller sees is the
taxonomy's class name (AuthError, RateLimited, ...). Transient causes answer 503
(retry later): every error the teachers' HTTP policy would retry (rate limits,
overload, timeouts, provider 5xx, connection refused), with the provider's own
back-off passed on as ``Retry-After`` when it sent one. Permanent ones answer 502.
Messages come from the teachers' scrubbed messages, so no key can leak through them.
"""

from __future__ import annotations

from apprentice.gateway import errors
from apprentice.students import base as students
from apprentice.teachers import errors as teacher_errors


def reason(exc: BaseException) -> str:
    """The contract's typed reason for a teacher failure."""
    if isinstance(exc, TimeoutError):
        return "Timeout"
    if isinstance(exc, teacher_errors.TeacherError):
        for cls in type(exc).__mro__:
            if cls.__name__ in errors.PROVIDER_REASONS:
                return cls.__name__
    return "ProviderError"


def teacher_error(exc: BaseException) -> errors.TeacherUnavailable:
    why = reason(exc)
    if isinstance(exc, teacher_errors.TeacherError):
        retryable, after = exc.retryable, exc.retry_after_s
    else:
        retryable, after = isinstance(exc, TimeoutError), None
    # A message from outside the taxonomy (a bug's str) is scrubbed like a provider's.
    message = teacher_errors.scrub(str(exc)) or why
    return errors.TeacherUnavailable(why, message, retryable=retryable, retry_after_s=after)


def student_error(res: object) -> errors.StudentUnavailable:
    """The student could not answer and the teacher could not be asked instead."""
    if isinstance(res, students.StudentAnswer):
        why, msg = "InvalidOutput", res.error or "invalid output"
    elif isinstance(res, BaseException):
        why = "Timeout" if isinstance(res, TimeoutError) else type(res).__name__
        msg = str(res) or why
    else:
        why, msg = "NoStudent", "no student"
    return errors.StudentUnavailable(
        why, f"{msg}; the teacher could not be asked instead (budget exhausted)"
    )
