"""``metrics.md``: every Prometheus series with its labels, and every alert of the chart.

Series come from the collectors themselves (a fresh :class:`Metrics` registry for the
gateway, :mod:`apprentice.kube.metrics` for the operator); alerts from the chart's
``prometheusrule.yaml`` template, read as YAML once its Helm expressions are replaced by
readable placeholders, so the page needs no ``helm`` binary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from apprentice.docs_reference import ROOT
from apprentice.docs_reference.markdown import GENERATED, cell, code, table
from apprentice.kube import metrics as operator_metrics
from apprentice.reporting import tally
from apprentice.reporting.metrics import Metrics
from apprentice.vocabulary import Phase

RULES = ROOT / "charts" / "apprentice" / "templates" / "prometheusrule.yaml"

_INTRO = """# Metrics and alerts reference

Each gateway serves Prometheus metrics at `GET /metrics` (one registry per app, so two apps
in one process never mix their numbers); the operator serves its own on
`APPRENTICE_METRICS_PORT`. In Kubernetes the chart's `metrics.gatewayPodMonitor` and
`metrics.serviceMonitor` scrape them, and `metrics.prometheusRule` installs the alerts
below. Counters also expose the client library's `_created` series; histograms their
`_bucket`, `_sum` and `_count`.

Label values: `task` is the task name; `route` is the scheduler's decision (`remote_only`
| `local_only` | `both`); `served_by` is who produced the answer the caller got
(`teacher` | `student` | `cache` | `none` for errors); `provider` is the teacher's provider
(`anthropic`, `openai`, `google`, `openai_compatible`, `replay`); `split` is `train` |
`heldout`; `scope` is a task name or `global`; `window` is `daily` | `weekly` | `monthly`;
`type` is an [error type](errors.md#gateway) or a [teacher reason](errors.md#teacher).
"""

#: What the help string alone does not say; keys must be existing series (tests check).
NOTES: dict[str, str] = {
    "apprentice_errors_total": "`type` is the error type, or the teacher's reason "
    "(`RateLimited`, ...) when the teacher failed.",
    "apprentice_savings_usd_total": "For each request the student answered alone, and each "
    "repeat the answer cache served: the task's average teacher cost.",
    "apprentice_cache_lookups_total": "`result`: `hit` (a stored answer), `shared` (joined "
    "an identical request in flight: one call for both), `miss`. Only tasks with "
    "`cache.enabled`; a hit or shared answer is also counted in `apprentice_requests_total` "
    "with `route=local_only` and `served_by=cache` in the duration.",
    "apprentice_agreement": "Buckets 0.1 ... 1.0.",
    "apprentice_phase": ", ".join(f"{p.number} {p.value}" for p in Phase) + ".",
    "apprentice_sampling_rate": "1 in phases 1 and 2.",
    "apprentice_budget_spend_usd": "In the budget's time zone.",
    "apprentice_request_duration_seconds": "Buckets 0.5 ms ... 120 s.",
    "apprentice_alerts_total": "`kind`: coaching, emergency, shift, drift, anti_correlation, "
    "budget_80, budget_100, version_rejected, canary_rolled_back (after de-duplication).",
    "apprentice_alerts_dropped_total": "`reason`: cooldown, queue_full, delivery_failed.",
}

#: What to do when an alert fires; keys must be the chart's alerts (tests check).
RUNBOOK: dict[str, str] = {
    "ApprenticeBudgetNearCap": "Decide before the cap: raise `spec.budget` (or "
    "`budget.*` in apprentice.yaml) or accept that the student answers alone at 100%. See "
    "[budget at its cap](../guides/troubleshooting.md#a-budget-at-its-cap).",
    "ApprenticeBudgetExhausted": "The teacher is off until the window resets; tasks with a "
    "student keep serving, tasks without one answer `budget_exhausted`. See "
    "[budget at its cap](../guides/troubleshooting.md#a-budget-at-its-cap).",
    "ApprenticeEmergency": "Look for input drift (`apprentice events`, the Alarm Events) and "
    "the last promoted ModelVersion; roll back if a new version caused it. See "
    "[an alarm storm](../guides/troubleshooting.md#an-alarm-storm).",
    "ApprenticeTrainingFailed": "`kubectl get tj` and the TrainingJob's message say why; "
    "see [training that failed](../guides/troubleshooting.md#training-that-failed).",
    "ApprenticeTrainerPending": "`kubectl describe pod` shows the scheduler's reason; see "
    "[GPU sizing](../guides/operations.md#gpu-sizing-per-profile).",
    "ApprenticeGatewayDown": "`kubectl describe pod` and the gateway container's logs; a "
    "store that cannot open or a student that cannot load keeps `/readyz` at 503.",
    "ApprenticeGatewayUnreachableFromOperator": "Check the task Service and any "
    "NetworkPolicy between the operator and the gateway (the chart's gateway policy admits "
    "the operator).",
    "ApprenticeOperatorDown": "`kubectl -n <release namespace> get pods`; the operator's "
    "logs. Serving continues; training and promotion wait.",
}


@dataclass(frozen=True)
class Series:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    source: str


@dataclass
class Alert:
    name: str
    group: str
    expr: str
    severity: str
    summary: str
    description: str
    wait: str = ""
    needs: list[str] = field(default_factory=list)


def _exposed(name: str, kind: str) -> str:
    return f"{name}_total" if kind == "counter" else name


def series() -> list[Series]:
    """Every gateway and operator series, in definition order."""
    out: list[Series] = []
    registry = Metrics().registry
    collectors: list[tuple[Any, str]] = [(c, "gateway") for c in registry._collector_to_names]
    collectors += [(getattr(operator_metrics, n), "operator") for n in operator_metrics.__all__]
    for collector, source in collectors:
        name, kind, labels, doc = _described(collector)
        out.append(Series(_exposed(name, kind), kind, labels, doc, source))
    return out


def _described(collector: Any) -> tuple[str, str, tuple[str, ...], str]:
    """Name, type, label names and help of a ``prometheus_client`` metric or a tally
    (:mod:`apprentice.reporting.tally`, the request path's counters and histograms)."""
    c = collector
    if isinstance(c, tally.Tally):
        return c.name, c.kind, c.labelnames, c.documentation
    return c._name, str(c._type), tuple(c._labelnames), str(c._documentation)


_LITERAL = re.compile(r"\{\{`(.*?)`\}\}")
_EXPR = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_CONTROL = re.compile(r"^\s*(\{\{[^`]*?\}\}\s*)+$")  # a line of Helm actions only
_READABLE = {
    "$pr.trainerPendingMinutes": "metrics.prometheusRule.trainerPendingMinutes",
    "$pr.gatewayDownMinutes": "metrics.prometheusRule.gatewayDownMinutes",
    "$gatewayJob": "<namespace>/<release>-gateways",
    "$operatorJob": "<release>-metrics",
    ".Release.Namespace": "<namespace>",
    'include "apprentice.fullname" .': "<release>",
}


def _plain(line: str) -> str:
    """One template line as the rendered text a reader expects."""
    literals: list[str] = []

    def keep(m: re.Match[str]) -> str:
        literals.append(m.group(1))
        return f"\x00{len(literals) - 1}\x00"

    line = _LITERAL.sub(keep, line)
    line = _EXPR.sub(lambda m: _READABLE.get(m.group(1), f"<{m.group(1)}>"), line)
    return re.sub("\x00(\\d+)\x00", lambda m: literals[int(m.group(1))], line)


def alerts() -> list[Alert]:
    """The chart's alerting rules, with the chart values each one needs beyond the rule."""
    lines: list[str] = []
    needs: dict[int, list[str]] = {}
    stack: list[str] = []
    for raw in RULES.read_text(encoding="utf-8").splitlines():
        stripped = raw.strip()
        if stripped.startswith("{{") and _CONTROL.match(raw):
            for kind, arg in re.findall(r"\{\{-?\s*(if|with|range|end)\b\s*(.*?)\s*-?\}\}", raw):
                if kind == "end":
                    stack.pop()
                else:  # only an ``if`` is a condition a reader needs to know about
                    stack.append(arg.replace(".Values.", "") if kind == "if" else "")
            continue
        if stripped.startswith("- alert:"):
            needs[len(lines)] = [c for c in stack[1:] if c]
        lines.append(_plain(raw))
    doc = yaml.safe_load("\n".join(lines))
    out: list[Alert] = []
    alert_lines = iter(sorted(needs))
    for group in doc["spec"]["groups"]:
        for rule in group["rules"]:
            note = rule.get("annotations") or {}
            out.append(
                Alert(
                    rule["alert"],
                    group["name"],
                    " ".join(str(rule["expr"]).split()),
                    str((rule.get("labels") or {}).get("severity", "")),
                    str(note.get("summary", "")),
                    " ".join(str(note.get("description", "")).split()),
                    str(rule.get("for", "")),
                    needs[next(alert_lines)],
                )
            )
    return out


def render() -> str:
    parts = [
        GENERATED.format(
            source="apprentice/reporting/metrics.py, apprentice/kube/metrics.py and "
            "charts/apprentice/templates/prometheusrule.yaml"
        ),
        _INTRO,
    ]
    found = series()
    for source, title in (("gateway", "Gateway series"), ("operator", "Operator series")):
        parts.append(f"\n## {title} {{#{source}}}\n\n")
        rows = [
            [
                code(s.name),
                s.kind,
                ", ".join(s.labels),
                cell(s.help + (" " + NOTES[s.name] if s.name in NOTES else "")),
            ]
            for s in found
            if s.source == source
        ]
        parts.append(table(["series", "type", "labels", "meaning"], rows))
    parts.append(_ALERTS_INTRO)
    for alert in alerts():
        parts.append(f"\n### {alert.name} {{#{alert.name.lower()}}}\n\n")
        facts = [f"severity `{alert.severity}`", f"group `{alert.group}`"]
        if alert.wait:
            facts.append(f"fires after {code(alert.wait)}")
        if alert.needs:
            facts.append("only with " + ", ".join(code(n) for n in alert.needs))
        parts.append(f"**{cell(alert.summary)}.** " + "; ".join(facts) + ".\n\n")
        parts.append(f"{alert.description}\n\n")
        parts.append(f"```promql\n{alert.expr}\n```\n\n")
        parts.append(f"**What to do:** {RUNBOOK.get(alert.name, 'see the description.')}\n")
    parts.append(_QUERIES)
    return "".join(parts)


_ALERTS_INTRO = """
## Alerts {#alerts}

Installed by the chart with `metrics.prometheusRule.enabled: true`. The gateway alerts
need `metrics.gatewayPodMonitor.enabled`; `ApprenticeTrainerPending` needs
kube-state-metrics. Placeholders in `<...>` are filled in by the chart.
"""

_QUERIES = """
## Example queries {#example-queries}

```promql
# share of requests the teacher still sees, per task (5 min)
sum by (task) (rate(apprentice_teacher_calls_total[5m]))
  / sum by (task) (rate(apprentice_requests_total[5m]))

# teacher spend per hour
sum by (task) (increase(apprentice_teacher_cost_usd_total[1h]))

# p99 gateway latency of student answers
histogram_quantile(0.99, sum by (le) (
  rate(apprentice_request_duration_seconds_bucket{served_by="student"}[5m])))

# a task fell out of steady state
apprentice_phase < 3 and apprentice_phase offset 10m == 3
```
"""
