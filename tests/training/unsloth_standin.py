"""Stand-in for an Unsloth run (``python -m apprentice.training.run`` on a GPU): same CLI, files.

``python unsloth_standin.py --spec spec.json`` reads the spec the orchestrator
wrote and refuses what a real Unsloth run could not do (another backend, an Ollama
tag instead of Hugging Face weights, a dataset that is not chat JSONL of
system/user/assistant turns). It renders the rows Unsloth's SFT trainer reads
(``{"messages": [...]}``), "learns" the ticket rules from them (which keyword goes
with which category, which urgency word or tier with which priority), prints the
HF Trainer's ``{'loss': ...}`` lines and writes a real peft adapter
(``adapter_config.json`` + ``adapter_model.safetensors``) whose safetensors
metadata carries what it learnt, plus ``metadata.json``. A loopback Ollama that
is given the adapter answers with those rules: learnt from the examples sent, not
known in advance.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ticket_workload import KEYWORDS, RELAXED, URGENT

from apprentice.training.backends.base import TrainingResult
from apprentice.training.dataset import TrainingDataset
from fakes.lora import write_peft_adapter

TOKENS = [k for words in KEYWORDS.values() for k in words]


def learn(rows: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Majority category per keyword, priority per urgency word, per tier otherwise."""
    category: dict[str, Counter[str]] = defaultdict(Counter)
    priority: dict[str, Counter[int]] = defaultdict(Counter)
    for row in rows:
        messages = row["messages"]
        assert isinstance(messages, list)
        task_input = json.loads(messages[-2]["content"])
        output = json.loads(messages[-1]["content"])
        text = str(task_input.get("text", ""))
        urgency = [t for t in URGENT + RELAXED if t in text]
        for token in TOKENS:
            if token in text:
                category[token][output["category"]] += 1
        for token in urgency:
            priority[token][output["priority"]] += 1
        if not urgency:
            tier = str((task_input.get("metadata") or {}).get("tier", ""))
            priority[f"tier:{tier}"][output["priority"]] += 1
    return {
        "category": {k: c.most_common(1)[0][0] for k, c in category.items()},
        "priority": {k: c.most_common(1)[0][0] for k, c in priority.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    spec = json.loads(Path(args.spec).read_text())
    if spec["backend"] != "unsloth":
        print(f"this stand-in runs unsloth, not {spec['backend']}", file=sys.stderr)
        return 2
    if "/" not in spec["base_model"]:
        print(f"unsloth cannot load {spec['base_model']!r}: not a Hugging Face id", file=sys.stderr)
        return 2
    dataset = TrainingDataset.read_jsonl(spec["dataset"])
    rows = [{"messages": list(c)} for c in dataset.conversations]
    for row in rows:
        roles = [m["role"] for m in row["messages"]]  # type: ignore[index]
        assert roles[-2:] == ["user", "assistant"] and roles[0] == "system", roles
    out = Path(spec["out_dir"])
    sft = out.parent / ".runs" / out.name / "sft.jsonl"
    sft.parent.mkdir(parents=True, exist_ok=True)
    sft.write_text("".join(json.dumps(r) + "\n" for r in rows))
    learnt = learn(rows)
    losses = [round(2.0 / (step + 1), 4) for step in range(4)]
    for step, loss in enumerate(losses, 1):
        print({"loss": loss, "grad_norm": 1.0, "learning_rate": 2e-4, "epoch": step / 4})
    hyper = spec["hyper"]
    write_peft_adapter(
        out,
        base_model=spec["base_model"],
        rank=hyper["lora_rank"],
        alpha=hyper["lora_alpha"],
        metadata={"apprentice.learnt": json.dumps(learnt)},
    )
    TrainingResult(
        adapter_dir=str(out),
        base_model=spec["base_model"],
        examples_used=dataset.unique_examples,
        data_hash=dataset.data_hash,
        hyper_parameters={**hyper, "backend": "unsloth"},
        loss_curve=losses,
        duration_s=0.01,
        metrics={"final_loss": losses[-1]},
    ).write_metadata(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
