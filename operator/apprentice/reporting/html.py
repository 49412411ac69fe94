"""One self-contained HTML file: inline CSS, plots as base64 PNG, no scripts, no fetches.

It opens from a mail attachment, a CI artifact or an air-gapped laptop alike.
Every value that came from data is escaped.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from apprentice.reporting import plots
from apprentice.reporting.report import Report, TaskReport
from apprentice.reporting.timeline import TaskTimeline

__all__ = ["render_html", "write_html"]

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,
sans-serif;color:#1f2933;background:#f5f7fa}
header{background:#1f2933;color:#fff;padding:22px 40px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#cbd2d9;font-size:13px}
main{max-width:1120px;margin:0 auto;padding:24px 40px 48px}
section.task{background:#fff;border:1px solid #e4e7eb;border-radius:10px;padding:24px 28px;
margin-bottom:28px;box-shadow:0 1px 2px rgba(0,0,0,.04)}
h2{margin:0 0 2px;font-size:19px}
h3{margin:26px 0 8px;font-size:14px;text-transform:uppercase;letter-spacing:.06em;color:#52606d}
.desc{color:#616e7c;margin:0 0 16px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;
margin-left:8px;vertical-align:middle}
.cold_start{background:#e4e7eb;color:#3e4c59}.reinforcement{background:#fdebc8;color:#8d5b0b}
.steady_state{background:#d5f0e0;color:#1b6e43}.alert{background:#fde2e4;color:#a61b29}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px;
margin:14px 0}
.card{border:1px solid #e4e7eb;border-radius:8px;padding:10px 14px;background:#fbfcfd}
.card .k{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#7b8794}
.card .v{font-size:20px;font-weight:600;margin-top:2px;font-variant-numeric:tabular-nums}
.card .s{font-size:12px;color:#7b8794}
.good{color:#1b6e43}.bad{color:#a61b29}
img{display:block;width:100%;margin:18px 0 4px}
table{border-collapse:collapse;width:100%;font-size:13px;font-variant-numeric:tabular-nums}
th{text-align:left;font-weight:600;color:#52606d;border-bottom:2px solid #e4e7eb;padding:6px 10px}
td{border-bottom:1px solid #eef0f3;padding:6px 10px;vertical-align:top}
.empty{color:#9aa5b1;font-style:italic}
footer{color:#9aa5b1;font-size:12px;text-align:center;padding:0 0 30px}
"""


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:,.4f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _card(key: str, value: str, sub: str = "", cls: str = "") -> str:
    sub_html = f'<div class="s">{escape(sub)}</div>' if sub else ""
    return (
        f'<div class="card"><div class="k">{escape(key)}</div>'
        f'<div class="v {cls}">{escape(value)}</div>{sub_html}</div>'
    )


