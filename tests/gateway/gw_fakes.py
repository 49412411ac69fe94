"""Stand-ins at the wire boundaries: an in-process student that follows a learned rule.

``RuleStudent`` implements the :class:`apprentice.students.base.Student` protocol
for real (versions load from adapter directories, health, timeouts); only the
"model" is a rule read from ``adapter.json`` instead of LoRA weights, so gateway
tests run in milliseconds. The real transformers student is exercised by the
lifecycle test in ``test_lifecycle_real.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gw_rules as rules

from apprentice import prompts
from apprentice.config import TaskConfig
from apprentice.store import Store, records
from apprentice.students import base as students
from apprentice.teachers.base import Usage


class RuleStudent:
    """A student whose adapter is a rule name; ``calls`` counts generations."""

    def __init__(
        self, *, delay_s: float = 0.0, fail: bool = False, gate: asyncio.Event | None = None
    ) -> None:
        self.active: students.VersionRef | None = None
        self.rule: str | None = None
        self.delay_s = delay_s
        self.fail = fail
        self.calls = 0
        self.loaded: list[str] = []
        self.gate = gate  # when set, generate() waits on it (requests held in flight)
        self.inside = 0
        self.inside_changed = asyncio.Event()

    async def generate(
        self, task: TaskConfig, task_input: dict[str, Any]
    ) -> students.StudentAnswer:
        if self.active is None or self.rule is None:
            raise students.NoStudent()
        if self.fail:
            raise students.StudentUnavailable("student server is down (test)")
        self.calls += 1
        started = time.perf_counter()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.gate is not None:
            self.inside += 1
            self.inside_changed.set()
            await self.gate.wait()
        fn = rules.RULES[self.rule]
        text = (
            "not json" if fn is None else prompts.render_output({"label": fn(task_input["text"])})
        )
        # Tokens counted as apprentice/tiny's byte tokenizer would: one per UTF-8 byte.
        usage = Usage(len(prompts.canonical_json(task_input).encode()), len(text.encode()))
        return students.answer_from_text(
            task, text, version=self.active.name, started=started, usage=usage
        )

    async def health(self) -> students.Health:
        return students.Health(not self.fail, "down" if self.fail else "ok")

    async def load_version(self, version: students.VersionRef) -> None:
        path = Path(version.path) / "adapter.json"
        try:
            self.rule = json.loads(path.read_text())["rule"]
        except (OSError, ValueError, KeyError) as exc:
            raise students.VersionLoadError(f"cannot load {path}: {exc}") from exc
        self.active = version
        self.loaded.append(version.name)

    async def unload_version(self, name: str) -> None:
        if self.active is not None and self.active.name == name:
            self.active = None

    def active_version(self) -> str | None:
        return None if self.active is None else self.active.name

    async def aclose(self) -> None:
        return None


def write_adapter(path: Path, rule: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter.json").write_text(json.dumps({"rule": rule}))
    return path


def promote_v1(store: Store, path: Path) -> None:
    """Record ``classify`` v1 at ``path`` as promoted, as a store after a restart has it."""
    now = datetime.now(UTC)
    store.add_version(
        records.ModelVersionRecord(
            task="classify",
            version="v1",
            state="candidate",
            path=str(path),
            base_model="apprentice/tiny",
            created_at=now,
            updated_at=now,
            heldout_score=1.0,
        )
    )
    store.update_version("classify", "v1", state="promoted")
