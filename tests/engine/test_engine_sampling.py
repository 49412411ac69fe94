"""Sampling: properties of the rate curve and the per-request draw."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprentice.config import DecayFunction
from apprentice.engine import sampling

confidences = st.floats(0.0, 1.0, allow_nan=False)
trends = st.floats(-1.0, 1.0, allow_nan=False)
floors = st.floats(0.001, 1.0, allow_nan=False)
functions = st.sampled_from(list(DecayFunction))


def policy(
    fn: DecayFunction = DecayFunction.exponential, floor: float = 0.02
) -> sampling.SamplingPolicy:
    return sampling.SamplingPolicy(decay_function=fn, min_floor=floor)


@given(functions, floors, st.sampled_from([1, 2, 3]), confidences, trends, st.booleans())
def test_rate_never_below_floor_nor_above_one(fn, floor, phase, conf, trend, alert):
    rate = sampling.rate(policy(fn, floor), phase, conf, trend, alert=alert)
    assert floor <= rate <= 1.0


@given(functions, floors, confidences, trends)
def test_phase_two_samples_everything(fn, floor, conf, trend):
    decision = sampling.decide(policy(fn, floor), 2, conf, trend)
    assert decision.rate == 1.0
    assert decision.mode is sampling.Mode.both


@given(functions, floors, confidences, confidences, trends)
def test_rate_is_non_increasing_in_confidence(fn, floor, a, b, trend):
    lo, hi = sorted((a, b))
    p = policy(fn, floor)
    assert sampling.rate(p, 3, hi, trend) <= sampling.rate(p, 3, lo, trend)


@given(
    st.sampled_from([DecayFunction.linear, DecayFunction.exponential]),
    st.floats(0.01, 1.0),
    confidences,
    st.floats(-1e-4, 1e-4),
)
def test_linear_and_exponential_move_continuously(fn, floor, conf, eps):
    p = policy(fn, floor)
    other = min(1.0, max(0.0, conf + eps))
    # Lipschitz on the curve: |dr/dc| <= |ln floor| / span (exponential) or (1-floor)/span.
    span = p.full_confidence - p.coaching_trigger
    bound = max(1.0, abs(__import__("math").log(floor))) / span
    assert abs(sampling.curve(p, conf) - sampling.curve(p, other)) <= bound * abs(eps) + 1e-12


def test_curve_meets_coaching_and_floor():
    for fn in DecayFunction:
        p = policy(fn, 0.02)
        assert sampling.curve(p, p.coaching_trigger) == 1.0
        assert sampling.curve(p, p.full_confidence) == 0.02
        assert sampling.rate(p, 3, 0.97) == 0.02


def test_thresholds_override_the_curve():
    p = policy()
    assert sampling.decide(p, 3, 0.6).mode is sampling.Mode.coaching
    assert sampling.decide(p, 3, 0.4).mode is sampling.Mode.emergency
    assert sampling.decide(p, 3, 0.4).rate == 1.0
    assert sampling.decide(p, 1, None).mode is sampling.Mode.teacher_only


def test_a_falling_trend_raises_the_rate():
    p = policy()
    calm = sampling.decide(p, 3, 0.9, trend=-0.01)
    falling = sampling.decide(p, 3, 0.9, trend=-0.1)
    assert falling.mode is sampling.Mode.raised
    assert falling.rate > calm.rate
    assert falling.rate == pytest.approx(sampling.curve(p, 0.8))


@given(st.text(max_size=40), st.floats(0.0, 1.0))
def test_the_draw_is_a_stable_function_of_request_and_rate(request_id, rate):
    u = sampling.uniform(request_id)
    assert 0.0 <= u < 1.0
    assert sampling.sampled(request_id, rate) == sampling.sampled(request_id, rate)
    assert sampling.sampled(request_id, rate) == (rate >= 1.0 or u < rate)


def test_the_draw_hits_the_rate():
    hits = sum(sampling.sampled(f"req-{i}", 0.1) for i in range(20000))
    assert 1800 < hits < 2200
