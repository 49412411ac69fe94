"""Sampling: properties of the rate curve, the detection guarantee and the per-request draw."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprentice.config import DecayFunction
from apprentice.engine import detection, sampling
from apprentice.engine.confidence import wilson

confidences = st.floats(0.0, 1.0, allow_nan=False)
trends = st.floats(-1.0, 1.0, allow_nan=False)
floors = st.floats(0.001, 1.0, allow_nan=False)
functions = st.sampled_from(list(DecayFunction))
delays = st.integers(10, 1_000_000)


def policy(
    fn: DecayFunction = DecayFunction.exponential, floor: float = 0.02, delay: int = 5000
) -> sampling.SamplingPolicy:
    return sampling.SamplingPolicy(decay_function=fn, min_floor=floor, max_detection_delay=delay)


@given(functions, floors, delays, st.sampled_from([1, 2, 3]), confidences, trends, st.booleans())
def test_rate_never_below_floor_nor_above_one(fn, floor, delay, phase, conf, trend, alert):
    rate = sampling.rate(policy(fn, floor, delay), phase, conf, trend, alert=alert)
    assert floor <= rate <= 1.0


@given(functions, floors, delays, st.floats(0.7, 1.0), confidences, trends)
def test_rate_never_below_what_the_guarantee_needs(fn, floor, delay, mean, lower, trend):
    """Whatever the evidence and trend, the steady-state rate detects a drop to
    coaching_trigger within max_detection_delay requests (95%)."""
    p = policy(fn, floor, delay)
    lower = min(lower, mean)
    rate = sampling.rate(p, 3, mean, trend, lower_bound=lower)
    needed = p.comparisons_to_detect(mean)
    assert rate >= detection.rate_for_delay(needed, delay) - 1e-12
    within = sampling.guarantee(p, mean, rate)
    assert rate == 1.0 or (within is not None and within <= delay + 1)


@given(st.floats(0.71, 1.0), st.floats(0.0, 0.7))
def test_a_larger_drop_needs_no_more_comparisons(agreement, lower):
    p = policy()
    to_trigger = p.comparisons_to_detect(agreement)
    deeper = detection.comparisons_to_detect(
        agreement, lower, shift_z=p.shift_z, minimum=p.shift_window
    )
    assert deeper <= to_trigger


@given(functions, floors, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_the_target_does_not_rise_with_agreement(fn, floor, a, b):
    lo, hi = sorted((a, b))
    p = policy(fn, floor)
    assert sampling.target(p, hi) <= sampling.target(p, lo)


@given(functions, floors, st.sampled_from([2, 3]), confidences, trends)
def test_phase_two_samples_everything(fn, floor, phase, conf, trend):
    decision = sampling.decide(policy(fn, floor), 2, conf, trend)
    assert decision.rate == 1.0
    assert decision.mode is sampling.Mode.both


@given(functions, floors, confidences, confidences, trends)
def test_rate_is_non_increasing_in_confidence(fn, floor, a, b, trend):
    lo, hi = sorted((a, b))
    p = policy(fn, floor)
    assert sampling.rate(p, 3, hi, trend) <= sampling.rate(p, 3, lo, trend)


@given(functions, st.floats(0.75, 1.0), st.integers(1, 100), st.integers(1, 100))
def test_more_evidence_never_raises_the_rate(fn, mean, a, b):
    """At a fixed mean, a fuller window (a higher lower bound) samples no more."""
    p = policy(fn)
    small, big = sorted((a, b))
    low_small, low_big = wilson(mean, small)[0], wilson(mean, big)[0]
    assert sampling.rate(p, 3, mean, lower_bound=low_big) <= sampling.rate(
        p, 3, mean, lower_bound=low_small
    )


@given(
    st.sampled_from([DecayFunction.linear, DecayFunction.exponential]),
    st.floats(0.01, 1.0),
    st.floats(0.0, 1.0),
    st.floats(-1e-4, 1e-4),
)
def test_linear_and_exponential_move_continuously(fn, floor, x, eps):
    p = policy(fn, floor)
    other = min(1.0, max(0.0, x + eps))
    # Lipschitz in x: |dr/dx| <= |ln floor| (exponential) or 1 - floor (linear).
    bound = max(1.0, abs(math.log(floor)))
    assert (
        abs(sampling.curve(p, x, floor) - sampling.curve(p, other, floor))
        <= bound * abs(eps) + 1e-12
    )


def test_curve_meets_one_and_the_target():
    for fn in DecayFunction:
        p = policy(fn, 0.02)
        assert sampling.curve(p, 0.0, 0.02) == 1.0
        assert sampling.curve(p, 1.0, 0.02) == 0.02


def test_a_full_window_at_097_sits_on_the_floor():
    """The issue's case: 97/100 has a lower bound of 0.915, and that is full evidence."""
    p = policy()
    low = wilson(0.97, 100)[0]
    assert sampling.rate(p, 3, 0.97, lower_bound=low) == 0.02
    assert sampling.target(p, 0.95) < 0.025
    # Half a window (just graduated) is still well above the floor.
    assert sampling.rate(p, 3, 0.97, lower_bound=wilson(0.97, 50)[0]) > 0.035


def test_the_target_follows_the_delay_and_the_agreement():
    # 0.97 -> 0.70 needs 71 comparisons: 86 expected to get 71 with 95%.
    p = policy(delay=1000)
    assert p.comparisons_to_detect(0.97) == 71
    assert sampling.target(p, 0.97) == pytest.approx(0.0863, abs=1e-3)
    assert sampling.guarantee(p, 0.97, 0.0863) == pytest.approx(1000, abs=2)
    # A student barely above the trigger needs every request compared.
    assert sampling.target(p, 0.72) == 1.0
    assert sampling.target(p, 0.70) == 1.0


def test_thresholds_override_the_curve():
    p = policy()
    assert sampling.decide(p, 3, 0.6).mode is sampling.Mode.coaching
    assert sampling.decide(p, 3, 0.4).mode is sampling.Mode.emergency
    assert sampling.decide(p, 3, 0.4).rate == 1.0
    assert sampling.decide(p, 1, None).mode is sampling.Mode.teacher_only


def test_a_falling_trend_raises_the_rate():
    p = policy()
    low = wilson(0.97, 100)[0]
    calm = sampling.decide(p, 3, 0.97, trend=-0.01, lower_bound=low)
    falling = sampling.decide(p, 3, 0.97, trend=-0.1, lower_bound=low)
    assert falling.mode is sampling.Mode.raised
    assert falling.rate > calm.rate
    x = sampling.position(p, 0.97, low - 0.1)
    assert falling.rate == pytest.approx(sampling.curve(p, x, sampling.target(p, 0.97)))


@given(st.text(max_size=40), st.floats(0.0, 1.0))
def test_the_draw_is_a_stable_function_of_request_and_rate(request_id, rate):
    u = sampling.uniform(request_id)
    assert 0.0 <= u < 1.0
    assert sampling.sampled(request_id, rate) == sampling.sampled(request_id, rate)
    assert sampling.sampled(request_id, rate) == (rate >= 1.0 or u < rate)


def test_the_draw_hits_the_rate():
    hits = sum(sampling.sampled(f"req-{i}", 0.1) for i in range(20000))
    assert 1800 < hits < 2200
