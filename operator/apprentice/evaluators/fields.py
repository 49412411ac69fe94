"""Field-by-field semantic similarity of two JSON answers, following the output schema.

Embedding a whole serialised object compares the *shape* of two answers more
than their content: two entity lists with different entities share every key
and bracket, and scored 0.90 that way. Here each part is compared by its kind:

- **objects**: the mean over the union of the schema's properties and the keys
  either side has. A field present on one side only scores 0 (missing and
  extra fields count against); a field absent on both is not counted.
- **prose** (a string with four or more words on either side): the clipped
  cosine of the two embeddings, stretched by :func:`calibrated` so that
  paraphrases score near 1 and different statements near 0.
- **names** (shorter strings: entity texts, streets, cities): word overlap,
  where an abbreviation matches its word (``St``/``Street``, ``Dr.``/``Drive``),
  hyphens and spaces are ignored and a trailing plural ``s`` is dropped; or a
  near-identical embedding (cosine >= :data:`NAME_COSINE`), whichever is
  higher. Embeddings alone cannot tell names apart: "Queen Street" and "King
  Street" have cosine 0.88.
- **labels**: a single word (``billing``, ``CITY``, ``feature_request``), an
  ``enum`` in the schema, booleans: exact, after the task's case and whitespace
  normalisation.
- **numbers**: equal within ``numeric_tolerance`` or 1% of the larger, else 0.
- **lists**: as sets. Items are matched greedily, best pair first, when their
  similarity reaches :data:`ITEM_MATCH`; the score is the F1 of the matches
  (both empty: 1; one empty: 0).

Scoring runs twice over the same walk: once to collect every text pair that
needs an embedding (so one batch is embedded), once with the cosines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from apprentice.evaluators.values import Comparison, normalize

__all__ = [
    "COSINE_RANGE",
    "ITEM_MATCH",
    "NAME_COSINE",
    "Similarity",
    "calibrated",
    "is_prose",
    "name_overlap",
    "score",
]

COSINE_RANGE = (0.30, 0.62)
"""MiniLM cosines mapped onto [0, 1] for prose: 0.30 and under is 0, 0.62 and over is 1.

Measured on tests/data/calibration (bench/results/calibration.md): right
paraphrases have cosines from 0.51 (median 0.74), wrong answers of the same
kind up to 0.54 (median 0.27). With this range ``coaching_trigger`` (0.70)
sits at cosine 0.52 and ``phase2_to_phase3`` (0.85) at 0.57.
"""

ITEM_MATCH = 0.8  # list items this similar are the same item
NAME_COSINE = 0.95  # embeddings this close make two short strings the same name
PROSE_WORDS = 4

Cosine = Callable[[str, str], float]
Similarity = float

_WORD = re.compile(r"[a-z0-9]+")


def calibrated(cosine: float) -> float:
    """A prose cosine on the calibrated [0, 1] scale."""
    lo, hi = COSINE_RANGE
    return min(1.0, max(0.0, (cosine - lo) / (hi - lo)))


def _words(text: str) -> list[str]:
    out = []
    for word in _WORD.findall(text.lower()):
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def is_prose(text: str) -> bool:
    return len(text.split()) >= PROSE_WORDS


def _abbreviates(short: str, long: str) -> bool:
    """``st``/``street``, ``blvd``/``boulevard``, ``roof``/``rooftop``: same first
    letter and the short word's letters in order in the long one."""
    if len(short) > len(long) or not short or short[0] != long[0] or short.isdigit():
        return False
    it = iter(long)
    return all(ch in it for ch in short)


def _same_word(a: str, b: str) -> bool:
    return a == b or _abbreviates(a, b) or _abbreviates(b, a)


def name_overlap(left: str, right: str) -> float:
    """Word-overlap F1 of two short strings, abbreviations and hyphenation forgiven."""
    a, b = _words(left), _words(right)
    if "".join(a) == "".join(b):
        return 1.0
    if not a or not b:
        return 0.0
    unused = list(b)
    matched = 0
    for word in a:
        for i, other in enumerate(unused):
            if _same_word(word, other):
                matched += 1
                del unused[i]
                break
    return 2.0 * matched / (len(a) + len(b))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _props(schema: dict[str, Any] | None) -> dict[str, Any]:
    props = (schema or {}).get("properties")
    return props if isinstance(props, dict) else {}


