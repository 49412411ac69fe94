"""SIGKILL ``apprentice serve`` in the middle of a batch, restart, continue: nothing lost.

The server is a real subprocess; the test waits on its "listening" line and on
``/readyz`` with bounded polling (no sleeps as synchronisation).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import httpx
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from gw_config import config_dict

from apprentice.store import open_store


class Server:
    """``apprentice serve`` as a child process; waits are async (the test loop also runs
    the loopback vLLM server the child calls while it starts)."""

    def __init__(self, cfg_path: Path, log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apprentice.cli", "serve", "-c", str(cfg_path), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.url = ""

    async def started(self, timeout_s: float = 60.0) -> Server:
        """Read the child's "listening on" line, then poll /readyz (bounded)."""
        assert self.proc.stdout is not None
        line = (
            await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), timeout_s)
        ).decode()
        assert "listening on" in line, f"serve did not start: {line!r}, see {self.log.name}"
        self.url = line.strip().rsplit(" ", 1)[-1]
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                assert self.proc.poll() is None, "serve exited"
                await asyncio.sleep(0.02)  # poll interval, not synchronisation
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


class VLLMFake:
    """A loopback server speaking vLLM's OpenAI API with runtime LoRA loading.

    Its "adapters" answer ``label = first word`` (the teacher's rule), so a promoted
    version agrees with the teacher and the task moves through phases 2 and 3.
    """

    def __init__(self) -> None:
        self.loads: list[str] = []

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def load(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.loads.append(body["lora_name"])
        return web.Response(text=f"Success: LoRA adapter '{body['lora_name']}' added.")

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        task_input = json.loads(body["messages"][-1]["content"])
        content = json.dumps(gw_rules.teacher_output(task_input))
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
            }
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_post("/v1/load_lora_adapter", self.load)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app


@pytest.fixture
async def vllm() -> AsyncIterator[tuple[VLLMFake, str]]:
    fake = VLLMFake()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, f"http://127.0.0.1:{server.port}/v1"
    await server.close()


def _seed_promoted_v1(url: str, tmp_path: Path) -> None:
    path = tmp_path / "models" / "classify" / "v1"
    path.mkdir(parents=True)
    with open_store(url) as store:
        gw_fakes.promote_v1(store, path)


@pytest.mark.parametrize("phase", ["cold_start", "reinforcement"])
async def test_sigkill_mid_batch_loses_nothing_accepted(
    tmp_path: Path, vllm: tuple[VLLMFake, str], phase: str
) -> None:
    fake, vllm_url = vllm
    # phase2_to_phase3 0.99 is out of reach for a 100-wide window (Wilson bound of 100/100
    # is 0.963): the task stays in its phase, so every answer is paid and compared.
    thresholds = {
        "phase1_to_phase2": 10_000,
        "phase2_to_phase3": 0.99,
        "coaching_trigger": 0.6,
        "emergency_threshold": 0.4,
    }
    d = config_dict(tmp_path, task={"confidence_thresholds": thresholds})
    d["local"] = {**d["local"], "backend": "vllm", "base_url": vllm_url}
    d["sampling"] = {**d["sampling"], "window_size": 100}
    cfg_path = tmp_path / "apprentice.yaml"
    cfg_path.write_text(yaml.safe_dump(d))
    log = tmp_path / "serve.log"
    if phase == "reinforcement":
        _seed_promoted_v1(d["store"]["url"], tmp_path)

    first = await Server(cfg_path, log).started()
    accepted: dict[str, dict[str, Any]] = {}
    await _batch(first.url, 0, 200, accepted, kill_after=60, server=first)
    assert first.proc.returncode == -signal.SIGKILL
    killed_at = dict(accepted)

    with open_store(d["store"]["url"]) as store:
        spend = {e.request_id: e for e in store.spend_entries("classify")}
        examples = {e.request_id for e in store.examples("classify")}
        state = store.load_task_state("classify")
        counts = store.request_counts("classify")
        comparisons = len(store.comparisons("classify"))
        versions = [(v.version, v.state) for v in store.versions("classify")]
        held = store.reservations()  # calls in flight at the kill: maybe billed, not booked
    assert set(killed_at) <= set(spend)  # every answered request's spend is durable
    assert set(killed_at) <= examples  # and its example
    # The engine state saved by the last transaction counts exactly the stored examples.
    assert state is not None and state["examples"] == len(examples)
    assert state["phase"] == phase
    assert state["confidence"]["comparisons"] == comparisons  # the window survived
    if phase == "reinforcement":
        assert comparisons >= 60 and fake.loads == ["v1"]

    second = await Server(cfg_path, log).started()
    try:
        st = await _state(second.url)
        assert st["phase"] == phase
        assert st["comparisons"] == comparisons
        assert st["active_version"] == (None if phase == "cold_start" else "v1")
        assert st["requests"] == counts.requests
        assert st["teacher_calls"] == counts.teacher_calls
        assert st["examples"]["train"] + st["examples"]["heldout"] == len(examples)
        # The restart booked what was in flight at its reserved worst case: never free.
        booked = sum(e.amount for e in spend.values()) + sum(r.amount for r in held)
        assert abs(st["spend"]["today"] - booked) < 1e-6
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
        assert [(v.version, v.state) for v in store.versions("classify")] == versions
        assert store.reservations() == []  # a clean stop leaves nothing held
    if phase == "reinforcement":
        assert fake.loads == ["v1", "v1"]  # the active adapter was loaded again on restart
