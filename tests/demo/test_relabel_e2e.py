"""Labels reorganised part-way, end to end: the student ends up serving the new ones.

Issue 10: after a change, the next version must train on, and be judged by, what
the teacher says *now*. Here the teacher renames one category (``technical`` ->
``engineering``) and merges two (``billing`` + ``refund`` -> ``payments``) at
request :data:`CHANGE_AT`. Everything is real except the paid API: the
:class:`~apprentice.gateway.facade.Apprentice` facade, the engine, the SQLite
store, a replay teacher on the recorded answers, the tiny student and its LoRA
trainer subprocess. The engine must notice the drop, retrain (the old names
retired from the training data), promote the new version, and the student must
then serve the new labels at >= 0.9 agreement.

Inputs are short (a few words and a number) so the two training runs take
seconds of CPU each; :mod:`tests.demo.test_demo_e2e` covers the full-size path.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from apprentice.gateway.facade import Apprentice

pytestmark = pytest.mark.slow

TASK = "route_ticket"
REQUESTS = 900
CHANGE_AT = 520
LAST = 150  # the agreement is measured on the student's answers among the last LAST requests
_PHRASES = {
    "billing": ("charged twice", "wrong invoice", "bill too high", "double charge"),
    "refund": ("want a refund", "money back", "refund my order", "return for refund"),
    "shipping": ("parcel is late", "package lost", "delivery stuck", "wrong address"),
    "technical": ("app crashes", "error 500", "page will not load", "login button broken"),
}
RENAMED = {"billing": "payments", "refund": "payments", "technical": "engineering"}


def workload(n: int, change_at: int, seed: int = 3) -> list[tuple[dict[str, Any], str]]:
    """(input, the label the teacher gives it) per request; distinct inputs."""
    rng = random.Random(seed)
    out: list[tuple[dict[str, Any], str]] = []
    seen: set[str] = set()
    while len(out) < n:
        category = rng.choice(sorted(_PHRASES))
        text = f"{rng.choice(_PHRASES[category])} #{rng.randint(100, 999)}"
        if text in seen:
            continue
        seen.add(text)
        label = RENAMED.get(category, category) if len(out) >= change_at else category
        out.append(({"text": text}, label))
    return out


def config(directory: Path) -> dict[str, Any]:
    root = directory.resolve()
    return {
        "tasks": [
            {
                "name": TASK,
                "description": "Route a support ticket to a team",
                "input_schema": {"text": "str"},
                "output_schema": {"label": "str"},
                "evaluator": "structured_match",
                "match_fields": ["label"],
                "confidence_thresholds": {
                    "phase1_to_phase2": 240,
                    "phase2_to_phase3": 0.85,
                    "coaching_trigger": 0.70,
                    "emergency_threshold": 0.50,
                },
            }
        ],
        "remote": {"provider": "replay", "path": str(root / "answers.jsonl")},
        "local": {
            "backend": "transformers",
            "base_model": "apprentice/tiny",
            "fine_tune_backend": "huggingface",
            "fine_tune_batch_size": 300,
            "model_dir": str(root / "models"),
            "device": "cpu",
            "max_new_tokens": 32,
            "training": {"seed": 0, "heldout_fraction": 0.1},
        },
        "sampling": {"decay_function": "exponential", "min_floor": 0.05, "window_size": 60},
        "budget": {"daily": 25.0, "weekly": 100.0, "monthly": 300.0, "currency": "USD"},
        "store": {"url": f"sqlite:///{root / 'apprentice.db'}"},
    }


async def _serve(cfg_path: Path, requests: list[tuple[dict[str, Any], str]]) -> Run:
    """Every request through the facade, waiting out training as ``batch`` does."""
    run = Run()
    async with Apprentice.from_config(cfg_path) as app:
        numbers = iter(range(10**6))
        app.gateway.new_request_id = lambda: f"relabel-{next(numbers)}"
        for task_input, _ in requests:
            if app.training_due_or_running(TASK):
                await app.wait_for_training_idle(TASK)
            result = await app.run(TASK, task_input)
            run.answers.append((result.request_id, result.output))
        await app.flush()
        store = app.store
        run.served_by = {r.id: (r.served_by, r.student_version) for r in store.requests(TASK)}
        run.versions = [(v.version, v.state) for v in store.versions(TASK)]
        kinds = ["shift", "drift", "coaching", "emergency"]
        run.alarms = [(e.kind, e.data.get("index")) for e in store.events(TASK, kinds=kinds)]
    return run


@dataclass
class Run:
    answers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    served_by: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    versions: list[tuple[str, str]] = field(default_factory=list)
    alarms: list[tuple[str, Any]] = field(default_factory=list)


def test_renamed_and_merged_labels_are_served_after_a_retrain(tmp_path: Path) -> None:
    requests = workload(REQUESTS, CHANGE_AT)
    (tmp_path / "answers.jsonl").write_text(
        "".join(json.dumps({"input": i, "output": {"label": y}}) + "\n" for i, y in requests),
        encoding="utf-8",
    )
    cfg_path = tmp_path / "apprentice.yaml"
    cfg_path.write_text(yaml.safe_dump(config(tmp_path)), encoding="utf-8")

    run = asyncio.run(_serve(cfg_path, requests))

    # The engine saw the change (an alarm after it) and a version trained after it serves.
    assert any(isinstance(i, int) and i >= CHANGE_AT for _, i in run.alarms), run.alarms
    promoted = [v for v, state in run.versions if state == "promoted"]
    assert promoted and promoted[-1] != "v1", run.versions
    # That version never saw the old names: they were retired from its training data.
    data = (tmp_path / "models" / TASK / ".runs" / promoted[-1] / "train.jsonl").read_text(
        encoding="utf-8"
    )
    answers = {json.loads(line)["messages"][-1]["content"] for line in data.splitlines()}
    assert not [a for a in answers if any(old in a for old in RENAMED)], answers
    # The student serves the new labels.
    tail = list(zip(run.answers[-LAST:], requests[-LAST:], strict=True))
    by_student = [
        (output, truth)
        for (request_id, output), (_, truth) in tail
        if run.served_by[request_id] == ("student", promoted[-1])
    ]
    assert len(by_student) >= LAST // 2, f"{len(by_student)} of {LAST} answered by the student"
    agreement = sum(o.get("label") == truth for o, truth in by_student) / len(by_student)
    assert agreement >= 0.9, f"student agreement {agreement:.3f} on the new labels"
