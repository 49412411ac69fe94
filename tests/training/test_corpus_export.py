"""Training data hygiene, export formats and the dataset file shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ticket_workload import TASK, workload

from apprentice import config, prompts
from apprentice.training import corpus, export
from apprentice.training.dataset import DatasetError, TrainingDataset

HYPER = config.TrainingConfig(coaching_weight=3)


def rows(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"e{i}", "input": inp, "output": out, "split": "train"}
        for i, (inp, out) in enumerate(workload(n, seed=11))
    ]


def test_heldout_is_never_trained_on_and_invalid_answers_are_dropped() -> None:
    examples = rows(6)
    examples[1]["split"] = "heldout"
    examples[2]["output"] = {"category": "billing"}  # missing required fields
    selection = corpus.training_selection(TASK, examples, hyper=HYPER)
    assert selection.heldout_excluded == 1 and selection.invalid_excluded == 1
    trained_inputs = [json.loads(c[1]["content"]) for c in selection.dataset.conversations]
    assert examples[1]["input"] not in trained_inputs
    assert examples[2]["input"] not in trained_inputs
    assert selection.example_ids == ("e0", "e3", "e4", "e5")
    assert len(selection.dataset) == 4


def test_duplicates_collapse_and_coaching_repeats_wrong_examples() -> None:
    examples = rows(4)
    examples.append({**examples[0], "id": "dup", "output": {**examples[0]["output"]}})
    examples[3]["student_wrong"] = True
    examples[2]["student_score"] = 0.33
    plain = corpus.training_selection(TASK, examples, hyper=HYPER)
    assert plain.duplicates_dropped == 1 and len(plain.dataset) == 4 and plain.coached == 0
    coached = corpus.training_selection(TASK, examples, hyper=HYPER, coaching=True)
    assert coached.coached == 2 and len(coached.dataset) == 4 + 2 * 2
    assert coached.dataset.unique_examples == 4
    assert coached.data_hash != plain.data_hash


def test_data_hash_is_stable_and_names_the_data() -> None:
    examples = rows(5)
    a = corpus.training_selection(TASK, examples, hyper=HYPER)
    b = corpus.training_selection(TASK, list(reversed(examples)), hyper=HYPER)
    c = corpus.training_selection(TASK, examples[:4], hyper=HYPER)
    assert a.data_hash == b.data_hash != c.data_hash
    assert a.data_hash.startswith("sha256:")


def test_every_export_format_is_built_from_the_request_prompt() -> None:
    pairs = workload(3, seed=2)
    chat = [json.loads(line) for line in export.export_jsonl(TASK, pairs, "chat").splitlines()]
    openai = [json.loads(line) for line in export.export_jsonl(TASK, pairs, "openai").splitlines()]
    alpaca = [json.loads(line) for line in export.export_jsonl(TASK, pairs, "alpaca").splitlines()]
    for (inp, out), c, o, a in zip(pairs, chat, openai, alpaca, strict=True):
        request = prompts.build_messages(TASK, inp)
        assert c["messages"][:2] == request
        assert c["messages"][2] == {"role": "assistant", "content": prompts.render_output(out)}
        assert o == c  # OpenAI fine-tuning takes the same chat shape
        assert a == {
            "instruction": request[0]["content"],
            "input": request[1]["content"],
            "output": prompts.render_output(out),
        }


def test_dataset_jsonl_round_trip_and_clear_errors(tmp_path: Path) -> None:
    dataset = corpus.training_selection(TASK, rows(3), hyper=HYPER).dataset
    path = dataset.write_jsonl(tmp_path / "train.jsonl")
    again = TrainingDataset.read_jsonl(path)
    assert again == dataset
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not JSON"):
        (tmp_path / "bad.jsonl").write_text(path.read_text().splitlines()[0] + "\n{oops\n")
        TrainingDataset.read_jsonl(tmp_path / "bad.jsonl")
    with pytest.raises(DatasetError, match="last message must be the assistant"):
        TrainingDataset.from_jsonl_text(
            json.dumps({"messages": [{"role": "user", "content": "x"}]})
        )
    with pytest.raises(DatasetError, match="cannot read dataset"):
        TrainingDataset.read_jsonl(tmp_path / "missing.jsonl")
