"""Feedback rows on both backends (SQLite and PostgreSQL): a correction replaces the input's
example in place (split kept, teacher label kept on the row) or adds a ``human`` one; the
comparison, summary and request lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apprentice.store import (
    ComparisonRecord,
    ExampleRecord,
    RequestRecord,
    assign_split,
    input_hash,
    open_store,
)
from apprentice.store.feedback import FeedbackRecord

NOW = datetime(2025, 3, 10, tzinfo=UTC)


def _example(text: str, output: dict[str, str], provider: str, rid: str) -> ExampleRecord:
    task_input = {"text": text}
    digest = input_hash(task_input)
    return ExampleRecord(
        task="t", input=task_input, output=output, input_hash=digest,
        split=assign_split(digest, 0.5), teacher_provider=provider, teacher_model="m",
        created_at=NOW, request_id=rid,
    )  # fmt: skip


def test_corrections_replace_or_add_the_human_example(store_url: str) -> None:
    with open_store(store_url) as store:
        teacher = _example("a b", {"label": "a"}, "replay", "r1")
        store.record_request(
            RequestRecord(id="r1", task="t", received_at=NOW, route="both", served_by="teacher"),
            example=teacher,
        )
        store.record_request(
            RequestRecord(
                id="r2", task="t", received_at=NOW, route="local_only", served_by="student"
            )
        )
        assert store.request_record("r2") is not None and store.request_record("x") is None
        assert store.request_example("r1") is not None and store.request_example("r2") is None
        human = {"label": "z"}
        fix = FeedbackRecord(task="t", request_id="r1", at=NOW, output=human, comment="<i>")
        assert store.add_feedback(fix, example=_example("a b", human, "human", "r1"))[1] is False
        (kept,) = store.examples("t")
        assert (kept.output, kept.teacher_provider, kept.split) == (human, "human", teacher.split)
        assert store.feedback("t")[0].replaced == {"label": "a"}

        new = _example("c d", human, "human", "r2")
        compared = ComparisonRecord(task="t", request_id="r2", at=NOW, score=0.0,
                                    details={"source": "feedback"})  # fmt: skip
        later = FeedbackRecord(task="t", request_id="r2", at=NOW + timedelta(seconds=1),
                               output=human, agreement=0.0)  # fmt: skip
        fid, added = store.add_feedback(later, example=new, comparison=compared)
        assert added and fid > 0
        assert [e.teacher_provider for e in store.examples("t")] == ["human", "human"]
        assert [c.details for c in store.comparisons("t")] == [{"source": "feedback"}]
        assert store.request_counts("t").comparisons == 1
        store.add_feedback(FeedbackRecord(task="t", request_id="r2", at=NOW, score=0.5))
        summary = store.feedback_summary("t")
        assert (summary.count, summary.corrections, summary.scores) == (3, 2, 1)
        assert summary.mean_score == 0.5 and summary.mean_agreement == 0.0
        assert [c for _, c in summary.comments] == ["<i>"]
        assert store.feedback_summary("other").count == 0
