"""One cap across real gateway processes, and across a SIGKILL with calls in flight.

Each gateway is ``apprentice serve`` in its own subprocess, all on one store
(one SQLite file; one PostgreSQL schema), all calling one loopback teacher in
the test process that counts what it billed (``billing_teacher``). Waits are on
the child's "listening" line and bounded ``/readyz`` polling, never sleeps.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gw_rules
import httpx
import pytest
import yaml
from billing_teacher import BillingTeacher, provider_block
from gw_config import config_dict

from apprentice.store import open_store

CAP = 0.10


class Gateway:
    """``apprentice serve`` as a child process with its own instance id."""

    def __init__(self, cfg_path: Path, log: Path, instance: str) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "apprentice.cli", "serve", "-c", str(cfg_path), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "APPRENTICE_INSTANCE_ID": instance},
        )
        self.url = ""

    async def started(self, timeout_s: float = 90.0) -> Gateway:
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

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code


def _write_config(
    tmp_path: Path, store_url: str, fake: BillingTeacher, *, cap: float = CAP
) -> Path:
    d = config_dict(
        tmp_path,
        store_url=store_url,
        remote=provider_block(fake.base_url, timeout_s=30),
        task={
            "budget": {"daily": cap},
            # No training in these processes: every request is a paid teacher call.
            "confidence_thresholds": {
                "phase1_to_phase2": 100_000,
                "phase2_to_phase3": 0.99,
                "coaching_trigger": 0.6,
                "emergency_threshold": 0.4,
            },
        },
    )
    d["local"] = {**d["local"], "backend": "vllm", "base_url": "http://127.0.0.1:9/v1"}
    path = tmp_path / "apprentice.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


async def _burst(url: str, start: int, n: int) -> list[int]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(timeout=120, limits=limits) as c:

        async def one(i: int) -> int:
            try:
                r = await c.post(f"{url}/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
            except httpx.TransportError:
                return -1  # the gateway died under it
            return r.status_code

        return list(await asyncio.gather(*(one(start + i) for i in range(n))))


def _spend(url: str) -> tuple[float, int]:
    with open_store(url) as store:
        entries = store.spend_entries("classify")
        return math.fsum(e.amount for e in entries), len(store.reservations())


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/shared.db"
    return str(request.getfixturevalue("postgresql_url"))


async def test_three_gateway_processes_under_200_concurrent_requests_each_share_one_cap(
    tmp_path: Path, shared_url: str
) -> None:
    async with BillingTeacher("ok") as fake:
        cfg = _write_config(tmp_path, shared_url, fake)
        open_store(shared_url).close()  # migrate once, before three processes race to
        gateways = [Gateway(cfg, tmp_path / f"gw{i}.log", f"gw-{i}") for i in range(3)]
        try:
            for gw in gateways:
                await gw.started()
            results = await asyncio.gather(
                *(_burst(gw.url, 1000 * k, 200) for k, gw in enumerate(gateways))
            )
            # Then one at a time, round robin, until the shared cap refuses everyone.
            for i in range(80):
                results.append(await _burst(gateways[i % 3].url, 5000 + i, 1))
        finally:
            codes = [gw.stop() for gw in gateways]
        statuses = [s for r in results for s in r]
        assert set(statuses) <= {200, 429}, statuses
        booked, held = _spend(shared_url)
        assert booked <= CAP + 1e-12, booked
        assert booked == pytest.approx(fake.billed, abs=1e-9)
        assert statuses.count(200) == fake.requests
        assert held == 0 and codes == [0, 0, 0]
        assert statuses[-6:] == [429] * 6  # every gateway refuses at the shared cap...
        assert booked >= CAP - 0.01  # ...which was reached (less than one reservation left)


async def test_sigkill_with_calls_in_flight_books_them_and_the_cap_holds_after(
    tmp_path: Path, shared_url: str
) -> None:
    """Three kills with calls in flight, each restart books them; then spend to the cap."""
    cap = 1.2  # three kills with 32 calls in flight book about 0.28 each at worst case
    async with BillingTeacher("ok") as fake:
        cfg = _write_config(tmp_path, shared_url, fake, cap=cap)
        for kill in range(3):
            gw = await Gateway(cfg, tmp_path / f"run{kill}.log", "gw-a").started()  # one owner
            booked, held = _spend(shared_url)
            assert held == 0  # the restart booked what the last kill left in flight
            assert booked >= fake.billed
            before = fake.requests
            done = await _burst(gw.url, 1000 * kill, 5)  # some calls answered and booked
            assert done == [200] * 5
            answered, _ = _spend(shared_url)
            fake.gate = asyncio.Event()  # from now on calls are held at the provider
            burst = asyncio.ensure_future(_burst(gw.url, 1000 * kill + 100, 32))
            while True:  # calls billed and held in flight
                fake.arrived.clear()
                if fake.requests >= before + 5 + 4:
                    break
                await asyncio.wait_for(fake.arrived.wait(), 30)
            assert gw.stop(signal.SIGKILL) == -signal.SIGKILL
            fake.gate.set()
            cut = await burst
            assert -1 in cut and 200 not in cut  # nobody got an answer (or a 429 at the cap)
            fake.gate = None
            booked, held = _spend(shared_url)
            assert held >= 4  # the in-flight reservations outlived the process
            assert booked == pytest.approx(answered)  # in flight: not booked until restart
            assert booked <= cap + 1e-12

        last = await Gateway(cfg, tmp_path / "last.log", "gw-a").started()
        try:
            booked, held = _spend(shared_url)
            assert held == 0
            assert booked >= fake.billed  # every in-flight call booked at its worst case
            statuses = await _burst(last.url, 9000, 120)  # now spend up to the cap
        finally:
            assert last.stop() == 0
        booked, held = _spend(shared_url)
        assert 429 in statuses and held == 0
        assert booked <= cap + 1e-12  # the cap is never crossed afterwards
        assert booked >= fake.billed
