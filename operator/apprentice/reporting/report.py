"""The report: per task, its status and timeline, as JSON or one self-contained HTML file.

``apprentice report -c FILE --html report.html [--json]`` and ``apprentice demo``
call :func:`build_report` then :func:`apprentice.reporting.html.render_html` or
:meth:`Report.to_json`; both views carry the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apprentice.config import ApprenticeConfig
from apprentice.reporting.plots import Thresholds
from apprentice.reporting.status import TaskStatus
from apprentice.reporting.timeline import TaskTimeline, collect
from apprentice.store import Store
from apprentice.store.feedback import FeedbackSummary

__all__ = ["Report", "TaskReport", "build_report", "thresholds_of"]


@dataclass
class TaskReport:
    task: str
    description: str
    timeline: TaskTimeline
    thresholds: Thresholds
    status: TaskStatus | None = None
    feedback: FeedbackSummary = field(default_factory=FeedbackSummary)  # POST /v1/feedback

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "description": self.description,
            "status": None if self.status is None else self.status.to_json(),
            "thresholds": {
                "phase2_to_phase3": self.thresholds.phase2_to_phase3,
                "coaching_trigger": self.thresholds.coaching_trigger,
                "emergency_threshold": self.thresholds.emergency_threshold,
                "min_floor": self.thresholds.min_floor,
            },
            "timeline": self.timeline.to_json(),
            "feedback": _feedback_json(self.feedback),
        }


def _feedback_json(summary: FeedbackSummary) -> dict[str, Any]:
    return {
        "count": summary.count,
        "corrections": summary.corrections,
        "scores": summary.scores,
        "mean_score": summary.mean_score,
        "mean_agreement": summary.mean_agreement,
        "comments": [{"at": at.isoformat(), "comment": text} for at, text in summary.comments],
    }


@dataclass
class Report:
    generated_at: datetime
    tasks: list[TaskReport] = field(default_factory=list)
    title: str = "Apprentice report"

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "tasks": {t.task: t.to_json() for t in self.tasks},
        }


def thresholds_of(cfg: ApprenticeConfig, task: str) -> Thresholds:
    t = cfg.task(task)
    ct = t.confidence_thresholds
    return Thresholds(
        phase2_to_phase3=ct.phase2_to_phase3,
        coaching_trigger=ct.coaching_trigger,
        emergency_threshold=ct.emergency_threshold,
        min_floor=t.effective_sampling(cfg.sampling).min_floor,
    )


def build_report(
    store: Store,
    cfg: ApprenticeConfig,
    *,
    statuses: Mapping[str, TaskStatus] | None = None,
    tasks: list[str] | None = None,
    now: datetime | None = None,
) -> Report:
    """Collect every configured task (or ``tasks``) from the store."""
    report = Report(generated_at=now or datetime.now(UTC))
    for name in tasks or [t.name for t in cfg.tasks]:
        task = cfg.task(name)
        window = task.effective_sampling(cfg.sampling).window_size
        report.tasks.append(
            TaskReport(
                task=name,
                description=task.description,
                timeline=collect(store, name, window_size=window),
                thresholds=thresholds_of(cfg, name),
                status=(statuses or {}).get(name),
                feedback=store.feedback_summary(name),
            )
        )
    return report
