"""Training and serving cost of the embedded default's student (apprentice/tiny).

Trains a LoRA adapter on N synthetic support tickets (the demo's workload),
then serves the held-out tickets through the in-process ``transformers``
student exactly as the gateway does (one ``generate`` per request), and
reports: training seconds, held-out agreement (structured_match on
category/priority, weights 2:1), milliseconds per answer, peak RSS.

    .venv/bin/python bench/training_bench.py [--examples 250] [--heldout 200] [--write]

``--write`` stores bench/results/training.json and .md. The machine's load
average is recorded with the numbers: on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from apprentice import config  # noqa: E402
from apprentice.students import build_student  # noqa: E402
from apprentice.students.base import VersionRef  # noqa: E402
from apprentice.training import corpus  # noqa: E402
from apprentice.training.backends.huggingface import HuggingFaceFineTuner  # noqa: E402


def tickets(
    n: int, seed: int
) -> tuple[config.TaskConfig, list[tuple[dict[str, Any], dict[str, Any]]]]:
    """The demo's ticket workload when present, else the tests' stand-in."""
    try:
        from apprentice.demo import workload

        pairs = [(t.input, t.output) for t in workload.generate(n, seed=seed)]
    except ImportError:
        sys.path.insert(0, str(ROOT / "tests" / "training"))
        import ticket_workload

        pairs = ticket_workload.workload(n, seed=seed)
    sys.path.insert(0, str(ROOT / "tests" / "training"))
    import ticket_workload

    return ticket_workload.TASK, pairs


def agreement(student: dict[str, Any] | None, teacher: dict[str, Any]) -> float:
    if student is None:
        return 0.0
    category = str(student.get("category", "")).lower() == str(teacher["category"]).lower()
    priority = student.get("priority") == teacher["priority"]
    return (2 * category + priority) / 3


async def serve(
    task: config.TaskConfig, local: config.LocalConfig, adapter: Path, pairs: list[Any]
) -> dict[str, Any]:
    student = build_student(local)
    started = time.perf_counter()
    await student.load_version(VersionRef("v1", str(adapter)))
    load_s = time.perf_counter() - started
    await student.generate(task, pairs[0][0])  # warm-up, as a gateway's first request
    scores, latencies, invalid, out_bytes = [], [], 0, []
    for task_input, teacher in pairs:
        answer = await student.generate(task, task_input)
        latencies.append(answer.latency_s * 1000)
        invalid += answer.output is None
        out_bytes.append(len(answer.raw_text.encode()))
        scores.append(agreement(answer.output, teacher))
    await student.aclose()
    latencies.sort()
    return {
        "heldout_agreement": round(statistics.fmean(scores), 4),
        "heldout_answers": len(pairs),
        "invalid_answers": invalid,
        "ms_per_answer_mean": round(statistics.fmean(latencies), 2),
        "ms_per_answer_p50": round(latencies[len(latencies) // 2], 2),
        "ms_per_answer_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "output_bytes_mean": round(statistics.fmean(out_bytes), 1),
        "version_load_s": round(load_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=250, help="Teacher examples collected.")
    parser.add_argument("--heldout", type=int, default=200, help="New tickets to answer.")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help="Store bench/results/training.*")
    args = parser.parse_args()

    import torch

    task, pairs = tickets(args.examples + args.heldout, args.seed)
    train, heldout = pairs[: args.examples], pairs[args.examples :]
    local = config.LocalConfig(backend="transformers", base_model="apprentice/tiny", device="cpu")
    rows = [{"input": i, "output": o, "split": "train"} for i, o in train]
    dataset = corpus.training_selection(task, rows, hyper=local.training).dataset
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "v1"
        started = time.perf_counter()
        result = HuggingFaceFineTuner(device="cpu").train(
            dataset, base_model="apprentice/tiny", hyper=local.training, out_dir=adapter
        )
        train_s = time.perf_counter() - started
        served = asyncio.run(serve(task, local, adapter, heldout))
    numbers = {
        "examples_trained": len(dataset),
        "train_seconds": round(train_s, 2),
        "optimiser_steps": result.hyper_parameters["steps"],
        "epochs": result.hyper_parameters["epochs"],
        "final_loss": result.loss_curve[-1],
        **served,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    print(json.dumps(numbers, indent=2))
    if args.write:
        out = ROOT / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        (out / "training.json").write_text(json.dumps(numbers, indent=2) + "\n")
        rows_md = "\n".join(f"| {k} | {v} |" for k, v in numbers.items())
        (out / "training.md").write_text(
            "# Training bench: apprentice/tiny on the ticket workload\n\n"
            f"`python bench/training_bench.py --examples {args.examples} "
            f"--heldout {args.heldout} --write`\n\n"
            "Training: huggingface LoRA (all linear layers + embeddings/head), in process.\n"
            "Serving: the in-process transformers student, one generate per request.\n"
            "Targets (demo, 2 CPU cores): train < 90 s, agreement >= 0.9, < 20 ms/answer, "
            "< 2 GB RSS.\nLoad averages are recorded because the machine may be shared; "
            "timings taken under load are upper bounds.\n\n"
            "| metric | value |\n|---|---|\n" + rows_md + "\n"
        )


if __name__ == "__main__":
    main()
