"""Child process for test_crash: writes requests forever, printing each id after commit.

Usage: python crash_writer.py STORE_URL single|group. A line on stdout is the
promise under test: once printed, the request, its example and its spend are
durable. ``group`` writes batches of 8 through ``record_requests``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from apprentice.store import (
    ExampleRecord,
    RequestRecord,
    SpendRecord,
    assign_split,
    input_hash,
    open_store,
)


def write(i: int) -> dict[str, Any]:
    rid, now = f"req-{i}", datetime.now(UTC)
    task_input = {"text": f"ticket {i}"}
    digest = input_hash(task_input)
    return {
        "request": RequestRecord(
            id=rid, task="crash", received_at=now, route="both", served_by="teacher"
        ),
        "example": ExampleRecord(
            task="crash",
            input=task_input,
            output={"n": i},
            input_hash=digest,
            split=assign_split(digest, 0.1),
            teacher_provider="replay",
            teacher_model="m",
            created_at=now,
            cost=0.001,
            request_id=rid,
        ),
        "spend": [SpendRecord(task="crash", at=now, amount=0.001, request_id=rid)],
        "task_state": {"last": i},
    }


def main(url: str, mode: str) -> None:
    store = open_store(url)
    print("ready", flush=True)
    i = 0
    while True:
        if mode == "group":
            batch = [write(i + k) for k in range(8)]
            results = store.record_requests(batch)
            assert not any(isinstance(r, Exception) for r in results), results
        else:
            batch = [write(i)]
            store.record_request(batch[0].pop("request"), **batch[0])
        for k in range(len(batch)):
            sys.stdout.write(f"req-{i + k}\n")
        sys.stdout.flush()
        i += len(batch)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
