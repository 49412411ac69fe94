"""Pure reconciliation logic: desired-vs-actual, status from the gateway state, conditions.

No I/O here (the clock is passed in), so every decision the handlers execute is unit
tested as data.

Conditions follow kstatus: ``Ready`` (the gateway answers), ``Reconciling`` (children
applied but not yet serving), ``Stalled`` (the spec cannot be reconciled), ``Training``,
``Degraded`` (emergency, or the last training failed; the current version keeps
serving), ``BudgetExhausted`` and ``Canary`` (a candidate version is on live traffic; set
once a task had one, False after it ended).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel

from apprentice.kube.status_models import (
    CanaryTally,
    DistilledTaskStatus,
    ExampleCounts,
    Spend,
    TaskCanary,
)

__all__ = [
    "JobOutcome",
    "canary_condition",
    "condition",
    "differs",
    "events_for",
    "format_duration",
    "job_outcome",
    "next_version",
    "set_condition",
    "status_from_state",
]

Obj = dict[str, Any]
JobOutcome = Literal["pending", "running", "succeeded", "failed"]


def rfc3339(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def differs(desired: Any, actual: Any) -> bool:
    """Whether ``actual`` lacks anything ``desired`` sets (extra server fields are fine)."""
    if isinstance(desired, Mapping):
        if not isinstance(actual, Mapping):
            return True
        return any(differs(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(actual, list) or len(desired) != len(actual):
            return True
        return any(differs(d, a) for d, a in zip(desired, actual, strict=True))
    if isinstance(desired, bool) or isinstance(actual, bool):
        return desired is not actual
    if isinstance(desired, int) and isinstance(actual, str):  # quantities: 1 comes back "1"
        return str(desired) != actual
    if isinstance(desired, int | float) and isinstance(actual, int | float):
        return float(desired) != float(actual)
    return bool(desired != actual)


def condition(conditions: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    for cond in conditions:
        if cond.get("type") == kind:
            return cond
    return None


def set_condition(
    conditions: Iterable[Mapping[str, Any]],
    kind: str,
    status: bool | None,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: dt.datetime,
) -> list[Obj]:
    """A new list with one condition set; lastTransitionTime moves only when status does."""
    text = "Unknown" if status is None else ("True" if status else "False")
    out: list[Obj] = []
    found = False
    for cond in conditions:
        if cond.get("type") != kind:
            out.append(dict(cond))
            continue
        found = True
        changed = cond.get("status") != text
        when = rfc3339(now) if changed else cond.get("lastTransitionTime") or rfc3339(now)
        out.append(_cond(kind, text, reason, message, generation, when))
    if not found:
        out.append(_cond(kind, text, reason, message, generation, rfc3339(now)))
    return out


def _cond(
    kind: str, status: str, reason: str, message: str, generation: int | None, when: str
) -> Obj:
    cond: Obj = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


#: DistilledTaskStatus fields the operator itself writes; every other one is the gateway's.
OPERATOR_FIELDS = frozenset(
    {"endpoint", "observed_generation", "last_alarm_index", "last_training_failure", "conditions"}
)
FROM_GATEWAY = frozenset(DistilledTaskStatus.model_fields) - OPERATOR_FIELDS
#: Where the gateway's TaskStatus names a field differently.
GATEWAY_NAMES = {"active_model_version": "active_version"}


def status_from_state(state: Mapping[str, Any]) -> Obj:
    """The DistilledTask status fields of a gateway TaskStatus, camelCase through the model's
    aliases; unset ones are null (a merge patch clears them)."""
    values = {f: state.get(GATEWAY_NAMES.get(f, f)) for f in FROM_GATEWAY}
    values["examples"] = _known(ExampleCounts, state.get("examples"))
    values["spend"] = _known(Spend, state.get("spend"))
    values["canary"] = _canary(state.get("canary"))
    status = DistilledTaskStatus.model_validate(values)
    out: Obj = status.model_dump(mode="json", by_alias=True, include=set(FROM_GATEWAY))
    return out


def _known(model: type[BaseModel], value: Any) -> dict[str, Any]:
    """The keys of ``value`` that ``model`` has (the gateway may report more)."""
    if not isinstance(value, Mapping):
        return {}
    return {k: v for k, v in value.items() if k in model.model_fields}


def _canary(value: Any) -> dict[str, Any] | None:
    """``status.canary`` from the gateway's ``canary`` (None: no canary runs)."""
    if not isinstance(value, Mapping) or not value.get("version"):
        return None
    out = _known(TaskCanary, value)
    out["candidate"] = _known(CanaryTally, value.get("candidate"))
    out["active"] = _known(CanaryTally, value.get("active"))
    started = value.get("started_at")
    if isinstance(started, str) and started:
        try:
            out["since"] = rfc3339(parse_time(started) or dt.datetime.now(dt.UTC))
        except ValueError:  # not ISO 8601: shown as the gateway wrote it
            out["since"] = started
    return out


def canary_condition(
    state: Mapping[str, Any], old: Mapping[str, Any]
) -> tuple[bool, str, str] | None:
    """(status, reason, message) of ``Canary`` from the gateway's state and the last
    status ``old``: True while one runs, False once it ended; None (no condition) for a
    task that has not had one, so most tasks carry no ``Canary`` condition at all."""
    live = state.get("canary")
    if isinstance(live, Mapping) and live.get("version"):
        return True, "CanaryRunning", _canary_text(live)
    was = condition(old.get("conditions") or [], "Canary")
    if old.get("canary") or (was is not None and was.get("status") == "True"):
        version = (old.get("canary") or {}).get("version") or "the candidate"
        return False, "CanaryEnded", f"canary {version} ended: its ModelVersion has the verdict"
    return None


