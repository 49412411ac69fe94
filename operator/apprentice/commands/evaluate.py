"""``apprentice evaluate``: check a task's evaluator on labelled pairs before going live.

Each line of ``--pairs`` is ``{"student": {...}, "teacher": {...}}`` with an
optional ``"label": true`` (a right answer) or ``false`` (a wrong one). The
command scores every pair with the task's configured evaluator and prints the
scores; with labels it prints the separation at the config's thresholds: how
many right answers score at or above ``phase2_to_phase3`` (they would let the
task graduate) and how many wrong ones under ``coaching_trigger`` (they would
make it coach). An evaluator that passes wrong answers would let a wrong
student graduate and keep serving. The exit status is 1 when labelled pairs do
not separate at 95% each, so a CI job can gate on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apprentice import config
from apprentice.commands import _store_args
from apprentice.config import TaskConfig

REQUIRED_SHARE = 0.95  # of right answers above graduation and of wrong ones under coaching


class PairsError(ValueError):
    """A pairs line that is not ``{"student": {...}, "teacher": {...}, "label"?: bool}``."""


@dataclass(frozen=True, slots=True)
class Pair:
    line: int
    student: dict[str, Any]
    teacher: dict[str, Any]
    label: bool | None


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "evaluate",
        help="score labelled student/teacher pairs with a task's evaluator",
        description="Score student/teacher pairs with the task's evaluator; with labels, "
        "show how well it separates right from wrong answers at the config's thresholds.",
    )
    parser.add_argument("-c", "--config", required=True, help="path to apprentice.yaml")
    parser.add_argument("--task", required=True, help="task name in the config")
    parser.add_argument(
        "--pairs",
        required=True,
        help='JSONL: {"student": {...}, "teacher": {...}, "label": true|false} per line',
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def parse_pairs(lines: list[str], source: str = "<pairs>") -> list[Pair]:
    """Pairs of a file; blank lines are skipped, anything else wrong names its line."""
    pairs: list[Pair] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{source}:{number}"
        try:
            item = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PairsError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict):
            raise PairsError(f'{where}: expected {{"student": {{...}}, "teacher": {{...}}}}')
        student, teacher, label = item.get("student"), item.get("teacher"), item.get("label")
        for name, value in (("student", student), ("teacher", teacher)):
            if not isinstance(value, dict):
                raise PairsError(f"{where}: {name} must be a JSON object, got {value!r}")
        if label is not None and not isinstance(label, bool):
            raise PairsError(f"{where}: label must be true or false, got {label!r}")
        pairs.append(Pair(number, dict(student or {}), dict(teacher or {}), label))
    if not pairs:
        raise PairsError(f"{source}: no pairs")
    return pairs


async def score_pairs(task: TaskConfig, pairs: list[Pair]) -> list[float]:
    """The task's evaluator on every pair, in order."""
    from apprentice.evaluators import build_evaluator

    evaluator = build_evaluator(task)
    try:
        return [
            (await evaluator.evaluate(task, pair.student, pair.teacher)).score for pair in pairs
        ]
    finally:
        await evaluator.aclose()


def separation(task: TaskConfig, pairs: list[Pair], scores: list[float]) -> dict[str, Any] | None:
    """Right answers at or above graduation, wrong ones under coaching; None without labels."""
    th = task.confidence_thresholds
    right = [s for p, s in zip(pairs, scores, strict=True) if p.label is True]
    wrong = [s for p, s in zip(pairs, scores, strict=True) if p.label is False]
    if not right and not wrong:
        return None
    right_ok = sum(1 for s in right if s >= th.phase2_to_phase3)
    wrong_ok = sum(1 for s in wrong if s < th.coaching_trigger)
    right_share = right_ok / len(right) if right else None
    wrong_share = wrong_ok / len(wrong) if wrong else None
    return {
        "phase2_to_phase3": th.phase2_to_phase3,
        "coaching_trigger": th.coaching_trigger,
        "right": len(right),
        "right_above_graduation": right_ok,
        "right_share": right_share,
        "wrong": len(wrong),
        "wrong_below_coaching": wrong_ok,
        "wrong_share": wrong_share,
        "separates": (right_share is None or right_share >= REQUIRED_SHARE)
        and (wrong_share is None or wrong_share >= REQUIRED_SHARE),
    }


def render(task: TaskConfig, pairs: list[Pair], scores: list[float]) -> str:
    out = [f"task {task.name}: {task.evaluator.value}, {len(pairs)} pairs", ""]
    out.append(f"{'line':>6}  {'score':>6}  label")
    for pair, value in zip(pairs, scores, strict=True):
        label = "-" if pair.label is None else "right" if pair.label else "wrong"
        out.append(f"{pair.line:>6}  {value:>6.3f}  {label}")
    sep = separation(task, pairs, scores)
    if sep is not None:
        out.append("")
        if sep["right"]:
            out.append(
                f"right answers at or above phase2_to_phase3 ({sep['phase2_to_phase3']:.2f}): "
                f"{sep['right_above_graduation']}/{sep['right']} ({sep['right_share']:.1%})"
            )
        if sep["wrong"]:
            out.append(
                f"wrong answers under coaching_trigger ({sep['coaching_trigger']:.2f}): "
                f"{sep['wrong_below_coaching']}/{sep['wrong']} ({sep['wrong_share']:.1%})"
            )
        verdict = "separates" if sep["separates"] else "does NOT separate"
        out.append(f"the evaluator {verdict} right from wrong (>= {REQUIRED_SHARE:.0%} each)")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config.load(args.config)
        task = cfg.task(args.task)
    except config.ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    except KeyError as exc:
        print(f"{args.config}: {exc.args[0]}", file=sys.stderr)
        return 1
    path = Path(args.pairs)
    lines = _store_args.read_lines(path, "pairs")
    if lines is None:
        return 1
    try:
        pairs = parse_pairs(lines, str(path))
    except PairsError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    from apprentice.evaluators import EvaluatorConfigError, EvaluatorError

    try:
        scores = asyncio.run(score_pairs(task, pairs))
    except (EvaluatorConfigError, EvaluatorError) as exc:
        print(f"task {task.name}: {exc}", file=sys.stderr)
        return 1
    sep = separation(task, pairs, scores)
    if args.json:
        body = {
            "task": task.name,
            "evaluator": task.evaluator.value,
            "pairs": [
                {"line": p.line, "score": round(s, 6), "label": p.label}
                for p, s in zip(pairs, scores, strict=True)
            ],
            "separation": sep,
        }
        print(json.dumps(body, indent=2))
    else:
        print(render(task, pairs, scores))
    return 0 if sep is None or sep["separates"] else 1
