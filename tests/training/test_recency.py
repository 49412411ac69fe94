"""After a shift, training and validation follow the teacher as it is now (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apprentice.config import LocalConfig, TaskConfig
from apprentice.gateway import training_data
from apprentice.store.records import ExampleRecord
from apprentice.training import recency

T0 = datetime(2026, 11, 1, tzinfo=UTC)
SHIFT = T0 + timedelta(days=1)
CATEGORIES = ("billing", "technical", "account", "shipping")
TASK = TaskConfig.model_validate(
    {"name": "t", "output_schema": {"category": "str", "priority": "int", "note": "str"}}
)


def example(i: int, category: str, at: datetime, split: str = "train") -> ExampleRecord:
    return ExampleRecord(
        task="t",
        input={"text": f"ticket {i}"},
        output={"category": category, "priority": i % 4 + 1, "note": f"free text number {i}"},
        input_hash=str(i),
        split=split,  # type: ignore[arg-type]
        teacher_provider=None,
        teacher_model=None,
        created_at=at,
        id=i,
    )


def stream(rename: dict[str, str], before: int = 200, after: int = 60) -> list[ExampleRecord]:
    old = [example(i, CATEGORIES[i % 4], T0 + timedelta(minutes=i)) for i in range(before)]
    new = [
        example(before + i, rename.get(c, c), SHIFT + timedelta(minutes=i))
        for i, c in ((i, CATEGORIES[i % 4]) for i in range(after))
    ]
    return old + new


def categories(examples: list[ExampleRecord]) -> set[str]:
    return {e.output["category"] for e in examples}


def test_a_renamed_category_retires_the_old_answers() -> None:
    examples = stream({"billing": "payments"})
    assert recency.vanished(examples, SHIFT) == {"category": {"billing"}}
    kept, retired = recency.retire(examples, SHIFT)
    assert retired == 50 and "billing" not in categories(kept)
    assert categories(kept) == {"payments", "technical", "account", "shipping"}


def test_two_merged_categories_retire_both_old_names() -> None:
    examples = stream({"billing": "money", "account": "money"})
    kept, _ = recency.retire(examples, SHIFT)
    assert categories(kept) == {"money", "technical", "shipping"}


def test_a_new_category_retires_nothing_and_free_text_is_not_a_label() -> None:
    examples = [*stream({}), example(999, "security", SHIFT + timedelta(hours=5))]
    assert recency.label_fields(examples) == ["category"]  # "note" has 261 values
    assert recency.retire(examples, SHIFT) == (examples, 0)


def test_too_few_answers_since_the_change_retire_nothing() -> None:
    examples = stream({"billing": "payments"}, after=recency.MIN_AFTER - 1)
    assert recency.retire(examples, SHIFT)[1] == 0
    assert recency.retire(examples, None)[1] == 0


def test_the_training_set_follows_the_new_labels_and_weights_recent_answers() -> None:
    examples = stream({"billing": "payments"})
    before = training_data.weigh_examples(TASK, examples, LocalConfig())
    after = training_data.weigh_examples(TASK, examples, LocalConfig(), since=SHIFT)
    texts = [m[-1]["content"] for m in after.dataset.conversations]
    assert not any('"billing"' in t for t in texts)
    # 150 old examples kept once, 60 recent ones three times each.
    assert len(after.dataset.conversations) == 150 + 60 * recency.RECENT_WEIGHT
    assert len(before.dataset.conversations) == 260


def test_a_version_is_judged_on_recent_held_out_answers_once_there_are_enough() -> None:
    examples = [
        *stream({}),
        *(example(900 + i, "security", SHIFT + timedelta(hours=1, minutes=i)) for i in range(25)),
    ]
    judged = recency.heldout(examples, SHIFT)
    assert len(judged) == 60 + 25 and all(e.created_at >= SHIFT for e in judged)
    few = stream({}, after=recency.MIN_RECENT_HELDOUT - 1)
    assert len(recency.heldout(few, SHIFT)) == len(few)
    assert recency.heldout(few, None) == few


def test_a_few_held_out_answers_are_judged_with_what_every_answer_says_vanished() -> None:
    # A fifth of the answers are held out: soon after a rename, too few of them to
    # tell on their own that the old name is gone; every answer can.
    every = stream({"technical": "engineering"}, after=recency.MIN_AFTER + 10)
    held = [e for e in every if e.id is not None and e.id % 5 == 0]
    assert categories(recency.heldout(held, SHIFT)) >= {"technical"}  # alone: undecided
    judged = recency.heldout(held, SHIFT, evidence=every)
    assert "technical" not in categories(judged)
    assert {"engineering", "billing"} <= categories(judged)
