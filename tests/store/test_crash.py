"""SIGKILL a writer mid-stream: every write it acknowledged is still there after reopen."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from apprentice.store import open_store

WRITER = Path(__file__).with_name("crash_writer.py")
ACKS_BEFORE_KILL = 60


@pytest.mark.parametrize("mode", ["single", "group"])
def test_sigkill_loses_no_acknowledged_write(store_url: str, mode: str) -> None:
    child = subprocess.Popen(
        [sys.executable, str(WRITER), store_url, mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    acked: list[str] = []
    # Synchronise on the pipe: kill right after an acknowledgement, while the
    # child is already inside its next transaction.
    while len(acked) < ACKS_BEFORE_KILL:
        line = child.stdout.readline()
        assert line, f"writer exited early with {child.wait()}"
        acked.append(line.strip())
    child.send_signal(signal.SIGKILL)
    acked.extend(line.strip() for line in child.stdout)  # written before the kill landed
    assert child.wait() == -signal.SIGKILL

    with open_store(store_url) as store:
        stored = {r.id for r in store.requests("crash")}
        assert set(acked) <= stored
        # Nothing half-written: every stored request has its example and its spend.
        examples = {e.request_id for e in store.examples("crash")}
        spent = {s.request_id for s in store.spend_entries("crash")}
        assert examples == stored and spent == stored
        assert store.request_counts("crash").requests == len(stored)
        state = store.load_task_state("crash")
        assert state is not None and state["last"] == len(stored) - 1
        total = store.spend_total(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC))
        assert abs(total - 0.001 * len(stored)) < 1e-9
