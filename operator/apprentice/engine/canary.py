"""The canary's decisions: which requests try the candidate, and when it has proven itself.

A version that passed held-out validation may first be tried on live traffic
(``canary`` in a task's config). Everything here is a pure function:

- :func:`routed`: whether a request goes to the candidate. A blake2b hash of the
  request id (salted, so it is independent of the teacher-sampling draw) compared
  with ``share``: the same request id always goes to the same version, in every
  gateway replica, after a restart too.
- :func:`sampled`: whether a candidate request is also sent to the teacher when the
  canary sets its own ``sampling_rate`` (same hash, another salt).
- :func:`judge`: the verdict on the two versions' live comparisons, each a
  :class:`Tally` (count and sum of agreement scores in [0, 1]).

The rule (``d`` = candidate's mean agreement minus the active's, ``margin`` from
the config): nothing is decided before both versions have ``min_comparisons``
comparisons. Then, with ``[L, U]`` Newcombe's interval for ``d`` (built from each
mean's Wilson interval, conservative for fractional scores, whose variance is at
most p(1-p)) at z = :data:`Z_EARLY`:

- ``U < margin``: roll back; the candidate is worse than required, confidently;
- ``L >= margin``: promote; it meets the margin, confidently;
- otherwise, once the candidate has ``max_comparisons``: the point estimate
  decides (``d >= margin`` promotes, else roll back); before that, keep going.

A margin of 0 asks the candidate to at least match the active version; a positive
margin asks it to beat it by that much; a negative one tolerates that much less.
The interval is looked at after every comparison, so its z is 2.8 (99.5%), not 1.96:
simulated with two equally good versions (agreement 0.9, 50 and 400 comparisons), a
wrong early verdict comes about 1% of the time each way, where 1.96 gave 10-14%
(tests/engine/test_canary_rule.py); an equal candidate is then decided by its full
sample, a coin flip (give it a slightly negative margin to let it through).
"""

from __future__ import annotations

import enum
import hashlib
import math
from dataclasses import dataclass

from apprentice.engine.confidence import wilson
from apprentice.json_types import JsonObject

__all__ = ["Judgement", "Tally", "Verdict", "judge", "routed", "sampled"]

_SCALE = float(1 << 64)
Z_EARLY = 2.8
"""The interval's z for a verdict before the full sample (repeated looks: see above)."""


def _uniform(salt: bytes, request_id: str) -> float:
    digest = hashlib.blake2b(salt + request_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def routed(request_id: str, share: float) -> bool:
    """Whether ``request_id`` goes to the candidate (a stable function of the id)."""
    return _uniform(b"canary:", request_id) < share


def sampled(request_id: str, rate: float) -> bool:
    """Whether a candidate request is also sent to the teacher at the canary's own rate."""
    return rate >= 1.0 or _uniform(b"canary-sample:", request_id) < rate


@dataclass(frozen=True, slots=True)
class Tally:
    """One version's live comparisons: how many, and the sum of their scores."""

    n: int = 0
    total: float = 0.0

    def add(self, score: float) -> Tally:
        return Tally(self.n + 1, self.total + min(1.0, max(0.0, score)))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def to_json(self) -> JsonObject:
        return {"comparisons": self.n, "agreement": round(self.mean, 4)}


class Verdict(enum.StrEnum):
    keep_going = "continue"
    promote = "promote"
    roll_back = "roll_back"


@dataclass(frozen=True, slots=True)
class Judgement:
    """A verdict with the evidence behind it (the reason reads as a sentence)."""

    verdict: Verdict
    reason: str
    difference: float = 0.0
    low: float = -1.0
    high: float = 1.0


def difference_interval(candidate: Tally, active: Tally, z: float = Z_EARLY) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``candidate.mean - active.mean``."""
    p1, p2 = candidate.mean, active.mean
    l1, u1 = wilson(p1, candidate.n, z)
    l2, u2 = wilson(p2, active.n, z)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high


def judge(
    candidate: Tally,
    active: Tally,
    *,
    margin: float,
    min_comparisons: int,
    max_comparisons: int,
) -> Judgement:
    """The verdict on the evidence so far (see the module docstring for the rule)."""
    if candidate.n < min_comparisons or active.n < min_comparisons:
        need = f"{min_comparisons} comparisons each"
        have = f"candidate {candidate.n}, active {active.n}"
        return Judgement(Verdict.keep_going, f"collecting evidence ({have}; {need})")
    d = candidate.mean - active.mean
    low, high = difference_interval(candidate, active)
    said = (
        f"live agreement {candidate.mean:.3f} over {candidate.n} comparisons against the "
        f"active version's {active.mean:.3f} over {active.n} (difference {d:+.3f}, 99.5% "
        f"interval [{low:+.3f}, {high:+.3f}], margin {margin:+.3f})"
    )
    if high < margin:
        return Judgement(Verdict.roll_back, f"worse than required: {said}", d, low, high)
    if low >= margin:
        return Judgement(Verdict.promote, f"meets the margin: {said}", d, low, high)
    if candidate.n >= max_comparisons:
        if d >= margin:
            return Judgement(Verdict.promote, f"at least the margin: {said}", d, low, high)
        return Judgement(Verdict.roll_back, f"short of the margin: {said}", d, low, high)
    return Judgement(Verdict.keep_going, f"undecided: {said}", d, low, high)
