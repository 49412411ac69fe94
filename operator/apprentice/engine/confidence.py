"""Confidence: what the engine believes about student-teacher agreement.

One :class:`ConfidenceState` per task holds the rolling window of agreement
scores (each in [0, 1]) and the detectors' running statistics. Every update is
O(1) amortised: the window is an immutable two-list queue (new scores are
pushed onto a linked list, old ones read from a tuple; the tuple is rebuilt
once per ``window_size`` pushes) and the mean and variance come from running
sums, which are recomputed exactly at each rebuild so float error never
accumulates.

Statistics
----------
- ``mean``: the window's mean agreement.
- ``lower_bound`` / ``upper_bound``: the Wilson score interval at 95%. Scores
  may be fractional (structured and semantic evaluators); we use the window
  mean as p-hat and the number of samples as n, which is exact for 0/1 scores
  and conservative for fractional ones (their variance is at most p(1-p)).
- ``trend``: a fast (span ``shift_window``) minus a slow (span ``window_size``)
  exponentially weighted mean; negative when agreement is falling.

Detectors (exposed separately, each with the comparison count at which it fired)
---------------------------------------------------------------------------------
- drift (gradual): Page-Hinkley on disagreement ``1 - score``: the cumulative
  sum of ``x - running_mean - delta`` minus its minimum exceeds ``threshold``.
  It resets after firing. ``delta`` and ``threshold`` are for streams whose
  sd is at most ``NOISE_REF`` (0.05); noisier windows scale both by sd / 0.05,
  i.e. the test runs on standardised scores (see :func:`_noise_scale`).
- shift (sudden): the last ``shift_window`` scores against the rest of the
  window (the reference): the mean drops by more than ``shift_min_drop`` and
  the Welch z-statistic exceeds ``shift_z``. After a shift the pre-shift
  scores describe a world that no longer exists, so the window restarts from
  the recent scores: the mean reflects the new level at once (and the shift
  test cannot fire again until a new reference has accumulated).
- anti-correlation: the Wilson upper bound is under ``chance_agreement`` and
  the mean is under 0.8 x chance (agreement *well* under what guessing gets,
  typically a label mapping flipped in the student); it clears once the mean
  is back at chance, so one episode raises one alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeAlias

from apprentice.config import SamplingConfig

__all__ = [
    "Z95",
    "ConfidenceState",
    "DetectorParams",
    "Signals",
    "Window",
    "empty",
    "observe",
    "wilson",
]

Z95 = 1.959963984540054
_EPS_VAR = 1e-6  # keeps the shift z finite on noise-free streams
NOISE_REF = 0.05  # score sd the DriftConfig defaults are tuned for; noisier scales them up

Cons: TypeAlias = "tuple[float, Cons] | None"


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """Window and detector parameters for one task (from ``SamplingConfig``)."""

    window_size: int = 100
    page_hinkley_delta: float = 0.005
    page_hinkley_threshold: float = 1.5
    shift_window: int = 10
    shift_min_drop: float = 0.2
    shift_z: float = 3.0
    chance_agreement: float = 0.5
    z: float = Z95

    @classmethod
    def from_config(cls, sampling: SamplingConfig) -> DetectorParams:
        drift = sampling.drift
        return cls(
            window_size=sampling.window_size,
            page_hinkley_delta=drift.page_hinkley_delta,
            page_hinkley_threshold=drift.page_hinkley_threshold,
            shift_window=drift.shift_window,
            shift_min_drop=drift.shift_min_drop,
            shift_z=drift.shift_z,
            chance_agreement=drift.chance_agreement,
        )

    @property
    def recent(self) -> int:
        """Size of the shift test's recent window (at most half the main window)."""
        return max(1, min(self.shift_window, self.window_size // 2))


@dataclass(frozen=True, slots=True)
class Window:
    """An immutable FIFO of floats with O(1) amortised push (a banker's queue)."""

    front: tuple[float, ...] = ()
    pos: int = 0
    back: Cons = None
    back_len: int = 0

    def __len__(self) -> int:
        return len(self.front) - self.pos + self.back_len

    def values(self) -> tuple[float, ...]:
        """Oldest first."""
        newest_first: list[float] = []
        node = self.back
        while node is not None:
            newest_first.append(node[0])
            node = node[1]
        return self.front[self.pos :] + tuple(reversed(newest_first))

    @classmethod
    def of(cls, values: tuple[float, ...] | list[float]) -> Window:
        return cls(tuple(values))

    def push(self, value: float, limit: int) -> tuple[Window, float | None]:
        """Append ``value``; when longer than ``limit``, drop and return the oldest."""
        back: Cons = (value, self.back)
        if len(self.front) - self.pos + self.back_len + 1 <= limit:
            return Window(self.front, self.pos, back, self.back_len + 1), None
        if self.pos < len(self.front):
            return Window(self.front, self.pos + 1, back, self.back_len + 1), self.front[self.pos]
        items = Window((), 0, back, self.back_len + 1).values()
        return Window(items, 1), items[0]


def wilson(mean: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a mean agreement over ``n`` samples, clipped to [0, 1]."""
    if n <= 0:
        return 0.0, 1.0
    p = min(1.0, max(0.0, mean))
    z2n = z * z / n
    denom = 1.0 + z2n
    centre = (p + z2n / 2.0) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


@dataclass(frozen=True, slots=True)
class Signals:
    """What one observation set off."""

    drift: bool = False
    shift: bool = False
    anti_correlation: bool = False  # became anti-correlated with this observation


# The eight possible outcomes, built once: observe() is on the hot path.
_SIGNALS = {
    (d, s, a): Signals(d, s, a) for d in (False, True) for s in (False, True) for a in (False, True)
}


@dataclass(frozen=True, slots=True)
class ConfidenceState:
    """Rolling window plus detector state. Build with :func:`empty`."""

    window: Window = Window()
    total: float = 0.0
    total_sq: float = 0.0
    recent: Window = Window()
    recent_total: float = 0.0
    recent_sq: float = 0.0
    comparisons: int = 0  # all comparisons ever observed (the detectors' clock)
    fast: float | None = None
    slow: float | None = None
    ph_count: int = 0
    ph_mean: float = 0.0
    ph_cum: float = 0.0
    ph_min: float = 0.0
    drift_at: int | None = None
    shift_at: int | None = None
    anti_correlation: bool = False
    z: float = Z95

    @property
    def n(self) -> int:
        """Samples in the window."""
        return len(self.window)

    @property
    def mean(self) -> float | None:
        n = len(self.window)
        return min(1.0, max(0.0, self.total / n)) if n else None

    @property
    def lower_bound(self) -> float | None:
        mean = self.mean
        return None if mean is None else wilson(mean, self.n, self.z)[0]

    @property
    def upper_bound(self) -> float | None:
        mean = self.mean
        return None if mean is None else wilson(mean, self.n, self.z)[1]

    @property
    def trend(self) -> float:
        if self.fast is None or self.slow is None:
            return 0.0
        return self.fast - self.slow

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe; running sums are recomputed from the window on load."""
        return {
            "window": list(self.window.values()),
            "recent": list(self.recent.values()),
            "comparisons": self.comparisons,
            "fast": self.fast,
            "slow": self.slow,
            "ph": [self.ph_count, self.ph_mean, self.ph_cum, self.ph_min],
            "drift_at": self.drift_at,
            "shift_at": self.shift_at,
            "anti_correlation": self.anti_correlation,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], params: DetectorParams) -> ConfidenceState:
        """Inverse of :meth:`to_dict`; a smaller ``window_size`` keeps the newest scores."""
        window = [float(v) for v in data.get("window", [])][-params.window_size :]
        recent = [float(v) for v in data.get("recent", [])][-params.recent :]
        ph = data.get("ph", [0, 0.0, 0.0, 0.0])
        fast, slow = data.get("fast"), data.get("slow")
        return cls(
            window=Window.of(window),
            total=math.fsum(window),
            total_sq=math.fsum(v * v for v in window),
            recent=Window.of(recent),
            recent_total=math.fsum(recent),
            recent_sq=math.fsum(v * v for v in recent),
            comparisons=int(data.get("comparisons", len(window))),
            fast=None if fast is None else float(fast),
            slow=None if slow is None else float(slow),
            ph_count=int(ph[0]),
            ph_mean=float(ph[1]),
            ph_cum=float(ph[2]),
            ph_min=float(ph[3]),
            drift_at=data.get("drift_at"),
            shift_at=data.get("shift_at"),
            anti_correlation=bool(data.get("anti_correlation", False)),
            z=params.z,
        )


def empty(params: DetectorParams) -> ConfidenceState:
    """The state before any comparison."""
    return ConfidenceState(z=params.z)


def _check(score: float) -> float:
    value = float(score)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"agreement score must be in [0, 1], got {score!r}; fix the evaluator")
    return value


def _noise_scale(state: ConfidenceState) -> float:
    """How much noisier than ``NOISE_REF`` the window is (>= 1).

    Page-Hinkley's delta and threshold are in score units, so a noisy stream (0/1
    scores of exact_match have sd 0.17 at 97% agreement) crosses a threshold
    tuned for smooth fractional scores by chance alone. Scaling both by the
    window's standard deviation over ``NOISE_REF`` runs the test on standardised
    scores whenever the stream is noisier than the config's defaults assume.
    """
    n = len(state.window)
    if n < 2:
        return 1.0
    mean = state.total / n
    var = max(0.0, state.total_sq / n - mean * mean)
    return max(1.0, math.sqrt(var) / NOISE_REF)


def _push(
    queue: Window, total: float, total_sq: float, x: float, limit: int
) -> tuple[Window, float, float]:
    """Push ``x``; the running sums follow it (re-summed exactly when the queue was rebuilt)."""
    queue, old = queue.push(x, limit)
    if old is None:
        return queue, total + x, total_sq + x * x
    if queue.pos == 1 and queue.back is None:  # just rebuilt: resum exactly
        items = queue.front[1:]
        return queue, math.fsum(items), math.fsum(v * v for v in items)
    return queue, total + x - old, total_sq + x * x - old * old


def _shifted(
    params: DetectorParams, n: int, total: float, total_sq: float, r_total: float, r_sq: float
) -> bool:
    """Two-window shift test: the full recent ``k`` against the rest of the window (Welch z)."""
    k = params.recent
    n_ref = n - k
    if n_ref < k:
        return False
    ref_mean = (total - r_total) / n_ref
    rec_mean = r_total / k
    drop = ref_mean - rec_mean
    if drop <= params.shift_min_drop:
        return False
    ref_var = max(0.0, (total_sq - r_sq) / n_ref - ref_mean * ref_mean)
    rec_var = max(0.0, r_sq / k - rec_mean * rec_mean)
    z = drop / math.sqrt(ref_var / n_ref + rec_var / k + _EPS_VAR)
    return z > params.shift_z


def _page_hinkley(
    params: DetectorParams, state: ConfidenceState, x: float
) -> tuple[bool, tuple[int, float, float, float]]:
    """Page-Hinkley on disagreement: whether drift fired, and count, mean, sum, minimum."""
    d = 1.0 - x
    ph_count = state.ph_count + 1
    ph_mean = state.ph_mean + (d - state.ph_mean) / ph_count
    scale = _noise_scale(state)
    ph_cum = state.ph_cum + d - ph_mean - params.page_hinkley_delta * scale
    ph_min = min(state.ph_min, ph_cum)
    drift = ph_cum - ph_min > params.page_hinkley_threshold * scale
    return drift, (ph_count, ph_mean, ph_cum, ph_min)


def _anti_correlated(params: DetectorParams, before: bool, mean: float, n: int) -> bool:
    chance = params.chance_agreement
    if before:  # hysteresis: one alarm per episode, not one per wobble
        return mean < chance
    return n >= params.recent and mean < 0.8 * chance and wilson(mean, n, params.z)[1] < chance


def observe(
    params: DetectorParams, state: ConfidenceState, score: float
) -> tuple[ConfidenceState, Signals]:
    """Add one comparison's agreement score; return the new state and what fired."""
    x = _check(score)
    count = state.comparisons + 1

    window, total, total_sq = _push(
        state.window, state.total, state.total_sq, x, params.window_size
    )
    k = params.recent
    recent, r_total, r_sq = _push(state.recent, state.recent_total, state.recent_sq, x, k)

    a_fast = 2.0 / (k + 1.0)
    a_slow = 2.0 / (params.window_size + 1.0)
    fast = x if state.fast is None else state.fast + a_fast * (x - state.fast)
    slow = x if state.slow is None else state.slow + a_slow * (x - state.slow)

    drift, (ph_count, ph_mean, ph_cum, ph_min) = _page_hinkley(params, state, x)
    drift_at = state.drift_at
    if drift:
        drift_at = count
        ph_count, ph_mean, ph_cum, ph_min = 0, 0.0, 0.0, 0.0

    n = len(window)
    shift = len(recent) == k and _shifted(params, n, total, total_sq, r_total, r_sq)
    shift_at = state.shift_at
    if shift:
        shift_at = count
        window = recent
        total, total_sq = r_total, r_sq
        fast = slow = r_total / k
        ph_count, ph_mean, ph_cum, ph_min = 0, 0.0, 0.0, 0.0
        n = k

    anti = _anti_correlated(params, state.anti_correlation, total / n, n)
    new = ConfidenceState(
        window=window,
        total=total,
        total_sq=total_sq,
        recent=recent,
        recent_total=r_total,
        recent_sq=r_sq,
        comparisons=count,
        fast=fast,
        slow=slow,
        ph_count=ph_count,
        ph_mean=ph_mean,
        ph_cum=ph_cum,
        ph_min=ph_min,
        drift_at=drift_at,
        shift_at=shift_at,
        anti_correlation=anti,
        z=params.z,
    )
    return new, _SIGNALS[drift, shift, anti and not state.anti_correlation]