def _items(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    items = (schema or {}).get("items")
    return items if isinstance(items, dict) else None


class _Walk:
    """One scoring pass; ``cosine`` answers text pairs (or records them)."""

    def __init__(self, rules: Comparison, cosine: Cosine) -> None:
        self.rules = rules
        self.cosine = cosine

    def value(self, s: Any, t: Any, schema: dict[str, Any] | None) -> float:
        if s is None or t is None:
            return 1.0 if s is None and t is None else 0.0
        if isinstance(s, bool) or isinstance(t, bool):
            return 1.0 if s is t else 0.0
        if _is_number(s) and _is_number(t):
            return self.number(float(s), float(t))
        if isinstance(s, str) and isinstance(t, str):
            return self.string(s, t, schema)
        if isinstance(s, dict) and isinstance(t, dict):
            return self.object(s, t, schema)
        if isinstance(s, list) and isinstance(t, list):
            return self.list(s, t, _items(schema))
        return 0.0  # different kinds: a string where a list belongs

    def number(self, s: float, t: float) -> float:
        if not (math.isfinite(s) and math.isfinite(t)):
            return 1.0 if s == t else 0.0
        tolerance = max(self.rules.numeric_tolerance, 0.01 * max(abs(s), abs(t)))
        return 1.0 if abs(s - t) <= tolerance + 1e-12 else 0.0

    def string(self, s: str, t: str, schema: dict[str, Any] | None) -> float:
        ns, nt = normalize(s, self.rules), normalize(t, self.rules)
        if ns == nt:
            return 1.0
        if (schema or {}).get("enum") is not None or not (" " in ns.strip() or " " in nt.strip()):
            return 0.0  # labels and single words compare exactly
        if is_prose(s) or is_prose(t):
            return calibrated(max(0.0, self.cosine(s, t)))
        close = 1.0 if self.cosine(s, t) >= NAME_COSINE else 0.0
        return max(name_overlap(s, t), close)

    def object(self, s: dict[str, Any], t: dict[str, Any], schema: dict[str, Any] | None) -> float:
        props = _props(schema)
        keys = list(dict.fromkeys([*props, *t, *s]))
        scores = []
        for key in keys:
            if key not in s and key not in t:
                continue
            if key not in s or key not in t:
                scores.append(0.0)
                continue
            sub = props.get(key)
            scores.append(self.value(s[key], t[key], sub if isinstance(sub, dict) else None))
        return math.fsum(scores) / len(scores) if scores else 1.0

    def list(self, s: list[Any], t: list[Any], schema: dict[str, Any] | None) -> float:
        if not s and not t:
            return 1.0
        if not s or not t:
            return 0.0
        pairs = sorted(
            ((self.value(a, b, schema), i, j) for i, a in enumerate(s) for j, b in enumerate(t)),
            key=lambda p: (-p[0], p[1], p[2]),
        )
        used_s: set[int] = set()
        used_t: set[int] = set()
        for sim, i, j in pairs:
            if sim < ITEM_MATCH:
                break
            if i in used_s or j in used_t:
                continue
            used_s.add(i)
            used_t.add(j)
        return 2.0 * len(used_s) / (len(s) + len(t))


def texts_to_embed(
    student: Any, teacher: Any, schema: dict[str, Any] | None, rules: Comparison
) -> list[str]:
    """Every text the score will ask a cosine for, each once, in a stable order."""
    seen: dict[str, None] = {}

    def record(a: str, b: str) -> float:
        seen.setdefault(a)
        seen.setdefault(b)
        return 0.0

    _Walk(rules, record).value(student, teacher, schema)
    return list(seen)


def score(
    student: Any, teacher: Any, schema: dict[str, Any] | None, rules: Comparison, cosine: Cosine
) -> float:
    """The field-by-field similarity in [0, 1]; ``cosine`` answers any text pair it is asked."""
    return min(1.0, max(0.0, _Walk(rules, cosine).value(student, teacher, schema)))
