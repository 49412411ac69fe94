"""Detection: the sampling rate a task needs so that a drop cannot go unnoticed.

The teacher is consulted in steady state for one reason: to notice when the
student stops agreeing with it. The guarantee this module computes is

    a drop from the current agreement ``p`` to ``coaching_trigger`` ``c`` (or
    lower) is detected within ``max_detection_delay`` requests with 95%
    probability.

Two steps turn that into a rate.

1. **Comparisons.** The detectors of :mod:`apprentice.engine.confidence`
   compare the recent scores with the reference window and fire at a z-score
   of ``shift_z``. The classic two-sample size for a mean drop ``Δ = p - c``
   detected at that z with 95% power is::

       n = (shift_z + z95) ** 2 * (p (1 - p) + c (1 - c)) / Δ ** 2

   A score in [0, 1] with mean ``m`` has variance at most ``m (1 - m)`` (0/1
   scores reach it), so this is the worst case over evaluators; fractional
   scores are detected sooner. For the default ``shift_z`` 3.0 the formula
   tracks the 95th percentile of the engine's own detectors on seeded 0/1
   runs within 10% (71 comparisons for 0.97 -> 0.70 against 68 measured;
   bench/results/engine.md); the rate rising as a drop shows covers the rest.
   Never fewer than the shift test's recent window: no detector fires on less.
2. **Requests.** At rate ``r`` the comparisons in ``D`` requests are
   Binomial(D, r). At least ``n`` of them with 95% probability needs the mean
   ``m = D r`` to satisfy ``m - z95 sqrt(m) >= n`` (normal approximation), i.e.
   ``sqrt(m) = (z95 + sqrt(z95**2 + 4 n)) / 2``; the rate is ``m / D``.

Larger drops need fewer comparisons, so the rate that catches a drop to
``coaching_trigger`` catches every drop below it. The drop itself raises the
rate further (the lower bound and the trend fall), so real delays are shorter
than this constant-rate bound; the property tests check the bound against the
simulator.
"""

from __future__ import annotations

import math

__all__ = [
    "Z95_ONE_SIDED",
    "comparisons_to_detect",
    "detection_delay",
    "rate_for_delay",
]

Z95_ONE_SIDED = 1.6448536269514722


def comparisons_to_detect(agreement: float, target: float, *, shift_z: float, minimum: int) -> int:
    """Comparisons the detectors need to see a drop from ``agreement`` to ``target`` (95%).

    Infinite (``math.inf`` is not an int, so ``sys.maxsize``) when there is no
    drop to see: ``agreement <= target``.
    """
    drop = agreement - target
    if drop <= 0.0:
        return _NEVER
    p = min(1.0, max(0.0, agreement))
    c = min(1.0, max(0.0, target))
    variance = p * (1.0 - p) + c * (1.0 - c)
    z = shift_z + Z95_ONE_SIDED
    n = math.ceil(z * z * variance / (drop * drop) - 1e-9)
    return max(minimum, n)


_NEVER = 1 << 62


def _mean_comparisons(needed: int) -> float:
    """Mean of a Binomial count that reaches ``needed`` with 95% probability."""
    z = Z95_ONE_SIDED
    root = (z + math.sqrt(z * z + 4.0 * needed)) / 2.0
    return root * root


def rate_for_delay(needed: int, delay: int) -> float:
    """The smallest rate that yields ``needed`` comparisons within ``delay`` requests (95%)."""
    if needed >= _NEVER or delay <= 0:
        return 1.0
    return min(1.0, _mean_comparisons(needed) / delay)


def detection_delay(needed: int, rate: float) -> int | None:
    """Requests within which ``needed`` comparisons arrive at ``rate`` (95%); None: never."""
    if needed >= _NEVER or rate <= 0.0:
        return None
    if rate >= 1.0:
        return needed
    return math.ceil(_mean_comparisons(needed) / rate)
