"""What a teacher call may have cost, attempt by attempt, and who must cover a retry.

A provider bills calls, not answers: an answer that breaks the schema, the
repair request after it, an attempt that timed out while the model ran, a 5xx
after the request was sent. :class:`Bill` adds them up for one logical call:

- an answered attempt adds its priced usage (``known``);
- an attempt that may have been billed without saying for how much (a read
  timeout, a dropped connection, a 5xx, an answer without usage or with odd
  token counts) adds the worst case of that attempt (``unknown``);
- an attempt that cannot have been billed (connection refused, a 4xx) adds 0.

Before every attempt after the first, the call asks its :class:`Cover` (set by
the gateway in :data:`current` for the request) to make sure its budget
reservation covers the bill so far plus that attempt's worst case. If the cap
has no room, the call stops instead of retrying, so retries never cross a cap.
Without a cover (scripts, the CLI, unit tests) every retry is allowed.
"""

from __future__ import annotations

import contextvars
import math
from dataclasses import dataclass
from typing import Protocol

from apprentice.teachers.base import Usage
from apprentice.teachers.errors import ProviderError, TeacherError
from apprentice.teachers.transport import ConnectError, TransportError

__all__ = ["MAX_TOKENS", "Bill", "Cover", "charge", "check_usage", "current", "may_have_billed"]

MAX_TOKENS = 50_000_000
"""More tokens than any model bills for one call: a larger count is a provider bug."""


class Cover(Protocol):
    """The budget side of a call: grows its reservation so ``bill`` may reach ``total``.

    Several calls may share one reservation (a panel of judges): the cover adds
    up the totals of every bill it has seen.
    """

    async def cover(self, bill: Bill, total: float) -> bool: ...


current: contextvars.ContextVar[Cover | None] = contextvars.ContextVar(
    "apprentice_budget_cover", default=None
)


@dataclass(eq=False)
class Bill:
    """Money one logical teacher call may have cost so far (USD)."""

    known: float = 0.0
    unknown: float = 0.0
    attempts: int = 0

    @property
    def total(self) -> float:
        return self.known + self.unknown

    async def allow(self, next_attempt_worst: float) -> bool:
        """Whether the next attempt may go: the reservation covers it, or there is no cap."""
        cover = current.get()
        if cover is None:
            return True
        return await cover.cover(self, self.total + next_attempt_worst)


def charge(error: TeacherError, bill: Bill) -> TeacherError:
    """Put what the call may have cost on the error it fails with (read by the gateway)."""
    error.cost = bill.total
    return error


def may_have_billed(error: TeacherError, cause: BaseException | None) -> bool:
    """Whether a failed attempt can have been billed (the model may have run)."""
    if isinstance(cause, ConnectError):  # and ConnectTimeout: no connection in time
        return False  # the request never reached the provider
    if isinstance(cause, TransportError):
        return True  # sent, then the connection or the read failed: the model may have run
    status = error.status
    if status is None:
        return True
    return status >= 500 or 200 <= status < 300  # a 2xx that failed to parse: the model ran


def check_usage(usage: Usage, provider: str) -> str | None:
    """Why ``usage`` cannot be believed (negative, absurd), or ``None``."""
    for name, value in (("input", usage.input_tokens), ("output", usage.output_tokens)):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} token count {value!r} is not an integer"
        if value < 0 or value > MAX_TOKENS:
            return f"{name} token count {value} is impossible"
    return None


def odd_usage(provider: str, why: str, cost: float) -> ProviderError:
    """The error for a provider that reports usage it cannot have billed."""
    error = ProviderError(
        f"the provider reported {why}; booked at the call's worst case, not refunded. "
        "Report it to the provider",
        provider=provider,
    )
    error.cost = cost
    return error


def finite(value: float) -> bool:
    return math.isfinite(value) and value >= 0