def _cards(tr: TaskReport) -> str:
    t: TaskTimeline = tr.timeline
    s = tr.status
    saved = t.all_teacher_estimate - t.teacher_spend
    cards = [
        _card("requests", f"{t.requests:,}", f"{t.teacher_calls:,} sent to the teacher"),
        _card(
            "teacher spend",
            _money(t.teacher_spend),
            f"all-teacher {_money(t.all_teacher_estimate)}",
        ),
        _card(
            "saved",
            _pct(t.spend_reduction),
            f"{_money(saved)} vs all-teacher",
            "good" if (t.spend_reduction or 0) > 0.5 else "",
        ),
    ]
    if s is not None:
        cards += [
            _card(
                "confidence",
                _num(s.confidence),
                f"lower bound {_num(s.confidence_lower_bound)}",
            ),
            _card("sampling rate", _pct(s.sampling_rate), f"trend {s.trend:+.3f}"),
            _card("examples", f"{s.examples.train:,}", f"{s.examples.heldout:,} held out"),
            _card("active version", s.active_version or "none"),
            _card(
                "spend today",
                _money(s.spend.today),
                "cap " + (_money(s.spend.caps.daily) if s.spend.caps.daily else "none"),
                "bad" if s.budget_exhausted else "",
            ),
        ]
    else:
        active = next((v.version for v in t.versions if v.state == "promoted"), None)
        cards.append(_card("active version", active or "none"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _badges(tr: TaskReport) -> str:
    s = tr.status
    phase = s.phase if s else (tr.timeline.phases[-1].phase if tr.timeline.phases else None)
    out = ""
    if phase:
        out += f'<span class="badge {phase}">{escape(plots.PHASE_LABELS.get(phase, phase))}</span>'
    if s is not None:
        flags = [
            ("coaching", s.coaching),
            ("emergency", s.emergency),
            ("drift", s.drift),
            ("shift", s.shift),
            ("budget exhausted", s.budget_exhausted),
            ("paused", s.paused),
        ]
        out += "".join(f'<span class="badge alert">{name}</span>' for name, on in flags if on)
    return out


def _versions_table(tr: TaskReport) -> str:
    rows = tr.timeline.versions
    if not rows:
        return '<p class="empty">No model version trained yet.</p>'
    body = "".join(
        "<tr>"
        f"<td><b>{escape(v.version)}</b></td><td>{escape(v.state)}</td>"
        f"<td>{_num(v.heldout_score)}</td><td>{escape(v.created_at)}</td>"
        f"<td>{escape(v.promoted_at or '')}</td>"
        f"<td>{'' if v.promoted_index is None else f'{v.promoted_index:,}'}</td>"
        f"<td>{escape(v.reason or '')}</td></tr>"
        for v in rows
    )
    return (
        "<table><tr><th>version</th><th>state</th><th>held-out score</th><th>created</th>"
        "<th>promoted</th><th>at request</th><th>reason</th></tr>" + body + "</table>"
    )


def _alarms_table(tr: TaskReport) -> str:
    alarms = list(tr.timeline.alarms)
    if not alarms and tr.status is not None:
        alarms = [a.model_dump() for a in tr.status.alarms]
    if not alarms:
        return '<p class="empty">No alarms.</p>'
    body = "".join(
        "<tr>"
        f"<td><b>{escape(str(a.get('kind')))}</b></td>"
        f"<td>{escape(str(a.get('index') if a.get('index') is not None else ''))}</td>"
        f"<td>{escape(str(a.get('comparisons') if a.get('comparisons') is not None else ''))}</td>"
        f"<td>{escape(str(a.get('at') or ''))}</td>"
        f"<td>{escape(str(a.get('message') or ''))}</td></tr>"
        for a in alarms
    )
    return (
        "<table><tr><th>kind</th><th>request</th><th>comparisons</th><th>at</th>"
        "<th>message</th></tr>" + body + "</table>"
    )


def _feedback(tr: TaskReport) -> str:
    """Feedback counts and the latest comments (people's text: escaped like all data)."""
    fb = tr.feedback
    if fb.count == 0:
        return '<p class="empty">No feedback.</p>'
    cards = (
        _card("feedback", f"{fb.count:,}", f"{fb.corrections:,} corrections")
        + _card("mean score", _num(fb.mean_score), f"{fb.scores:,} scores")
        + _card("agreement with corrections", _pct(fb.mean_agreement))
    )
    rows = "".join(
        f"<tr><td>{escape(at.isoformat(timespec='seconds'))}</td><td>{escape(text)}</td></tr>"
        for at, text in fb.comments
    )
    table = f"<table><tr><th>at</th><th>comment</th></tr>{rows}</table>" if rows else ""
    return f'<div class="cards">{cards}</div>{table}'


MAX_TIMELINE_ROWS = 500  # the newest; the events table and `apprentice events` keep all


def _index(value: Any) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _timeline_table(tr: TaskReport) -> str:
    events = tr.timeline.events[-MAX_TIMELINE_ROWS:]
    if not events:
        return '<p class="empty">No events.</p>'
    body = "".join(
        "<tr>"
        f"<td>{escape(str(e.get('at') or ''))}</td>"
        f"<td><b>{escape(str(e.get('kind')))}</b></td>"
        f"<td>{escape(_index(e.get('index')))}</td>"
        f"<td>{escape(str(e.get('message') or ''))}</td></tr>"
        for e in events
    )
    return (
        "<table><tr><th>at</th><th>event</th><th>request</th><th>what happened</th></tr>"
        + body
        + "</table>"
    )


_CAPTIONS = {
    "cumulative_spend": "cumulative teacher spend against all-teacher",
    "spend_buckets": "spend per time bucket",
    "confidence": "agreement and confidence over time",
    "sampling": "sampling rate over time",
}


def _task_section(tr: TaskReport) -> str:
    images = plots.render_all(tr.timeline, tr.thresholds)
    figs = "".join(
        f'<img alt="{escape(_CAPTIONS.get(name, name))}" src="data:image/png;base64,{data}">'
        for name, data in images.items()
    )
    return (
        f'<section class="task"><h2>{escape(tr.task)}{_badges(tr)}</h2>'
        f'<p class="desc">{escape(tr.description)}</p>'
        f"{_cards(tr)}{figs}"
        f"<h3>Model versions</h3>{_versions_table(tr)}"
        f"<h3>Alarms</h3>{_alarms_table(tr)}"
        f"<h3>Feedback</h3>{_feedback(tr)}"
        f"<h3>Timeline</h3>{_timeline_table(tr)}</section>"
    )


def render_html(report: Report) -> str:
    """The whole report as one HTML document (raises PlotsUnavailable without matplotlib)."""
    when = report.generated_at.isoformat(timespec="seconds")
    sections = "".join(_task_section(t) for t in report.tasks) or '<p class="empty">No tasks.</p>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(report.title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(report.title)}</h1>"
        f"<p>{len(report.tasks)} task(s) &middot; generated {escape(when)}</p></header>"
        f"<main>{sections}</main>"
        "<footer>Apprentice: distil an expensive remote model into a cheap local one, "
        "one task at a time.</footer></body></html>"
    )


def write_html(report: Report, path: str | Path) -> Path:
    """Render and write the report; returns the path written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_html(report), encoding="utf-8")
    return target
