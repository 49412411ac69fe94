"""The detection guarantee against the engine's own simulator.

A task settles in steady state at agreement ``p``; at request ``PRE`` agreement
drops to ``q`` at or under ``coaching_trigger``. The first alarm (shift, drift,
coaching, emergency, anti-correlation) at or after the drop is its detection.
Scores are 0/1 (exact match): the noisiest stream an evaluator can give, so the
hardest to detect in.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from apprentice.engine import lifecycle, sampling, simulation

PRE = 3000  # cold start, reinforcement and the fall to the target fit in it
RUNS = 20  # seeded runs per drop; at least 95% (19) must detect in time


def delays(p: float, q: float, delay: int, floor: float = 0.02) -> list[int | None]:
    policy = sampling.SamplingPolicy(min_floor=floor, max_detection_delay=delay)
    params = lifecycle.TaskParams(task="t", policy=policy)
    out: list[int | None] = []
    for seed in range(RUNS):
        rng = random.Random(f"{p}:{q}:{delay}:{seed}")
        before = [1.0 if rng.random() < p else 0.0 for _ in range(PRE)]
        after = [1.0 if rng.random() < q else 0.0 for _ in range(delay + 1)]
        result = simulation.simulate(params, before + after, seed=seed, stop_at_alarm_from=PRE)
        assert result.graduated_at is not None and result.graduated_at < PRE
        late = [a.index - PRE for a in result.alarms if a.index >= PRE]
        out.append(late[0] if late else None)
    return out


@settings(max_examples=6, deadline=None, derandomize=True)
@given(
    p=st.floats(0.9, 1.0),
    q=st.floats(0.0, 0.7),
    delay=st.sampled_from([300, 1000, 5000]),
)
def test_every_drop_from_the_trigger_down_is_detected_in_time(p, q, delay):
    found = delays(p, q, delay)
    in_time = sum(1 for d in found if d is not None and d <= delay)
    assert in_time >= 0.95 * RUNS, (p, q, delay, found)


def test_the_issue_drop_is_caught_within_600_requests_at_the_floor():
    """0.96 -> 0.35 at a 2% floor, the default delay: caught within 600 requests."""
    found = delays(0.96, 0.35, 5000)
    assert all(d is not None and d <= 600 for d in found), found


def test_a_drop_to_exactly_the_trigger_is_caught_at_the_default_delay():
    found = delays(0.97, 0.70, 5000)
    in_time = sum(1 for d in found if d is not None and d <= 5000)
    assert in_time >= 0.95 * RUNS, found


def test_a_stationary_097_student_samples_at_most_3_percent_1000_requests_after_graduating():
    params = lifecycle.TaskParams(task="t")
    for seed in range(5):
        rng = random.Random(seed)
        scores = [1.0 if rng.random() < 0.97 else 0.0 for _ in range(1600)]
        grad = simulation.simulate(params, scores, seed=seed).graduated_at
        assert grad is not None
        end = simulation.simulate(params, scores[: grad + 1001], seed=seed)
        assert end.final_sampling_rate <= 0.03, (seed, end.final_sampling_rate)
