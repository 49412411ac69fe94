"""Gateway fixtures: a small config, a real replay teacher, stand-in students, real HTTP.

The store is real (SQLite in ``tmp_path``; PostgreSQL where a test asks for
``store_url``), the teacher is the real replay teacher reading a JSONL file, the
HTTP server is a real aiohttp server on loopback. Students are ``RuleStudent``
(see ``gw_fakes``) unless a test uses the real transformers backend.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import gw_fakes
import pytest
from aiohttp.test_utils import TestClient, TestServer
from gw_config import ADMIN_TOKEN, make_config, trainer

from apprentice import config
from apprentice.gateway.facade import Apprentice
from apprentice.gateway.http import build_app


class Harness:
    """An app with its stand-in students, plus an HTTP client once ``serve()`` ran."""

    def __init__(self, app: Apprentice, students: dict[str, gw_fakes.RuleStudent]) -> None:
        self.app = app
        self.students = students
        self.client: TestClient[Any, Any] | None = None

    @property
    def gw(self) -> Any:
        return self.app.gateway

    async def serve(self) -> TestClient[Any, Any]:
        self.client = TestClient(TestServer(build_app(self.app.gateway)))
        await self.client.start_server()
        return self.client

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        await self.app.close()


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("GW_TEST_ADMIN_TOKEN", ADMIN_TOKEN)
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def harness_factory(
    tmp_path: Path, admin_env: dict[str, str]
) -> AsyncIterator[Callable[..., Any]]:
    made: list[Harness] = []

    async def make(
        cfg: config.ApprenticeConfig | None = None,
        *,
        rule: str = "first_word",
        student: Callable[[], gw_fakes.RuleStudent] | None = None,
        **inject: Any,
    ) -> Harness:
        students: dict[str, gw_fakes.RuleStudent] = {}
        instances: list[gw_fakes.RuleStudent] = []

        def factory(task: config.TaskConfig) -> gw_fakes.RuleStudent:
            s = student() if student is not None else gw_fakes.RuleStudent()
            students.setdefault(task.name, s)  # the first one built serves; later: validation
            instances.append(s)
            return s

        inject.setdefault("trainer_command", trainer(rule))
        app = Apprentice.from_config(
            cfg or make_config(tmp_path), student_factory=factory, **inject
        )
        await app.start()
        h = Harness(app, students)
        made.append(h)
        return h

    yield make
    for h in made:
        await h.close()


@pytest.fixture
def env_without_token() -> None:
    os.environ.pop("GW_TEST_ADMIN_TOKEN", None)


@pytest.fixture
def restored() -> Iterator[None]:
    """The interpreter's collector, its callbacks and the switch interval as they were
    before the test (``server.tune_process`` changes them)."""
    thresholds, interval, callbacks = gc.get_threshold(), sys.getswitchinterval(), gc.callbacks[:]
    yield
    gc.callbacks[:] = callbacks
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    sys.setswitchinterval(interval)
