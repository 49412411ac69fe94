"""What alerts say: their kinds, the :class:`Alert` record and one constructor per event.

Amounts print with the digits they need (``0.0044 of 0.0050 USD``), never rounded to
``0.00``. Delivery (cool-down, queue, webhook) is :mod:`apprentice.reporting.alerts`,
which re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

ALERT_KINDS = (
    "coaching",
    "emergency",
    "shift",
    "drift",
    "anti_correlation",
    "budget_80",
    "budget_100",
    "version_rejected",
    "canary_rolled_back",
    "training_failed",
    "recovered",
)
Severity = Literal["info", "warning", "critical"]
_SEVERITY: dict[str, Severity] = {
    "coaching": "warning",
    "emergency": "critical",
    "shift": "warning",
    "drift": "warning",
    "anti_correlation": "critical",
    "budget_80": "warning",
    "budget_100": "critical",
    "version_rejected": "warning",
    "canary_rolled_back": "warning",
    "training_failed": "warning",
    "recovered": "info",
}


@dataclass(frozen=True)
class Alert:
    """One thing an operator should hear about."""

    kind: str
    task: str | None
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def severity(self) -> Severity:
        return _SEVERITY.get(self.kind, "warning")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "task": self.task,
            "message": self.message,
            "details": self.details,
            "at": self.at.isoformat(),
            "source": "apprentice",
        }


def amount(value: float) -> str:
    """A money amount with the digits it needs: 12.50, 0.0044, never 0.00 for a cent's part."""
    if value == 0 or abs(value) >= 1:
        return f"{value:,.2f}"
    digits = max(2, 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{min(digits, 8)}f}"


def budget_alerts(
    scope: str, *, spend: dict[str, float], caps: dict[str, float | None], currency: str = "USD"
) -> list[Alert]:
    """budget_80 / budget_100 alerts for windows (daily, weekly, monthly) over a threshold.

    Pure: call it after each settle; the Alerter's cool-down turns repeats into one.
    ``scope`` is a task name or ``global``.
    """
    out: list[Alert] = []
    for window, cap in caps.items():
        used = spend.get(window, 0.0)
        if cap is None or cap <= 0:
            continue
        share = used / cap
        if share >= 1.0 - 1e-9:
            kind = "budget_100"
        elif share >= 0.8:
            kind = "budget_80"
        else:
            continue
        out.append(
            Alert(
                kind=kind,
                task=None if scope == "global" else scope,
                message=(
                    f"{window} spend {amount(used)} of {amount(cap)} {currency} ({share:.0%}) "
                    f"for {scope}"
                ),
                details={"scope": scope, "window": window, "spend": used, "cap": cap},
            )
        )
    return out


def rejected_version(task: str, version: str, reason: str, score: float | None) -> Alert:
    """The alert for a model version that failed validation and will not be served."""
    shown = "n/a" if score is None else f"{score:.3f}"
    return Alert(
        kind="version_rejected",
        task=task,
        message=f"model version {version} rejected (held-out score {shown}): {reason}",
        details={"version": version, "reason": reason, "heldout_score": score},
    )


def canary_rolled_back(task: str, version: str, reason: str) -> Alert:
    """A candidate that did worse on live traffic than the active version (the canary)."""
    return Alert(
        kind="canary_rolled_back",
        task=task,
        message=f"canary {version} rolled back, the active version keeps serving: {reason}",
        details={"version": version, "reason": reason},
    )


def alarm(kind: str, task: str, view: Any) -> Alert:
    """An engine alarm with the numbers behind it (a :class:`~.status.EngineView`)."""
    mean = "-" if view.confidence is None else f"{view.confidence:.3f}"
    text = (
        f"{kind} on task {task}: agreement {mean} over the last comparisons "
        f"({view.comparisons:,} in all), sampling {view.sampling_rate:.1%} of requests, "
        f"phase {view.phase}"
    )
    details = {
        "comparisons": view.comparisons,
        "confidence": view.confidence,
        "sampling_rate": view.sampling_rate,
        "phase": view.phase,
    }
    return Alert(kind=kind, task=task, message=text, details=details)


def cap_reached(
    task: str,
    cap: Any,
    *,
    currency: str,
    consequence: str,
    estimate: float,
) -> Alert:
    """budget_100 when a call would cross a cap: which cap, how much, when it resets.

    ``cap`` is a :class:`~apprentice.reporting.status.BudgetCap` (or None when the
    ledger cannot name one, e.g. a reservation another gateway holds).
    """
    if cap is None:
        text = (
            f"budget cap reached for {task}: a call of about {amount(estimate)} {currency} "
            f"would cross it; {consequence}"
        )
        details: dict[str, Any] = {"estimate": estimate}
    else:
        text = (
            f"{cap.scope} {cap.window} budget cap reached for {task}: {amount(cap.spend)} of "
            f"{amount(cap.cap)} {currency} spent, resets {cap.resets_at}; {consequence}"
        )
        details = {"estimate": estimate, **cap.model_dump()}
    return Alert(kind="budget_100", task=task, message=text, details=details)


def training_failed(task: str, reason: str | None, next_retry: str | None) -> Alert:
    """The alert for a training run that failed or whose candidate was rejected."""
    text = f"training failed on task {task}: {reason or 'no reason given'}"
    if next_retry:
        text += f"; next retry {next_retry}"
    return Alert(
        kind="training_failed",
        task=task,
        message=text,
        details={"reason": reason, "next_retry": next_retry},
    )
