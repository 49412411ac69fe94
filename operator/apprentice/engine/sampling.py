"""Sampling: how often the teacher is asked too, and which requests.

The rate is a function of the phase and of the confidence window:

- phase 1 (cold start): every request goes to the teacher, rate 1.0;
- phase 2 (reinforcement): every request goes to both, rate 1.0;
- phase 3 (steady state): the decay curve from 1.0 down to the *target*.

The target is what the task must pay for, not a constant: the larger of
``min_floor`` and the smallest rate at which a drop from the current agreement
to ``coaching_trigger`` is detected within ``max_detection_delay`` requests with
95% probability (:mod:`apprentice.engine.detection`). With the defaults (5,000
requests, floor 0.02) a student agreeing 95% or more sits on the floor; one
agreeing 0.80 needs a quarter of its requests compared, because a drop of 0.10
takes many comparisons to tell from noise.

The decay curve shapes the fall from 1.0 to the target as evidence accumulates
after graduation. Its position is ``x = (lower - coaching_trigger) / (full -
coaching_trigger)`` clipped to [0, 1], where ``lower`` is the window's Wilson
lower bound and ``full`` the bound a *full* window at the same mean would give:
right after graduation half a window of comparisons backs the mean and the rate
is well above the target; once the window is full, ``x`` is 1 and the rate is
the target, whatever the agreement. Onto [target, 1]:

- ``linear``:      ``target + (1 - target) * (1 - x)``
- ``exponential``: ``target ** x`` (geometric: each step of evidence divides the rate)
- ``step``:        1.0 below x = 1/3, ``max(target, 0.25)`` below x = 2/3, then the target.

All three equal 1.0 at ``coaching_trigger``, so entering coaching (rate 1.0 under
``coaching_trigger``) does not jump.

A falling trend (fast minus slow moving average below ``-trend_sensitivity``)
evaluates the curve at ``lower + trend`` instead: the rate reacts to where
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
from apprentice.engine import detection
from apprentice.engine.confidence import Z95, wilson

__all__ = [
    "Mode",
    "Sampling",
    "SamplingPolicy",
    "curve",
    "decide",
    "guarantee",
    "position",
    "rate",
    "sampled",
    "target",
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
    max_detection_delay: int = 5000
    window_size: int = 100
    shift_z: float = 3.0
    shift_window: int = 10
    z: float = Z95

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
            max_detection_delay=sampling.max_detection_delay,
            window_size=sampling.window_size,
            shift_z=sampling.drift.shift_z,
            shift_window=sampling.drift.shift_window,
        )

    def comparisons_to_detect(self, agreement: float) -> int:
        """Comparisons needed to see a drop from ``agreement`` to ``coaching_trigger`` (95%)."""
        recent = max(1, min(self.shift_window, self.window_size // 2))
        return detection.comparisons_to_detect(
            agreement, self.coaching_trigger, shift_z=self.shift_z, minimum=recent
        )


@dataclass(frozen=True, slots=True)
class Sampling:
    """A rate and the reason for it."""

    rate: float
    mode: Mode


def target(policy: SamplingPolicy, agreement: float) -> float:
    """The steady-state rate at this agreement: the floor or the guarantee, the larger."""
    needed = policy.comparisons_to_detect(agreement)
    return min(
        1.0, max(policy.min_floor, detection.rate_for_delay(needed, policy.max_detection_delay))
    )


def guarantee(policy: SamplingPolicy, agreement: float, rate: float) -> int | None:
    """Requests within which a drop to ``coaching_trigger`` is detected at ``rate`` (95%)."""
    return detection.detection_delay(policy.comparisons_to_detect(agreement), rate)


def position(policy: SamplingPolicy, mean: float, lower_bound: float | None) -> float:
    """How far the evidence has carried the rate from 1.0 (0) to the target (1).

    ``lower_bound`` against the bound a full window at ``mean`` gives; without a
    bound the mean is taken as fully established.
    """
    c = policy.coaching_trigger
    pos = mean if lower_bound is None or math.isnan(lower_bound) else lower_bound
    full = wilson(mean, policy.window_size, policy.z)[0]
    if pos <= c:
        return 0.0
    if full <= c or pos >= full:
        return 1.0
    return (pos - c) / (full - c)


def curve(policy: SamplingPolicy, x: float, floor: float) -> float:
    """The decay curve alone: 1.0 at ``x = 0``, ``floor`` (the target) at ``x = 1``."""
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
    # Rounding must never take the rate under the target or over 1.
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

    Coaching and emergency follow the mean ``confidence``, and so does the
    target (what the guarantee needs at this agreement); the position on the
    decay curve follows ``lower_bound`` when given, so the teacher is withdrawn
    only as fast as the evidence accumulates.
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
    floor = target(policy, confidence)
    if trend < -policy.trend_sensitivity:
        base = confidence if lower_bound is None or math.isnan(lower_bound) else lower_bound
        x = position(policy, confidence, base + trend)
        return Sampling(curve(policy, x, floor), Mode.raised)
    return Sampling(curve(policy, position(policy, confidence, lower_bound), floor), Mode.curve)


def rate(
    policy: SamplingPolicy,
    phase: int,
    confidence: float | None,
    trend: float = 0.0,
    *,
    alert: bool = False,
    lower_bound: float | None = None,
) -> float:
    """Shorthand for ``decide(...).rate``."""
    return decide(policy, phase, confidence, trend, alert=alert, lower_bound=lower_bound).rate


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
