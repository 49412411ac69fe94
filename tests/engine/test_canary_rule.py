"""The canary's pure rule: deterministic routing by request id, and the verdict."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from apprentice.engine import canary
from apprentice.engine.canary import Tally, Verdict, judge

ids = st.text(min_size=1, max_size=40)
shares = st.floats(min_value=0.001, max_value=1.0)


def tally(n: int, mean: float) -> Tally:
    return Tally(n, n * mean)


def verdict(c: Tally, a: Tally, margin: float = 0.0, lo: int = 20, hi: int = 100) -> Verdict:
    return judge(c, a, margin=margin, min_comparisons=lo, max_comparisons=hi).verdict


@given(ids, shares)
def test_routing_is_a_function_of_the_request_id(rid: str, share: float) -> None:
    assert canary.routed(rid, share) == canary.routed(rid, share)


@given(ids, shares, shares)
def test_a_larger_share_keeps_every_request_a_smaller_one_routed(
    rid: str, a: float, b: float
) -> None:
    small, large = sorted((a, b))
    if canary.routed(rid, small):
        assert canary.routed(rid, large)


def test_the_share_routes_that_fraction_of_ids() -> None:
    routed = sum(canary.routed(f"req-{i}", 0.2) for i in range(20_000))
    assert abs(routed / 20_000 - 0.2) < 0.01


def test_routing_is_independent_of_the_teacher_sampling_draw() -> None:
    from apprentice.engine import sampling

    both = sum(
        canary.routed(f"r{i}", 0.5) and sampling.sampled(f"r{i}", 0.5) for i in range(20_000)
    )
    assert abs(both / 20_000 - 0.25) < 0.01  # independent draws: 0.5 x 0.5


def test_no_verdict_before_both_have_the_minimum_evidence() -> None:
    assert verdict(tally(19, 0.0), tally(500, 1.0)) is Verdict.keep_going
    assert verdict(tally(500, 0.0), tally(19, 1.0)) is Verdict.keep_going


def test_a_clearly_worse_candidate_is_rolled_back_at_the_minimum() -> None:
    got = judge(tally(20, 0.25), tally(20, 1.0), margin=0.0, min_comparisons=20,
                max_comparisons=100)  # fmt: skip
    assert got.verdict is Verdict.roll_back and got.high < 0
    assert "0.250 over 20" in got.reason and "1.000 over 20" in got.reason


def test_a_clearly_better_candidate_is_promoted_at_the_minimum() -> None:
    assert verdict(tally(60, 0.98), tally(60, 0.6)) is Verdict.promote


def test_an_equal_candidate_is_promoted_on_the_full_sample_with_margin_zero() -> None:
    assert verdict(tally(99, 1.0), tally(99, 1.0)) is Verdict.keep_going  # undecided so far
    assert verdict(tally(100, 1.0), tally(100, 1.0)) is Verdict.promote  # d = 0 >= margin 0


def test_a_positive_margin_asks_the_candidate_to_beat_the_active_version() -> None:
    assert verdict(tally(100, 0.9), tally(100, 0.9), margin=0.05) is Verdict.roll_back
    assert verdict(tally(100, 0.96), tally(100, 0.9), margin=0.05) is Verdict.promote


def test_a_negative_margin_tolerates_a_slightly_worse_candidate() -> None:
    assert verdict(tally(100, 0.88), tally(100, 0.9), margin=-0.05) is Verdict.promote
    assert verdict(tally(100, 0.88), tally(100, 0.9), margin=0.0) is Verdict.roll_back


@given(
    st.integers(20, 400), st.floats(0, 1), st.integers(20, 400), st.floats(0, 1),
    st.floats(-0.5, 0.5),
)  # fmt: skip
def test_the_interval_holds_the_difference_and_verdicts_follow_it(
    nc: int, pc: float, na: int, pa: float, margin: float
) -> None:
    c, a = tally(nc, pc), tally(na, pa)
    low, high = canary.difference_interval(c, a)
    assert low - 1e-9 <= c.mean - a.mean <= high + 1e-9
    assert low >= -1.0 - 1e-9 and high <= 1.0 + 1e-9
    got = judge(c, a, margin=margin, min_comparisons=20, max_comparisons=400)
    if got.verdict is Verdict.promote:
        assert low >= margin or (nc >= 400 and c.mean - a.mean >= margin)
    if got.verdict is Verdict.roll_back:
        assert high < margin or (nc >= 400 and c.mean - a.mean < margin)
    if nc >= 400:
        assert got.verdict is not Verdict.keep_going  # the full sample always decides


def test_scores_are_clipped_and_counted() -> None:
    t = Tally().add(1.5).add(-1.0).add(0.5)
    assert t.n == 3 and math.isclose(t.mean, 0.5)
    assert t.to_json() == {"comparisons": 3, "agreement": 0.5}


def _sequential(p_candidate: float, p_active: float, seed: int) -> tuple[Verdict, int]:
    """One canary on 0/1 scores, one comparison of each version at a time, to its verdict."""
    draw, c, a = random.Random(seed), Tally(), Tally()
    while True:
        c = c.add(float(draw.random() < p_candidate))
        a = a.add(float(draw.random() < p_active))
        got = judge(c, a, margin=0.0, min_comparisons=50, max_comparisons=400)
        if got.verdict is not Verdict.keep_going:
            return got.verdict, c.n


def test_early_verdicts_on_equal_versions_are_rare_despite_looking_every_time() -> None:
    runs = [_sequential(0.9, 0.9, seed) for seed in range(400)]
    early = [v for v, n in runs if n < 400]
    assert sum(v is Verdict.roll_back for v in early) / len(runs) < 0.04
    assert sum(v is Verdict.promote for v in early) / len(runs) < 0.04


def test_a_candidate_worse_by_a_tenth_is_rolled_back_and_a_better_one_promoted() -> None:
    worse = [_sequential(0.8, 0.9, seed)[0] for seed in range(200)]
    better = [_sequential(0.97, 0.9, seed)[0] for seed in range(200)]
    assert sum(v is Verdict.roll_back for v in worse) / 200 >= 0.97
    assert sum(v is Verdict.promote for v in better) / 200 >= 0.97
