"""A real SQLite store filled by the real engine: a task's whole life in 1,200 requests.

The simulation drives ``apprentice.engine.lifecycle`` exactly as the gateway does
(route, observe, record the example, save the state in the request transaction)
with synthetic agreement scores, so reports and status read what production writes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apprentice.config import ApprenticeConfig
from apprentice.engine import lifecycle
from apprentice.store import (
    ComparisonRecord,
    EventRecord,
    ExampleRecord,
    ModelVersionRecord,
    RequestRecord,
    SpendRecord,
    Store,
    assign_split,
    input_hash,
)

TASK = "classify_ticket"
START = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
COST = 0.0021

CONFIG = """
tasks:
  - name: classify_ticket
    description: Classify support tickets by category and priority
    input_schema: {{text: str, metadata: dict}}
    output_schema: {{category: str, priority: int, confidence: float}}
    evaluator: structured_match
    match_fields: [category, priority]
    confidence_thresholds: {{phase1_to_phase2: 200}}
    budget: {{daily: 5.0}}
remote: {{provider: replay, path: answers.jsonl, price_as: claude-sonnet-4-5}}
local: {{fine_tune_batch_size: 400}}
sampling: {{min_floor: 0.03, window_size: 60}}
budget: {{daily: 10.0, weekly: 50.0}}
store: {{url: "sqlite:///{db}"}}
"""


@dataclass
class Filled:
    cfg: ApprenticeConfig
    config_path: Path
    store: Store
    requests: int
    end: datetime


def fill(store: Store, cfg: ApprenticeConfig, n: int = 1200, drop_at: int = 1000) -> datetime:
    """Run ``n`` requests through the engine; agreement 0.97, dropping to 0.3 at ``drop_at``."""
    rng = random.Random(3)
    state = lifecycle.initial(lifecycle.TaskParams.from_config(cfg, TASK))
    at = START
    for i in range(n):
        at = START + timedelta(seconds=20 * i)
        rid = f"r{i:05d}"
        due = lifecycle.training_due(state)
        if due.due and not state.training_in_progress:
            version = store.next_version_name(TASK)
            store.add_version(
                ModelVersionRecord(
                    TASK, version, "candidate", f"/m/{version}", "apprentice/tiny", at, at
                )
            )
            state = lifecycle.training_started(state)
            state = lifecycle.training_finished(state, ok=True)
            if version == "v2":
                store.update_version(TASK, version, state="rejected", heldout_score=0.81,
                                     reason="0.810 < active v1 0.950", at=at)  # fmt: skip
                store.add_event(EventRecord(TASK, at, "version_rejected", "v2 rejected"))
                state = lifecycle.version_rejected(state, version)
            else:
                store.update_version(TASK, version, state="promoted", heldout_score=0.95, at=at)
                state = lifecycle.version_promoted(state, version)
        decision = lifecycle.route(state, rid, student_available=True, teacher_allowed=True)
        score = None
        if decision.compares:
            good = 0.97 if i < drop_at else 0.3
            score = 1.0 if rng.random() < good else rng.choice([0.0, 0.667])
            state, alarms = lifecycle.observe(state, score, index=i, now=at.timestamp())
            for a in alarms:
                store.add_event(EventRecord(TASK, at, a.kind.value, f"{a.kind.value} fired",
                                            {"index": a.index, "comparisons": a.comparisons}))  # fmt: skip
        called = decision.calls_teacher
        task_input = {"text": f"ticket {i}", "metadata": {"tier": "pro"}}
        h = input_hash(task_input)
        example = None
        if called:
            example = ExampleRecord(TASK, task_input, {"category": "billing", "priority": 2,
                                    "confidence": 0.9}, h, assign_split(h, 0.1), "replay",
                                    "claude-sonnet-4-5", at, COST, rid)  # fmt: skip
            state = lifecycle.record_example(state)
        store.record_request(
            RequestRecord(
                rid,
                TASK,
                at,
                decision.route.value,  # type: ignore[arg-type]
                decision.serve,
                cost=COST if called else 0.0,
                latency_ms=3.0,
            ),
            example=example,
            comparison=None
            if score is None
            else ComparisonRecord(
                TASK, rid, at, score, phase=state.phase.value, sampling_rate=decision.sampling_rate
            ),
            spend=[SpendRecord(TASK, at, COST, request_id=rid, provider="replay")]
            if called
            else [],
            task_state=state.to_dict(),
        )
    return at