def _canary_text(live: Mapping[str, Any]) -> str:
    cand, act = live.get("candidate") or {}, live.get("active") or {}
    share = live.get("share")
    routed = f"{share:.0%} of live traffic" if isinstance(share, int | float) else "live traffic"
    return (
        f"{live.get('version')} in {live.get('mode')} mode on {routed}: agreement "
        f"{cand.get('agreement', 0)} over {cand.get('comparisons', 0)} comparisons, "
        f"active {live.get('active_version')} {act.get('agreement', 0)} over "
        f"{act.get('comparisons', 0)}; {live.get('reason') or 'collecting evidence'}"
    )


def state_conditions(
    conditions: list[Obj],
    state: Mapping[str, Any],
    *,
    generation: int | None,
    training_running: bool,
    now: dt.datetime,
    training_failure: str | None = None,
) -> list[Obj]:
    """Conditions after a successful read of the gateway state.

    ``training_failure`` (``status.lastTrainingFailure``) keeps ``Degraded`` true between
    a failed training and the next promotion, whatever the gateway reports meanwhile.
    """
    exhausted = bool(state.get("budget_exhausted"))
    training = training_running or bool(state.get("training_in_progress"))
    wanted: list[tuple[str, bool, str, str]] = [
        ("Ready", True, "GatewayServing", f"phase {state.get('phase')}"),
        ("Reconciling", False, "Reconciled", ""),
        ("Stalled", False, "Reconciled", ""),
        (
            "BudgetExhausted",
            exhausted,
            "CapReached" if exhausted else "WithinBudget",
            _spend_text(state) if exhausted else "",
        ),
        ("Training", training, "TrainingRunning" if training else "Idle", ""),
        _degraded(state, training_failure),
    ]
    for kind, status, reason, message in wanted:
        conditions = set_condition(
            conditions, kind, status, reason, message, generation=generation, now=now
        )
    return conditions


def _degraded(state: Mapping[str, Any], training_failure: str | None) -> tuple[str, bool, str, str]:
    """Degraded: an emergency (the teacher serves), or a failed training, else healthy."""
    if state.get("emergency"):
        message = "confidence fell under emergencyThreshold: the teacher serves"
        return ("Degraded", True, "Emergency", message)
    failure = training_failure or _gateway_training_failure(state)
    if failure:
        return ("Degraded", True, "TrainingFailed", failure)
    return ("Degraded", False, "Healthy", "")


def _gateway_training_failure(state: Mapping[str, Any]) -> str:
    """The gateway's own last run when it failed or was rejected (embedded trainer runs)."""
    last = state.get("last_training")
    if not isinstance(last, Mapping) or last.get("ok") is not False:
        return ""
    retry = last.get("next_retry")
    return f"{last.get('reason')}" + (f"; next retry {retry}" if retry else "")


def _spend_text(state: Mapping[str, Any]) -> str:
    """Which cap stops the teacher and when it resets, else the spend per window."""
    cap = state.get("budget_cap")
    if isinstance(cap, Mapping):
        return (
            f"{cap.get('window')} cap of {cap.get('scope')}: spent {cap.get('spend')} of "
            f"{cap.get('cap')} USD; resets at {cap.get('resets_at')}"
        )
    spend = state.get("spend") or {}
    return (
        f"spend today {spend.get('today', 0)} week {spend.get('week', 0)} "
        f"month {spend.get('month', 0)} {spend.get('currency', 'USD')}"
    )


def events_for(old: Mapping[str, Any], state: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(type, reason, message) Events for what changed since the last poll."""
    events: list[tuple[str, str, str]] = []
    if old.get("phase") and state.get("phase") and old.get("phase") != state.get("phase"):
        events.append(("Normal", "PhaseChanged", f"{old['phase']} -> {state['phase']}"))
    last = old.get("lastAlarmIndex")
    for alarm in state.get("alarms") or []:
        index = alarm.get("index")
        if isinstance(index, int) and (last is None or index > last):
            events.append(
                (
                    "Warning",
                    "Alarm",
                    f"{alarm.get('kind')} at request {index} "
                    f"({alarm.get('comparisons')} comparisons)",
                )
            )
    return events


def last_alarm_index(state: Mapping[str, Any], previous: int | None) -> int | None:
    indexes = [a["index"] for a in state.get("alarms") or [] if isinstance(a.get("index"), int)]
    return max([*indexes, *([previous] if previous is not None else [])], default=None)


_VERSION = re.compile(r"^v(\d+)$")


def next_version(existing: Iterable[str]) -> str:
    """The version after every known one: v1, v2, ... (gaps are never reused)."""
    numbers = [int(m.group(1)) for v in existing if (m := _VERSION.match(v))]
    return f"v{max(numbers, default=0) + 1}"


def job_outcome(job: Mapping[str, Any]) -> tuple[JobOutcome, str]:
    """A batch/v1 Job's outcome from its conditions and counters, with the reason."""
    status = job.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "succeeded", cond.get("message") or "the trainer finished"
        if cond.get("type") in ("Failed", "FailureTarget"):
            reason = cond.get("reason") or "Failed"
            return "failed", f"{reason}: {cond.get('message') or 'the trainer failed'}"
    if status.get("succeeded"):
        return "succeeded", "the trainer finished"
    if status.get("active") and status.get("ready", 1):  # "ready": 0 counts pods not yet
        return "running", ""  # scheduled or started (Jobs count those as active too)
    return "pending", ""


def parse_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def format_duration(start: str | None, end: str | None, now: dt.datetime) -> str | None:
    """``1h2m3s`` between two RFC 3339 times (``end`` defaults to now)."""
    begin = parse_time(start)
    if begin is None:
        return None
    seconds = max(0, int(((parse_time(end) or now) - begin).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
