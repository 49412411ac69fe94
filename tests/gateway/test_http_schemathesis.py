"""schemathesis, from PyPI, against the running gateway's own ``/openapi.json``.

Every check schemathesis has (``--checks all``: server errors, status codes,
content types, headers, response schemas, negative data rejected, positive data
accepted, 405 with ``Allow``, ignored auth, ...) over a bounded number of
generated cases per operation; admin operations get the admin token. The run
must find nothing: 0 server errors and 0 conformance failures.

The gateway is the real one on a real socket (``gateway.server.listen``); its
teacher is a loopback OpenAI-format server that answers any valid input, so a
5xx could only come from the gateway itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from gw_config import ADMIN_TOKEN, make_config

from apprentice.gateway import openapi, server
from apprentice.gateway.http import build_app
from fakes.teachers import FakeTeacherServer

# Bounded to keep CI modest: about 20 operations x this many cases.
MAX_EXAMPLES = 25
RUN_TIMEOUT_S = 540


def _label(task_input: dict[str, Any]) -> dict[str, Any]:
    words = str(task_input.get("text", "")).split()
    return {"label": words[0] if words else "empty"}


def _schemathesis() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert found, "schemathesis is in the dev extra: pip install -e '.[dev]'"
    return [found]


async def test_schemathesis_finds_nothing(
    harness_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEMATHESIS_TEACHER_KEY", "sk-proj-schemathesis000000000000")
    async with FakeTeacherServer("openai", answer=_label) as teacher:
        cfg = make_config(
            tmp_path,
            remote={
                "provider": "openai_compatible",
                "model": "teacher-1",
                "base_url": teacher.base_url,
                "api_key_env": "SCHEMATHESIS_TEACHER_KEY",
                "max_retries": 0,
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
            # Stay in phase 1: the run is about the HTTP contract, not training.
            task={
                "confidence_thresholds": {
                    "phase1_to_phase2": 100000,
                    "phase2_to_phase3": 0.8,
                    "coaching_trigger": 0.6,
                    "emergency_threshold": 0.4,
                }
            },
        )
        h = await harness_factory(cfg)
        documented_ops = [
            (path, method)
            for path, item in openapi.document(cfg)["paths"].items()
            for method in item
        ]
        assert any(path.startswith("/admin/") for path, _ in documented_ops)
        listener = await server.listen(build_app(h.gw), cfg.gateway, "127.0.0.1", 0)
        report = tmp_path / "report.json"
        try:
            proc = await asyncio.create_subprocess_exec(
                *_schemathesis(),
                "run",
                f"http://127.0.0.1:{listener.port}/openapi.json",
                "--checks=all",
                f"--max-examples={MAX_EXAMPLES}",
                "--seed=20261130",
                "--workers=1",
                "--no-color",
                f"--header=Authorization: Bearer {ADMIN_TOKEN}",
                "--report=json",
                f"--report-json-path={report}",
                "--generation-database=none",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=tmp_path,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
        finally:
            await listener.close()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-12000:]
    summary = json.loads(report.read_text())
    assert summary["complete"] is True, text[-4000:]
    assert summary["failures"] == [] and summary["errors"] == [], text[-12000:]
    assert summary["test_cases"]["with_failures"] == 0
    # Every documented operation ran, the admin ones included (with the token).
    operations = summary["operations"]
    assert operations["tested"] == operations["total"]
    assert operations["errored"] == 0
    documented = {f"{method.upper()} {path}" for path, method in documented_ops}
    # schemathesis leaves out the operation that serves the document it is reading.
    assert set(summary["valid_rates"]) == documented - {"GET /openapi.json"}
