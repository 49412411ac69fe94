"""Issue 11 item 3: the llama.cpp student on two CPU cores, next to the in-process one.

One tiny adapter (``--adapter DIR``, or trained here on the ticket workload of
``tests/training``), then:

- ``convert_s``: adapter -> merged ``model.gguf`` (peft merge + GGUF write), median
  of ``--rounds``;
- ``start_s``: the managed restart, from ``load_version`` to a server that lists the
  version (conversion already done);
- ``answers_per_s``: requests one after another, llama.cpp at ``--threads`` threads
  (2: the machine's cores), and the in-process ``transformers`` student for scale;
- ``same``: how many answers are identical (greedy on both sides).

Writes bench/results/llama_cpp.json and llama_cpp.md.
Run: ``.venv/bin/python bench/llama_cpp_bench.py [--adapter DIR] [--answers 40]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "training"))

from ticket_workload import TASK, workload  # noqa: E402

from apprentice import config  # noqa: E402
from apprentice.students import build_student, gguf_export, llama_cpp_managed  # noqa: E402
from apprentice.students.base import Student, VersionRef  # noqa: E402

LOCAL = config.LocalConfig(backend="transformers", base_model="apprentice/tiny", device="cpu")


def train(out: Path) -> Path:
    """A real LoRA run on 16 ticket examples (as tests/students/test_transformers_student)."""
    from apprentice.training import corpus
    from apprentice.training.backends.huggingface import HuggingFaceFineTuner

    rows = [{"input": i, "output": o, "split": "train"} for i, o in workload(16, seed=21)]
    data = corpus.training_selection(TASK, rows, hyper=LOCAL.training).dataset
    HuggingFaceFineTuner(device="cpu").train(
        data, base_model="apprentice/tiny", hyper=LOCAL.training, out_dir=out
    )
    return out


async def rate(student: Student, inputs: list[dict[str, Any]]) -> tuple[float, list[str]]:
    await student.generate(TASK, inputs[0])  # warm-up
    started = time.perf_counter()
    texts = [(await student.generate(TASK, i)).raw_text for i in inputs]
    return len(inputs) / (time.perf_counter() - started), texts


async def measure(adapter: Path, answers: int, threads: int, rounds: int) -> dict[str, Any]:
    convert = []
    for _ in range(rounds):
        started = time.perf_counter()
        gguf_export.convert_version("apprentice/tiny", adapter, force=True)
        convert.append(time.perf_counter() - started)
    inputs = [i for i, _ in workload(answers, seed=99)]
    served = llama_cpp_managed.ManagedLlamaCppStudent(
        LOCAL.model_copy(update={"backend": "llama_cpp"}), threads=threads
    )
    in_process = build_student(LOCAL)
    try:
        started = time.perf_counter()
        await served.load_version(VersionRef("v1", str(adapter)))
        start_s = time.perf_counter() - started
        await in_process.load_version(VersionRef("v1", str(adapter)))
        llama_rate, llama_texts = await rate(served, inputs)
        torch_rate, torch_texts = await rate(in_process, inputs)
    finally:
        await served.aclose()
        await in_process.aclose()
    return {
        "convert_s": round(statistics.median(convert), 3),
        "gguf_bytes": (adapter / gguf_export.GGUF_NAME).stat().st_size,
        "start_s": round(start_s, 2),
        "threads": threads,
        "answers": answers,
        "llama_cpp_answers_per_s": round(llama_rate, 2),
        "in_process_answers_per_s": round(torch_rate, 2),
        "same": sum(a == b for a, b in zip(llama_texts, torch_texts, strict=True)),
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }


def write(result: dict[str, Any]) -> None:
    out = ROOT / "bench" / "results"
    (out / "llama_cpp.json").write_text(json.dumps(result, indent=2) + "\n")
    r = result
    (out / "llama_cpp.md").write_text(
        "# llama.cpp student (issue 11 item 3)\n\n"
        "`bench/llama_cpp_bench.py`: apprentice/tiny + one trained LoRA adapter, served by\n"
        "llama-cpp-python's server (managed restart, merged GGUF), requests one after another.\n\n"
        "| figure | value |\n|---|---|\n"
        f"| conversion adapter -> GGUF (median) | {r['convert_s']} s |\n"
        f"| GGUF size | {r['gguf_bytes'] / 1e6:.1f} MB |\n"
        f"| managed restart to healthy | {r['start_s']} s |\n"
        f"| llama.cpp answers/s ({r['threads']} threads) | {r['llama_cpp_answers_per_s']} |\n"
        f"| in-process transformers answers/s | {r['in_process_answers_per_s']} |\n"
        f"| identical answers | {r['same']} / {r['answers']} |\n\n"
        f"Machine: {r['machine']}, load average {r['load_average']} (shared with other\n"
        "jobs: absolute rates are lower bounds for a quiet machine).\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--adapter", type=Path, default=None)
    parser.add_argument("--answers", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        adapter = args.adapter or train(Path(tmp) / "v1")
        result = asyncio.run(measure(adapter, args.answers, args.threads, args.rounds))
    write(result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
