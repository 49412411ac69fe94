"""SIGKILL ``apprentice serve`` in the middle of a batch, restart, continue: nothing lost.

The server is a real subprocess; the test waits on its "listening" line and on
``/readyz`` with bounded polling (no sleeps as synchronisation).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import gw_rules
import httpx
import yaml

from apprentice.store import open_store
from conftest import config_dict


class Server:
    def __init__(self, cfg_path: Path, log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apprentice.cli", "serve", "-c", str(cfg_path), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()  # blocks until bound (or the child dies)
        assert "listening on" in line, f"serve did not start: {line!r}, see {log}"
        self.url = line.strip().rsplit(" ", 1)[-1]

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.proc.poll() is None, "serve exited"
        raise AssertionError("serve never became ready")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()


async def _batch(
    url: str,
    start: int,
    stop: int,
    accepted: dict[str, dict[str, Any]],
    kill_after: int | None = None,
    server: Server | None = None,
) -> None:
    """Send inputs [start, stop) 8 at a time; record every 200 (request id -> input)."""
    sem = asyncio.Semaphore(8)
    killed = asyncio.Event()

    async def one(c: httpx.AsyncClient, i: int) -> None:
        async with sem:
            if killed.is_set():
                return
            inp = gw_rules.make_input(i)
            try:
                resp = await c.post(f"{url}/v1/tasks/classify", json={"input": inp})
            except httpx.TransportError:
                return  # in flight when the server died: not accepted
            if resp.status_code == 200:
                accepted[resp.json()["request_id"]] = inp
                if kill_after is not None and len(accepted) >= kill_after and not killed.is_set():
                    killed.set()
                    assert server is not None
                    server.kill()

    async with httpx.AsyncClient(timeout=30) as c:
        await asyncio.gather(*(one(c, i) for i in range(start, stop)))


async def _state(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as c:
        body: dict[str, Any] = (await c.get(f"{url}/v1/tasks/classify/state")).json()
        return body


async def test_sigkill_mid_batch_loses_nothing_accepted(tmp_path: Path) -> None:
    d = config_dict(tmp_path, task={"confidence_thresholds": {"phase1_to_phase2": 10_000}})
    d["local"] = {**d["local"], "backend": "vllm", "base_url": "http://127.0.0.1:9/v1"}
    cfg_path = tmp_path / "apprentice.yaml"
    cfg_path.write_text(yaml.safe_dump(d))
    log = tmp_path / "serve.log"

    first = Server(cfg_path, log)
    first.wait_ready()
    accepted: dict[str, dict[str, Any]] = {}
    await _batch(first.url, 0, 200, accepted, kill_after=60, server=first)
    assert first.proc.returncode == -signal.SIGKILL
    killed_at = dict(accepted)

    with open_store(d["store"]["url"]) as store:
        spend = {e.request_id: e for e in store.spend_entries("classify")}
        examples = {e.request_id for e in store.examples("classify")}
        state = store.load_task_state("classify")
        counts = store.request_counts("classify")
    assert set(killed_at) <= set(spend)  # every answered request's spend is durable
    assert set(killed_at) <= examples  # and its example
    # The engine state saved by the last transaction counts exactly the stored examples.
    assert state is not None and state["examples"] == len(examples)

    second = Server(cfg_path, log)
    second.wait_ready()
    try:
        st = await _state(second.url)
        assert st["phase"] == "cold_start"
        assert st["requests"] == counts.requests
        assert st["teacher_calls"] == counts.teacher_calls
        assert st["examples"]["train"] + st["examples"]["heldout"] == len(examples)
        assert abs(st["spend"]["today"] - sum(e.amount for e in spend.values())) < 1e-6
        await _batch(second.url, 200, 260, accepted)
        assert len(accepted) == len(killed_at) + 60
        st = await _state(second.url)
        assert st["teacher_calls"] == counts.teacher_calls + 60
    finally:
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(timeout=30) == 0
        second.log.close()
    with open_store(d["store"]["url"]) as store:
        assert set(accepted) <= {e.request_id for e in store.spend_entries("classify")}
        assert set(accepted) <= {e.request_id for e in store.examples("classify")}
