"""PNG plots of a task's timeline (matplotlib, Agg backend, no display needed).

matplotlib is the ``plots`` extra, imported only when a plot is drawn; without
it :func:`require_matplotlib` raises :class:`PlotsUnavailable` naming the fix.
Every plot shares one look: phases shaded in the background, promoted model
versions as labelled vertical lines, the teacher in red, the student's savings
in blue.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from apprentice.reporting.timeline import TaskTimeline
from apprentice.vocabulary import Phase

__all__ = ["COLORS", "PlotsUnavailable", "Thresholds", "render_all", "require_matplotlib"]

COLORS = {
    "teacher": "#c8385a",
    "estimate": "#8d99ae",
    "savings": "#2b7bb9",
    "confidence": "#1b998b",
    "bound": "#f4a259",
    "points": "#5c6b7a",
    "version": "#3d348b",
    "alarm": "#e63946",
    Phase.cold_start: "#eceff3",
    Phase.reinforcement: "#fdf1dc",
    Phase.steady_state: "#e3f4ea",
}
PHASE_LABELS = {phase.value: phase.label for phase in Phase}


class PlotsUnavailable(RuntimeError):
    """matplotlib is not installed."""


@dataclass(frozen=True)
class Thresholds:
    """The task's lines worth drawing on the confidence plot."""

    phase2_to_phase3: float | None = None
    coaching_trigger: float | None = None
    emergency_threshold: float | None = None
    min_floor: float | None = None


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend, or a clear error naming the extra."""
    try:
        import matplotlib
    except ImportError as exc:
        raise PlotsUnavailable(
            "the HTML report draws its plots with matplotlib, which is not installed: "
            "pip install 'apprentice[plots]' (or use --json for the data alone)"
        ) from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _style(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold", color="#1f2933", pad=10)
    ax.set_xlabel(xlabel, fontsize=9, color="#52606d")
    ax.set_ylabel(ylabel, fontsize=9, color="#52606d")
    ax.tick_params(labelsize=8, colors="#52606d")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#9aa5b1")
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _context(ax: Any, t: TaskTimeline, *, label_versions: bool = True) -> None:
    """Phases as background bands, promoted versions as vertical lines."""
    seen: set[str] = set()
    for span in t.phases:
        label = PHASE_LABELS.get(span.phase, span.phase) if span.phase not in seen else None
        seen.add(span.phase)
        ax.axvspan(
            span.start_index,
            span.end_index,
            color=COLORS.get(span.phase, "#f5f5f5"),
            zorder=0,
            label=label,
            linewidth=0,
        )
    top = ax.get_ylim()[1]
    for v in t.versions:
        if v.promoted_index is None:
            continue
        ax.axvline(v.promoted_index, color=COLORS["version"], linestyle=":", linewidth=1.2)
        if label_versions:
            ax.text(
                v.promoted_index,
                top,
                f" {v.version}",
                color=COLORS["version"],
                fontsize=8,
                va="top",
                ha="left",
            )


def _legend(ax: Any) -> None:
    # Below the axes, so every figure keeps the same plot width in the report.
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)


def plot_cumulative_spend(plt: Any, t: TaskTimeline) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.4))
    x = range(len(t.cumulative_spend))
    ax.plot(x, t.cumulative_all_teacher, color=COLORS["estimate"], linestyle="--", linewidth=1.6,
            label="all-teacher (estimate)")  # fmt: skip
    ax.plot(x, t.cumulative_spend, color=COLORS["teacher"], linewidth=2, label="teacher, actual")
    ax.fill_between(x, t.cumulative_spend, t.cumulative_all_teacher, color=COLORS["savings"],
                    alpha=0.12, label="saved")  # fmt: skip
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, max(1, len(t.cumulative_spend)))
    _style(ax, "Cumulative teacher spend", "request", "USD")
    _context(ax, t)
    _legend(ax)
    out = _png(fig)
    plt.close(fig)
    return out


def plot_spend_buckets(plt: Any, t: TaskTimeline) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.0))
    labels = [b.start[11:16] if t.bucket != "day" else b.start[:10] for b in t.spend_buckets]
    if t.bucket == "hour":
        labels = [b.start[5:13].replace("T", " ") + "h" for b in t.spend_buckets]
    pos = list(range(len(labels)))
    width = 0.4
    ax.bar([p - width / 2 for p in pos], [b.all_teacher_estimate for b in t.spend_buckets],
           width, color=COLORS["estimate"], label="all-teacher (estimate)")  # fmt: skip
    ax.bar([p + width / 2 for p in pos], [b.teacher_spend for b in t.spend_buckets], width,
           color=COLORS["teacher"], label="teacher, actual")  # fmt: skip
    step = max(1, len(labels) // 12)
    ax.set_xticks(pos[::step], labels[::step])
    _style(ax, f"Spend per {t.bucket} (UTC)", t.bucket, "USD")
    _legend(ax)
    out = _png(fig)
    plt.close(fig)
    return out


def plot_confidence(plt: Any, t: TaskTimeline, th: Thresholds) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.8))
    ax.set_ylim(-0.03, 1.06)
    ax.set_xlim(0, max(1, t.requests))
    if t.agreement:
        ax.scatter(t.comparison_index, t.agreement, s=6, color=COLORS["points"], alpha=0.25,
                   linewidths=0, label="agreement (each comparison)")  # fmt: skip
        ax.plot(t.comparison_index, t.confidence, color=COLORS["confidence"], linewidth=2,
                label=f"confidence (mean of last {t.window_size})")  # fmt: skip
        ax.plot(t.comparison_index, t.confidence_lower_bound, color=COLORS["bound"],
                linewidth=1.6, label="lower bound (Wilson 95%)")  # fmt: skip
    lines = (
        (th.phase2_to_phase3, "graduation", "#2d6a4f"),
        (th.coaching_trigger, "coaching", "#b7791f"),
        (th.emergency_threshold, "emergency", COLORS["alarm"]),
    )
    for value, name, color in lines:
        if value is not None:
            ax.axhline(value, color=color, linestyle="--", linewidth=0.9, alpha=0.8)
            ax.text(0, value, f"{name} {value:g} ", color=color, fontsize=7, va="bottom")
    labelled = False
    for alarm in t.alarms:
        if alarm.get("index") is not None:
            ax.axvline(alarm["index"], color=COLORS["alarm"], linewidth=1, alpha=0.7,
                       label=None if labelled else "alarm")  # fmt: skip
            labelled = True
    _style(ax, "Agreement and confidence", "request", "agreement")
    _context(ax, t)
    _legend(ax)
    out = _png(fig)
    plt.close(fig)
    return out


def plot_sampling(plt: Any, t: TaskTimeline, th: Thresholds) -> str:
    fig, ax = plt.subplots(figsize=(10, 3.0))
    ax.set_ylim(0, 1.05)
    ax.set_xlim(0, max(1, t.requests))
    ax.plot(range(len(t.teacher_share)), t.teacher_share, color=COLORS["teacher"], linewidth=1.4,
            label="share sent to teacher (last 100)")  # fmt: skip
    points = [
        (i, r) for i, r in zip(t.comparison_index, t.sampling_rate, strict=True) if r is not None
    ]
    if points:
        # The engine's rate is known only where a comparison was recorded: show it as points.
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=9, color=COLORS["savings"],
                   zorder=3, label="engine sampling rate (at comparisons)")  # fmt: skip
    if th.min_floor is not None:
        ax.axhline(th.min_floor, color="#52606d", linestyle="--", linewidth=0.9)
        ax.text(0, th.min_floor, f"floor {th.min_floor:g} ", color="#52606d", fontsize=7,
                va="bottom")  # fmt: skip
    _style(ax, "Sampling rate", "request", "rate")
    _context(ax, t)
    _legend(ax)
    out = _png(fig)
    plt.close(fig)
    return out


def render_all(t: TaskTimeline, th: Thresholds) -> dict[str, str]:
    """Every plot of one task as base64 PNG, keyed by name, in display order."""
    plt = require_matplotlib()
    out = {
        "cumulative_spend": plot_cumulative_spend(plt, t),
        "confidence": plot_confidence(plt, t, th),
        "sampling": plot_sampling(plt, t, th),
    }
    if t.spend_buckets:
        out["spend_buckets"] = plot_spend_buckets(plt, t)
    return out
