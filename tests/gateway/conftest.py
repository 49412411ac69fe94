"""Gateway fixtures: a small config, a real replay teacher, stand-in students, real HTTP.

The store is real (SQLite in ``tmp_path``; PostgreSQL where a test asks for
``store_url``), the teacher is the real replay teacher reading a JSONL file, the
HTTP server is a real aiohttp server on loopback. Students are ``RuleStudent``
(see ``gw_fakes``) unless a test uses the real transformers backend.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from apprentice import config
from apprentice.gateway.facade import Apprentice
from apprentice.gateway.http import build_app

HERE = Path(__file__).parent
ADMIN_TOKEN = "test-admin-token-123"


def config_dict(
    tmp_path: Path, *, store_url: str | None = None, n_answers: int = 600, **over: Any
) -> dict[str, Any]:
    answers = tmp_path / "answers.jsonl"
    if not answers.exists():
        with answers.open("w") as f:
            for i in range(n_answers):
                inp = gw_rules.make_input(i)
                f.write(json.dumps({"input": inp, "output": gw_rules.teacher_output(inp)}) + "\n")
    task: dict[str, Any] = {
        "name": "classify",
        "description": "Label a ticket by its first word",
        "input_schema": {"text": "str"},
        "output_schema": {"label": "str"},
        "evaluator": "exact_match",
        "confidence_thresholds": {
            "phase1_to_phase2": 20,
            "phase2_to_phase3": 0.8,
            "coaching_trigger": 0.6,
            "emergency_threshold": 0.4,
        },
        **over.pop("task", {}),
    }
    d: dict[str, Any] = {
        "tasks": [task],
        "remote": {"provider": "replay", "path": str(answers), "price_as": "gpt-4o"},
        "local": {
            "backend": "transformers",
            "base_model": "apprentice/tiny",
            "model_dir": str(tmp_path / "models"),
            "fine_tune_batch_size": 40,
            "training": {"heldout_fraction": 0.2},
        },
        "sampling": {"window_size": 20, "min_floor": 0.05},
        "store": {"url": store_url or f"sqlite:///{tmp_path}/apprentice.db"},
        "gateway": {"admin_token_env": "GW_TEST_ADMIN_TOKEN"},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(d.get(key), dict):
            d[key] = {**d[key], **value}
        else:
            d[key] = value
    return d


def make_config(tmp_path: Path, **over: Any) -> config.ApprenticeConfig:
    return config.loads(yaml.safe_dump(config_dict(tmp_path, **over)))


def trainer(rule: str = "first_word", *extra: str) -> list[str]:
    return [sys.executable, str(HERE / "gw_trainer.py"), "--rule", rule, *extra]


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
