"""The committed calibration set: semantic_similarity separates right from wrong answers.

tests/data/calibration holds 220 labelled pairs over three shapes (free-text
summaries, entity lists, labels with explanations). On it at least 95% of the
right paraphrases must score at or above ``phase2_to_phase3`` (0.85) and at
least 95% of the wrong answers under ``coaching_trigger`` (0.70), overall and
for each shape, through the same ``apprentice evaluate`` a user runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apprentice import cli

DATA = Path(__file__).resolve().parents[1] / "data" / "calibration"
SHAPES = {
    "summarise": "summaries.jsonl",
    "extract_entities": "entities.jsonl",
    "classify_with_reason": "labels.jsonl",
}


def evaluate(capsys: pytest.CaptureFixture[str], task: str, pairs: Path) -> dict:
    args = ["evaluate", "-c", str(DATA / "calibration.yaml"), "--task", task]
    code = cli.main([*args, "--pairs", str(pairs), "--json"])
    out = capsys.readouterr().out
    assert code == 0
    return json.loads(out)


def test_the_set_is_big_enough_and_labelled() -> None:
    total = 0
    for name in SHAPES.values():
        rows = [json.loads(line) for line in (DATA / name).read_text().splitlines() if line]
        assert {r["label"] for r in rows} == {True, False}, name
        total += len(rows)
    assert total >= 200 and len(SHAPES) >= 3


def test_every_shape_separates_at_the_thresholds(capsys: pytest.CaptureFixture[str]) -> None:
    committed = json.loads(
        (Path(__file__).resolve().parents[2] / "bench/results/calibration.json").read_text()
    )
    right = right_ok = wrong = wrong_ok = 0
    for task, name in SHAPES.items():
        sep = evaluate(capsys, task, DATA / name)["separation"]
        assert sep["right_share"] >= 0.95, (task, sep)
        assert sep["wrong_share"] >= 0.95, (task, sep)
        assert sep["separates"] is True
        # The committed figures are what the evaluator gives today.
        assert committed["shapes"][task] == sep, task
        right += sep["right"]
        right_ok += sep["right_above_graduation"]
        wrong += sep["wrong"]
        wrong_ok += sep["wrong_below_coaching"]
    assert right_ok / right >= 0.95 and wrong_ok / wrong >= 0.95


def test_the_text_output_shows_scores_and_the_verdict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        '{"student": {"label": "billing", "explanation": "Charged twice for one order."}, '
        '"teacher": {"label": "billing", "explanation": "Charged twice for one order."}, '
        '"label": true}\n\n'
        '{"student": {"label": "spam", "explanation": "x"}, '
        '"teacher": {"label": "billing", "explanation": "y"}, "label": false}\n'
        '{"student": {"label": "spam"}, "teacher": {"label": "spam"}}\n'
    )
    args = ["evaluate", "-c", str(DATA / "calibration.yaml"), "--task", "classify_with_reason"]
    assert cli.main([*args, "--pairs", str(pairs)]) == 0
    out = capsys.readouterr().out
    assert "     1   1.000  right" in out and "     3   0.000  wrong" in out
    assert "     4   1.000  -" in out
    assert "right answers at or above phase2_to_phase3 (0.85): 1/1 (100.0%)" in out
    assert "wrong answers under coaching_trigger (0.70): 1/1 (100.0%)" in out
    assert "the evaluator separates right from wrong" in out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", ":1: not JSON"),
        ('{"student": [], "teacher": {}}', ":1: student must be a JSON object"),
        ('{"student": {}, "teacher": {}, "label": "yes"}', ":1: label must be true or false"),
        ("", "no pairs"),
    ],
)
def test_bad_pairs_name_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, line: str, message: str
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(line + "\n")
    args = ["evaluate", "-c", str(DATA / "calibration.yaml"), "--task", "summarise"]
    assert cli.main([*args, "--pairs", str(pairs)]) == 1
    assert message in capsys.readouterr().err


def test_an_unknown_task_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["evaluate", "-c", str(DATA / "calibration.yaml"), "--task", "nope"]
    assert cli.main([*args, "--pairs", str(DATA / "labels.jsonl")]) == 1
    assert "nope" in capsys.readouterr().err


def test_pairs_that_do_not_separate_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    same = '{"label": "spam", "explanation": "An offer of a prize for bank details."}'
    pairs.write_text(f'{{"student": {same}, "teacher": {same}, "label": false}}\n')
    args = ["evaluate", "-c", str(DATA / "calibration.yaml"), "--task", "classify_with_reason"]
    assert cli.main([*args, "--pairs", str(pairs)]) == 1
    assert "does NOT separate" in capsys.readouterr().out
