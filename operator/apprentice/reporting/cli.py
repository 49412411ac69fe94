"""Plain-text views for the terminal: the status table and the demo summary.

Hand-written fixed-width tables (no ``rich``): output stays readable when piped,
logged by CI or pasted in an issue, and costs no dependency.
"""

from __future__ import annotations

from collections.abc import Sequence

from apprentice.reporting.status import StatusReport, TaskStatus

__all__ = ["format_status", "format_table", "money", "percent"]


def money(value: float | None, currency: str = "USD") -> str:
    if value is None:
        return "-"
    sign = "$" if currency == "USD" else f"{currency} "
    return f"{sign}{value:,.2f}" if abs(value) >= 1 or value == 0 else f"{sign}{value:,.4f}"


def percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded to their widest cell; numeric cells right-aligned."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str], head: bool = False) -> str:
        out = []
        for i, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            numeric = not head and i > 0 and cell[:1] in "0123456789$-+."
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        return indent + "  ".join(out).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(header, head=True), rule, *(line(r) for r in rows)])


def _flags(s: TaskStatus) -> str:
    on = [
        name
        for name, flag in (
            ("coaching", s.coaching),
            ("EMERGENCY", s.emergency),
            ("drift", s.drift),
            ("shift", s.shift),
            ("anti-correlation", s.anti_correlation),
            (_budget_flag(s), s.budget_exhausted),
            ("TRAINING FAILED", s.last_training is not None and not s.last_training.ok),
            ("paused", s.paused),
        )
        if flag
    ]
    return ", ".join(on) if on else "none"


def _budget_flag(s: TaskStatus) -> str:
    cap = s.budget_cap
    if cap is None:
        return "BUDGET EXHAUSTED"
    return f"BUDGET EXHAUSTED ({cap.scope} {cap.window} cap, resets {cap.resets_at})"


def _capped(used: float, cap: float | None, currency: str) -> str:
    if cap is None:
        return f"{money(used, currency)} (no cap)"
    return f"{money(used, currency)} of {money(cap, currency)} ({percent(used / cap, 0)})"


def _details(s: TaskStatus) -> str:
    cur = s.spend.currency
    trend = "-" if s.confidence is None else f"{s.trend:+.3f}"
    if s.training_in_progress:
        training = "in progress"
    elif s.training_due:
        training = f"due ({s.training_reason})" if s.training_reason else "due"
    else:
        training = "not due"
    rows = [
        ("phase", f"{s.phase_number} {s.phase}"),
        ("confidence", f"{_num(s.confidence)}  lower bound {_num(s.confidence_lower_bound)}"),
        ("trend", trend),
        ("sampling rate", percent(s.sampling_rate)),
        ("flags", _flags(s)),
        ("comparisons", f"{s.comparisons:,}"),
        ("examples", f"train {s.examples.train:,}  held-out {s.examples.heldout:,}"),
        (
            "requests",
            f"{s.requests:,}  teacher {s.teacher_calls:,}  student-only {s.student_answers:,}",
        ),
        ("active version", s.active_version or "none (the teacher serves)"),
        ("training", training),
        ("spend today", _capped(s.spend.today, s.spend.caps.daily, cur)),
        ("spend week", _capped(s.spend.week, s.spend.caps.weekly, cur)),
        ("spend month", _capped(s.spend.month, s.spend.caps.monthly, cur)),
        ("est. savings", money(s.estimated_savings, cur)),
    ]
    if s.budget_cap is not None:
        cap = s.budget_cap
        rows.append(
            (
                "budget cap",
                f"{cap.scope} {cap.window} cap reached: {money(cap.spend, cur)} of "
                f"{money(cap.cap, cur)}; resets {cap.resets_at}",
            )
        )
    if s.last_training is not None:
        t = s.last_training
        text = "finished" if t.ok else f"FAILED: {t.reason or 'no reason given'}"
        if not t.ok and t.next_retry:
            text += f"; next retry {t.next_retry}"
        rows.append(("last training", f"{text} ({t.at})" if t.at else text))
    if s.canary is not None:
        c = s.canary
        rows.append(
            ("canary", f"{c.version} on {percent(c.share, 0)} ({c.mode}), agreement "
             f"{c.candidate.agreement:.3f} over {c.candidate.comparisons:,} vs the active "
             f"{c.active.agreement:.3f} over {c.active.comparisons:,}: {c.verdict}")
        )  # fmt: skip
    if s.alarms:
        last = s.alarms[-1]
        rows.append(
            ("last alarm", f"{last.kind} at request {last.index:,} ({len(s.alarms)} recent)")
        )
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def format_status(report: StatusReport) -> str:
    """A summary line per task, then each task's details."""
    tasks = list(report.tasks.values())
    if not tasks:
        return "no tasks"
    header = [
        "TASK",
        "PHASE",
        "CONF",
        "LOWER",
        "SAMPLING",
        "SPEND TODAY",
        "SAVED",
        "MODEL",
        "FLAGS",
    ]
    rows = [
        [
            s.task,
            s.phase,
            _num(s.confidence),
            _num(s.confidence_lower_bound),
            percent(s.sampling_rate),
            money(s.spend.today, s.spend.currency),
            money(s.estimated_savings, s.spend.currency),
            s.active_version or "-",
            _flags(s),
        ]
        for s in tasks
    ]
    parts = [format_table(header, rows)]
    for s in tasks:
        parts.append(f"\n{s.task}\n{_details(s)}")
    return "\n".join(parts)
