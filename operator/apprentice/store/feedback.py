"""Feedback on a served answer (``POST /v1/feedback``): the record and the store's verbs.

A feedback row is a person's word on one request: a correction (``output``, the answer
that should have been given) or a ``score`` in [0, 1], with an optional comment. The
rows live in their own table (:mod:`.feedback_rows`); a correction also becomes the
input's training example with provenance ``human`` (:data:`HUMAN`), replacing the
label it had, whose answer the feedback row keeps under ``replaced``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apprentice.store.records import (
    ComparisonRecord,
    ExampleRecord,
    RequestRecord,
    SpendRecord,
)

__all__ = ["HUMAN", "FeedbackRecord", "FeedbackStore", "FeedbackSummary"]

HUMAN = "human"
"""A corrected example's ``teacher_provider``: a person gave its answer (outranks any other)."""


@dataclass(frozen=True)
class FeedbackRecord:
    """One feedback: exactly one of ``output`` (a correction) and ``score`` is set.

    ``agreement`` is the served answer scored against the correction by the task's
    evaluator (``None`` for a score-only feedback, or when it could not be scored);
    ``replaced`` the label the input's example had before a correction replaced it.
    """

    task: str
    request_id: str
    at: datetime
    output: dict[str, Any] | None = None
    score: float | None = None
    comment: str | None = None
    caller: str | None = None
    served_by: str | None = None
    agreement: float | None = None
    replaced: dict[str, Any] | None = None
    id: int | None = None


@dataclass(frozen=True)
class FeedbackSummary:
    """What the report shows: counts, the mean score, the latest comments (newest first)."""

    count: int = 0
    corrections: int = 0
    scores: int = 0
    mean_score: float | None = None
    mean_agreement: float | None = None
    comments: tuple[tuple[datetime, str], ...] = ()


class FeedbackStore(abc.ABC):
    """The store's feedback verbs (a base of :class:`apprentice.store.base.Store`)."""

    @abc.abstractmethod
    def request_record(self, request_id: str) -> RequestRecord | None:
        """The recorded request with this id, of any task (``None``: unknown), with its
        ``input`` and served ``output`` (``None`` when it got no answer, or was recorded
        before the store kept them)."""

    @abc.abstractmethod
    def request_example(self, request_id: str) -> ExampleRecord | None:
        """The example this request added (``None``: it added none); a correction on a
        teacher answer recorded before the store kept requests' inputs reads it there."""

    @abc.abstractmethod
    def add_feedback(
        self,
        feedback: FeedbackRecord,
        *,
        example: ExampleRecord | None = None,
        comparison: ComparisonRecord | None = None,
        spend: Sequence[SpendRecord] = (),
        task_state: dict[str, Any] | None = None,
    ) -> tuple[int, bool]:
        """Keep ``feedback`` and, in the same transaction, its correction as the input's
        ``human`` example (replacing the output of the input's example, or inserting
        ``example`` when the input has none; its split is never changed), its comparison,
        the judge's spend and the engine state. Returns ``(feedback id, example added)``."""

    @abc.abstractmethod
    def feedback(self, task: str, limit: int | None = None) -> list[FeedbackRecord]:
        """The task's feedback in time order (the last ``limit`` when given)."""

    @abc.abstractmethod
    def feedback_summary(self, task: str, comments: int = 5) -> FeedbackSummary:
        """Counts, means and the ``comments`` latest comments of the task's feedback."""

    @abc.abstractmethod
    def prune_requests(self, task: str, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` of ``task``'s request rows received before ``before``,
        oldest first, in one short transaction; returns how many went. Nothing else is
        deleted (examples, comparisons, spend, feedback stay): the request rows are what
        feedback reads, kept for ``store.request_retention_days``
        (:mod:`apprentice.store.retention`)."""
