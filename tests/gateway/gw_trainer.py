"""Stand-in for ``python -m apprentice.training.run``: same CLI, spec and outputs.

``python fake_trainer.py --rule first_word --spec spec.json`` reads the spec the
LocalOrchestrator wrote, checks the dataset is chat JSONL of the train split,
and writes ``adapter.json`` (the learned rule) plus ``metadata.json`` into
``out_dir``. ``--rule`` may be ``seq:a,b,c`` to learn ``a`` on the first run,
``b`` on the second... (counted by existing sibling versions).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from apprentice.training.backends.base import TrainingResult
from apprentice.training.dataset import TrainingDataset


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rule", default="first_word")
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()
    spec = json.loads(Path(args.spec).read_text())
    if args.fail:
        print("CUDA out of memory (simulated)", file=sys.stderr)
        return 3
    dataset = TrainingDataset.read_jsonl(spec["dataset"])
    out = Path(spec["out_dir"])
    rule = args.rule
    if rule.startswith("seq:"):
        seq = rule[4:].split(",")
        runs = len([p for p in out.parent.iterdir() if p.name.startswith("v") and p.is_dir()])
        rule = seq[min(runs, len(seq) - 1)]
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapter.json").write_text(json.dumps({"rule": rule}))
    TrainingResult(
        adapter_dir=str(out),
        base_model=spec["base_model"],
        examples_used=len(dataset),
        data_hash=dataset.data_hash,
        hyper_parameters=spec["hyper"],
        loss_curve=[1.0, 0.5],
        duration_s=0.01,
    ).write_metadata(out)
    print(f"trained {rule} on {len(dataset)} conversations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
