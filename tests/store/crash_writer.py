"""Child process for test_crash: writes requests forever, printing each id after commit.

Usage: python crash_writer.py STORE_URL. A line on stdout is the promise under
test: once printed, the request, its example and its spend are durable.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from apprentice.store import (
    ExampleRecord,
    RequestRecord,
    SpendRecord,
    assign_split,
    input_hash,
    open_store,
)


def main(url: str) -> None:
    store = open_store(url)
    print("ready", flush=True)
    i = 0
    while True:
        rid, now = f"req-{i}", datetime.now(UTC)
        task_input = {"text": f"ticket {i}"}
        digest = input_hash(task_input)
        store.record_request(
            RequestRecord(id=rid, task="crash", received_at=now, route="both", served_by="teacher"),
            example=ExampleRecord(
                task="crash", input=task_input, output={"n": i}, input_hash=digest,
                split=assign_split(digest, 0.1), teacher_provider="replay", teacher_model="m",
                created_at=now, cost=0.001, request_id=rid,
            ),
            spend=[SpendRecord(task="crash", at=now, amount=0.001, request_id=rid)],
            task_state={"last": i},
        )  # fmt: skip
        sys.stdout.write(f"{rid}\n")
        sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    main(sys.argv[1])
