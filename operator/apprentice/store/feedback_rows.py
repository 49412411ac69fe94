"""Feedback rows and the correction's example (see :mod:`apprentice.store.feedback`).

A correction replaces the output of the input's example in place (``UNIQUE (task,
input_hash)`` keeps one example per input), so the training selection, the held-out
evaluation and the exports all read the human's answer with no second lookup; the
split stays the row's own (a held-out input stays held out). The teacher's answer is
kept on the feedback row (``replaced``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apprentice.prompts import canonical_json
from apprentice.store import budget, codec
from apprentice.store.feedback import HUMAN, FeedbackRecord, FeedbackSummary
from apprentice.store.records import ComparisonRecord, ExampleRecord, RequestRecord, SpendRecord
from apprentice.store.sqlcore import Row, SqlCore, Tx

__all__ = ["FeedbackRows"]

_COLUMNS = (
    "task, request_id, at, output, score, comment, caller, served_by, agreement, replaced, id"
)
_REQUEST_COLUMNS = f"{codec.REQUEST_COLUMNS}, {codec.ANSWER_COLUMNS}"
_EXAMPLE_COLUMNS = (
    "task, input, output, input_hash, split, teacher_provider, teacher_model, created_at,"
    " cost, request_id, weight, trained_in_version, id"
)


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else canonical_json(value)


def _loaded(value: Any) -> dict[str, Any] | None:
    return None if value is None else codec.load_json(value)


def _record(row: Row) -> FeedbackRecord:
    return FeedbackRecord(
        task=str(row[0]),
        request_id=str(row[1]),
        at=codec.from_micros(int(row[2])),
        output=_loaded(row[3]),
        score=None if row[4] is None else float(row[4]),
        comment=row[5],
        caller=row[6],
        served_by=row[7],
        agreement=None if row[8] is None else float(row[8]),
        replaced=_loaded(row[9]),
        id=int(row[10]),
    )


class FeedbackRows(SqlCore):
    """Feedback rows, and the two request lookups feedback needs."""

    def request_record(self, request_id: str) -> RequestRecord | None:
        """The request with what it was asked and answered (``input``, ``output``)."""
        with self._read() as tx:
            row = tx.one(f"SELECT {_REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,))
        return None if row is None else codec.request(row)

    def request_example(self, request_id: str) -> ExampleRecord | None:
        with self._read() as tx:
            row = tx.one(
                f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE request_id = ? ORDER BY id",
                (request_id,),
            )
        return None if row is None else codec.example(row)

    def add_feedback(
        self,
        feedback: FeedbackRecord,
        *,
        example: ExampleRecord | None = None,
        comparison: ComparisonRecord | None = None,
        spend: Sequence[SpendRecord] = (),
        task_state: dict[str, Any] | None = None,
    ) -> tuple[int, bool]:
        with self._write() as tx:
            if spend:  # the budget lock first, as every budget transaction (no deadlock)
                budget.lock(tx, self.dialect)
            replaced, added = (None, False)
            if example is not None:
                replaced, added = self._correct(tx, example)
            row = tx.one(
                f"INSERT INTO feedback ({_COLUMNS.removesuffix(', id')})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    feedback.task, feedback.request_id, codec.to_micros(feedback.at),
                    _json(feedback.output), feedback.score, feedback.comment, feedback.caller,
                    feedback.served_by, feedback.agreement, _json(replaced),
                ),
            )  # fmt: skip
            assert row is not None
            if comparison is not None:
                self._compare(tx, comparison)
            budget.insert_spend(tx, self.dialect, spend)
            if task_state is not None:
                self._upsert_state(tx, feedback.task, task_state, feedback.at)
        return int(row[0]), added

    def _correct(self, tx: Tx, e: ExampleRecord) -> tuple[dict[str, Any] | None, bool]:
        """The input's example now answers the human's output; (its old output, inserted)."""
        old = tx.one(
            "SELECT output FROM examples WHERE task = ? AND input_hash = ?", (e.task, e.input_hash)
        )
        if old is not None:
            tx.execute(
                "UPDATE examples SET output = ?, teacher_provider = ?, teacher_model = NULL"
                " WHERE task = ? AND input_hash = ?",
                (canonical_json(e.output), HUMAN, e.task, e.input_hash),
            )
            return codec.load_json(old[0]), False
        tx.execute(
            "INSERT INTO examples (task, input, output, input_hash, split, teacher_provider,"
            " teacher_model, created_at, cost, request_id, weight, trained_in_version)"
            " VALUES (?, ?, ?, ?, ?, ?, NULL, ?, 0, ?, ?, NULL)",
            (
                e.task, canonical_json(e.input), canonical_json(e.output), e.input_hash,
                e.split, HUMAN, codec.to_micros(e.created_at), e.request_id, float(e.weight),
            ),
        )  # fmt: skip
        return None, True

    def _compare(self, tx: Tx, c: ComparisonRecord) -> None:
        tx.execute(
            "INSERT INTO comparisons (task, request_id, at, score, details, student_version,"
            " phase, sampling_rate) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c.task, c.request_id, codec.to_micros(c.at), float(c.score),
                canonical_json(c.details), c.student_version, c.phase, c.sampling_rate,
            ),
        )  # fmt: skip
        tx.execute(
            "UPDATE task_counters SET comparisons = comparisons + 1 WHERE task = ?", (c.task,)
        )

    def feedback(self, task: str, limit: int | None = None) -> list[FeedbackRecord]:
        return [_record(r) for r in self._tail("feedback", _COLUMNS, "at", "id", task, None, limit)]

    def feedback_summary(self, task: str, comments: int = 5) -> FeedbackSummary:
        with self._read() as tx:
            row = tx.one(
                "SELECT COUNT(*), COUNT(output), COUNT(score), AVG(score), AVG(agreement)"
                " FROM feedback WHERE task = ?",
                (task,),
            )
            latest = tx.all(
                "SELECT at, comment FROM feedback WHERE task = ? AND comment IS NOT NULL"
                f" ORDER BY at DESC, id DESC LIMIT {int(comments)}",
                (task,),
            )
        assert row is not None  # an aggregate always answers one row
        return FeedbackSummary(
            count=int(row[0]),
            corrections=int(row[1]),
            scores=int(row[2]),
            mean_score=None if row[3] is None else float(row[3]),
            mean_agreement=None if row[4] is None else float(row[4]),
            comments=tuple((codec.from_micros(int(at)), str(text)) for at, text in latest),
        )
