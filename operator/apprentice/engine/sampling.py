"""Sampling: how often the teacher is asked too, and which requests.

The rate is a function of the phase and of the confidence (the mean agreement of
the rolling window):

- phase 1 (cold start): every request goes to the teacher, rate 1.0;
- phase 2 (reinforcement): every request goes to both, rate 1.0;
- phase 3 (steady state): ``rate = curve(confidence)``.

The curve maps ``x = (confidence - coaching_trigger) / (full_confidence -
coaching_trigger)`` clipped to [0, 1] onto [min_floor, 1]:

- ``linear``:      ``floor + (1 - floor) * (1 - x)``
- ``exponential``: ``floor ** x`` (geometric: each step of confidence divides the rate)
- ``step``:        1.0 below x = 1/3, ``max(floor, 0.25)`` below x = 2/3, then the floor.

``full_confidence`` is half way between ``phase2_to_phase3`` and 1 (0.925 for
0.85): a task that just graduated still samples noticeably, and a student that
agrees 97% of the time sits on the floor. Linear and exponential are continuous
and non-increasing in confidence; all three equal 1.0 at ``coaching_trigger``, so
entering coaching (rate 1.0 below ``coaching_trigger``) does not jump.

A falling trend (fast minus slow moving average below ``-trend_sensitivity``)
evaluates the curve at ``confidence + trend`` instead: the rate reacts to where
agreement is heading before the window mean gets there.

The per-request decision is ``uniform(request_id) < rate`` where ``uniform`` is
a blake2b hash of the request id: the same request under the same rate always
gets the same answer (replays, retries and the simulator agree with production).
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass

from apprentice.config import ConfidenceThresholds, DecayFunction, SamplingConfig

__all__ = [
    "Mode",
    "Sampling",
    "SamplingPolicy",
    "curve",
    "decide",
    "rate",
    "sampled",
    "uniform",
]


class Mode(enum.StrEnum):
    """Why the rate is what it is (status and metrics show it)."""

    teacher_only = "teacher_only"  # phase 1: no student yet
    both = "both"  # phase 2: every request compared
    curve = "curve"  # phase 3: the decay curve
    raised = "raised"  # phase 3: the curve at a falling trend's projection
    alert = "alert"  # phase 3: re-measuring after a drift/shift alarm
    coaching = "coaching"  # phase 3: confidence under coaching_trigger
    emergency = "emergency"  # confidence under emergency_threshold: the teacher serves


@dataclass(frozen=True, slots=True)
class SamplingPolicy:
    """The knobs of the rate, resolved from config for one task."""

    decay_function: DecayFunction = DecayFunction.exponential
    min_floor: float = 0.02
    trend_sensitivity: float = 0.05
    coaching_trigger: float = 0.70
    emergency_threshold: float = 0.50
    full_confidence: float = 0.925

    @classmethod
    def from_config(
        cls, sampling: SamplingConfig, thresholds: ConfidenceThresholds
    ) -> SamplingPolicy:
        """Resolve the task's effective sampling block and thresholds."""
        return cls(
            decay_function=sampling.decay_function,
            min_floor=sampling.min_floor,
            trend_sensitivity=sampling.trend_sensitivity,
            coaching_trigger=thresholds.coaching_trigger,
            emergency_threshold=thresholds.emergency_threshold,
            full_confidence=(thresholds.phase2_to_phase3 + 1.0) / 2.0,
        )


@dataclass(frozen=True, slots=True)
class Sampling:
    """A rate and the reason for it."""

    rate: float
    mode: Mode


def curve(policy: SamplingPolicy, confidence: float) -> float:
    """The decay curve alone: 1.0 at ``coaching_trigger``, the floor at ``full_confidence``."""
    floor = policy.min_floor
    span = policy.full_confidence - policy.coaching_trigger
    x = (confidence - policy.coaching_trigger) / span if span > 0 else 1.0
    x = 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x
    fn = policy.decay_function
    if fn is DecayFunction.linear:
        value = floor + (1.0 - floor) * (1.0 - x)
    elif fn is DecayFunction.exponential:
        value = floor**x
    elif x < 1.0 / 3.0:
        value = 1.0
    elif x < 2.0 / 3.0:
        value = max(floor, 0.25)
    else:
        value = floor
    # Rounding must never take the rate under the floor or over 1.
    return min(1.0, max(floor, value))


def decide(
    policy: SamplingPolicy,
    phase: int,
    confidence: float | None,
    trend: float = 0.0,
    *,
    alert: bool = False,
    lower_bound: float | None = None,
) -> Sampling:
    """The rate for a task in ``phase`` (1, 2 or 3) with this confidence and trend.

    Coaching and emergency follow the mean ``confidence``; the position on the decay
    curve follows ``lower_bound`` when given, so the teacher is withdrawn only as fast
    as the evidence accumulates: right after graduation the bound sits near
    ``phase2_to_phase3`` and the rate starts well above the floor, then falls as
    comparisons confirm the agreement, instead of jumping from 1.0 to the floor.
    """
    if phase == 1:
        return Sampling(1.0, Mode.teacher_only)
    if phase == 2:
        return Sampling(1.0, Mode.both)
    if confidence is None or math.isnan(confidence):
        # No measurement: measure everything rather than guess.
        return Sampling(1.0, Mode.alert)
    if confidence < policy.emergency_threshold:
        return Sampling(1.0, Mode.emergency)
    if confidence < policy.coaching_trigger:
        return Sampling(1.0, Mode.coaching)
    if alert:
        return Sampling(1.0, Mode.alert)
    position = confidence if lower_bound is None or math.isnan(lower_bound) else lower_bound
    if trend < -policy.trend_sensitivity:
        return Sampling(curve(policy, position + trend), Mode.raised)
    return Sampling(curve(policy, position), Mode.curve)


def rate(
    policy: SamplingPolicy,
    phase: int,
    confidence: float | None,
    trend: float = 0.0,
    *,
    alert: bool = False,
) -> float:
    """Shorthand for ``decide(...).rate``."""
    return decide(policy, phase, confidence, trend, alert=alert).rate


_SCALE = float(1 << 64)


def uniform(request_id: str) -> float:
    """A stable pseudo-random number in [0, 1) for a request id (blake2b, 64 bits)."""
    digest = hashlib.blake2b(request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def sampled(request_id: str, rate: float) -> bool:
    """Whether this request is also sent to the teacher at this rate."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    return uniform(request_id) < rate
