"""Budget caps and the calendar windows they apply to (pure; times are Unix seconds).

Scopes are each task and the global scope (:data:`GLOBAL`); windows are the
calendar day, ISO week and calendar month in the configured IANA time zone
(default UTC). :mod:`apprentice.engine.budget` keeps the ledger against them.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apprentice.config import ApprenticeConfig, BudgetCaps

__all__ = [
    "GLOBAL",
    "WINDOWS",
    "BudgetLimits",
    "Caps",
    "Window",
    "capped_windows",
    "keys_at",
    "window_bounds",
    "window_keys",
]

GLOBAL = "*"  # the scope of the global caps (task names never contain '*')


class Window(enum.StrEnum):
    day = "day"
    week = "week"
    month = "month"


WINDOWS = (Window.day, Window.week, Window.month)


@dataclass(frozen=True, slots=True)
class Caps:
    """Caps per window in the budget currency; ``None`` is uncapped."""

    daily: float | None = None
    weekly: float | None = None
    monthly: float | None = None

    @classmethod
    def from_config(cls, caps: BudgetCaps) -> Caps:
        return cls(caps.daily, caps.weekly, caps.monthly)

    def get(self, window: Window) -> float | None:
        if window is Window.day:
            return self.daily
        if window is Window.week:
            return self.weekly
        return self.monthly


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    global_caps: Caps = Caps()
    task_caps: Mapping[str, Caps] = field(default_factory=dict)
    timezone: str = "UTC"
    currency: str = "USD"
    _capped: Mapping[str, tuple[tuple[int, Window, float], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_config(cls, cfg: ApprenticeConfig) -> BudgetLimits:
        b = cfg.budget
        return cls(
            global_caps=Caps(b.daily, b.weekly, b.monthly),
            task_caps={t.name: Caps.from_config(t.budget) for t in cfg.tasks},
            timezone=b.timezone,
            currency=b.currency,
        )

    def caps(self, scope: str) -> Caps:
        return self.global_caps if scope == GLOBAL else self.task_caps.get(scope, Caps())

    def capped(self, scope: str) -> tuple[tuple[int, Window, float], ...]:
        """``(key position, window, cap)`` for each capped window of a scope."""
        found = self._capped.get(scope)
        return _capped(self.caps(scope)) if found is None else found

    def __post_init__(self) -> None:
        table = {name: _capped(caps) for name, caps in self.task_caps.items()}
        table[GLOBAL] = _capped(self.global_caps)
        object.__setattr__(self, "_capped", table)  # derived once; the hot path reads it


def capped_windows(caps: Caps) -> tuple[tuple[int, Window, float], ...]:
    """``(key position, window, cap)`` of each capped window of ``caps`` (memoised)."""
    return _capped(caps)


@lru_cache(maxsize=1024)
def _capped(caps: Caps) -> tuple[tuple[int, Window, float], ...]:
    out = []
    for i, w in enumerate(WINDOWS):
        cap = caps.get(w)
        if cap is not None:
            out.append((i, w, cap))
    return tuple(out)


@lru_cache(maxsize=4096)
def keys_at(tz: str, minute: int) -> tuple[str, str, str]:
    local = datetime.fromtimestamp(minute * 60, UTC).astimezone(ZoneInfo(tz))
    year, week, _ = local.isocalendar()
    return (
        f"{local.year:04d}-{local.month:02d}-{local.day:02d}",
        f"{year:04d}-W{week:02d}",
        f"{local.year:04d}-{local.month:02d}",
    )


def window_keys(limits: BudgetLimits, now: float) -> dict[Window, str]:
    """Day/ISO-week/month keys of ``now`` in the ledger's zone; they sort chronologically."""
    d, w, m = key_tuple(limits, now)
    return {Window.day: d, Window.week: w, Window.month: m}


def key_tuple(limits: BudgetLimits, now: float) -> tuple[str, str, str]:
    """:func:`window_keys`' values in ``WINDOWS``' order, without the dict (the hot path's).

    Zone offsets are whole minutes, so keys are memoised per minute.
    """
    return keys_at(limits.timezone, math.floor(now / 60.0))


def window_bounds(limits: BudgetLimits, now: float) -> dict[Window, tuple[float, float]]:
    """``[start, end)`` in Unix seconds of the current day, ISO week and month in the zone.

    The end is when a cap of that window resets. Computed from wall-clock dates
    in the zone, so a DST change makes a day 23 or 25 hours long, as it should.
    """
    zone = ZoneInfo(limits.timezone)
    local = datetime.fromtimestamp(now, UTC).astimezone(zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    week = day - timedelta(days=day.weekday())
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)

    def ts(naive: datetime) -> float:
        return naive.replace(tzinfo=zone).timestamp()

    return {
        Window.day: (ts(day), ts(day + timedelta(days=1))),
        Window.week: (ts(week), ts(week + timedelta(days=7))),
        Window.month: (ts(month), ts(next_month)),
    }
