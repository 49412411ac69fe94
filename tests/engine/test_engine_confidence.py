"""Confidence: window statistics, Wilson bound and the detectors."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apprentice.engine import confidence

scores = st.floats(0.0, 1.0, allow_nan=False)


def feed(values, params=None):
    params = params or confidence.DetectorParams()
    state = confidence.empty(params)
    fired = []
    for v in values:
        state, sig = confidence.observe(params, state, v)
        fired.append(sig)
    return state, fired


@given(scores, st.integers(0, 10000))
def test_wilson_lower_bound_is_within_zero_and_the_mean(mean, n):
    lower, upper = confidence.wilson(mean, n)
    assert 0.0 <= lower <= mean <= upper <= 1.0


def test_wilson_matches_the_textbook_value():
    lower, upper = confidence.wilson(0.5, 100)
    assert lower == pytest.approx(0.4038, abs=1e-4)
    assert upper == pytest.approx(0.5962, abs=1e-4)
    assert confidence.wilson(1.0, 15)[0] == pytest.approx(0.7961, abs=1e-4)


@given(st.lists(scores, max_size=300), st.integers(5, 60))
def test_running_sums_match_the_window(values, size):
    params = confidence.DetectorParams(window_size=size, shift_min_drop=1.0)
    state, _ = feed(values, params)
    window = values[-size:]
    assert list(state.window.values()) == window
    assert state.comparisons == len(values)
    if window:
        assert state.mean == pytest.approx(math.fsum(window) / len(window), abs=1e-9)


def test_round_trip_keeps_the_window_and_detectors():
    params = confidence.DetectorParams(window_size=20)
    rng = random.Random(3)
    state, _ = feed([rng.random() for _ in range(57)], params)
    back = confidence.ConfidenceState.from_dict(state.to_dict(), params)
    assert back.window.values() == state.window.values()
    assert back.mean == pytest.approx(state.mean)
    assert (back.ph_cum, back.comparisons, back.trend) == (
        state.ph_cum,
        state.comparisons,
        state.trend,
    )


def test_stationary_noise_fires_nothing():
    rng = random.Random(7)
    values = [min(1.0, max(0.0, rng.gauss(0.97, 0.03))) for _ in range(5000)]
    _, fired = feed(values)
    assert not any(s.drift or s.shift or s.anti_correlation for s in fired)


def test_binary_scores_at_97_percent_fire_no_drift():
    rng = random.Random(11)
    _, fired = feed([1.0 if rng.random() < 0.97 else 0.0 for _ in range(3000)])
    assert sum(s.drift for s in fired) <= 1
    assert not any(s.shift for s in fired)


def test_a_sudden_drop_is_a_shift_within_ten_comparisons():
    rng = random.Random(5)
    before = [min(1.0, rng.gauss(0.95, 0.03)) for _ in range(100)]
    after = [max(0.0, rng.gauss(0.40, 0.05)) for _ in range(30)]
    state, fired = feed(before + after)
    first = next(i for i, s in enumerate(fired) if s.shift)
    assert 100 <= first < 110
    assert state.shift_at == first + 1
    # The window restarted from the recent scores, so the mean is the new level.
    assert state.mean < 0.5


def test_a_slow_decline_is_drift_before_it_reaches_070():
    rng = random.Random(9)
    values = [rng.gauss(0.95 - 0.002 * max(0, i - 100), 0.03) for i in range(300)]
    values = [min(1.0, max(0.0, v)) for v in values]
    _, fired = feed(values)
    first = next(i for i, s in enumerate(fired) if s.drift)
    assert 100 < first < 225  # 0.95 - 0.002 * 125 = 0.70


def test_agreement_well_under_chance_is_anti_correlation_once():
    rng = random.Random(2)
    state, fired = feed([1.0 if rng.random() < 0.1 else 0.0 for _ in range(200)])
    assert state.anti_correlation
    assert sum(s.anti_correlation for s in fired) == 1


def test_scores_outside_zero_one_are_refused():
    params = confidence.DetectorParams()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        confidence.observe(params, confidence.empty(params), 1.5)
    with pytest.raises(ValueError):
        confidence.observe(params, confidence.empty(params), float("nan"))
