"""The teacher bench's Go loopback teacher (bench/loopteacher), built with Go and run as a
real process on loopback: the real teacher path (RemoteTeacher.generate) parses its
answer, and it answers the same bytes on the same routes as the Python teacher it
replaces by default (bench/teacher_harness.py)."""

from __future__ import annotations

import asyncio
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apprentice.config import ProviderConfig, TaskConfig
from apprentice.teachers import build_teacher, pricing
from apprentice.teachers.base import Usage
from apprentice.teachers.remote import RemoteTeacher

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import teacher_harness as harness  # bench/teacher_harness.py, found by the path above

DELAY_S = 0.3
TASK = TaskConfig.model_validate(
    {
        "name": "classify_ticket",
        "input_schema": {"text": "str"},
        "output_schema": {"category": "str", "priority": "int"},
    }
)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return harness.teacher_binary(tmp_path_factory.mktemp("loopteacher") / "loopteacher")


@pytest.fixture(scope="module")
def go_teacher(binary: Path) -> Iterator[harness.Loopback]:
    with harness.loopback("go", DELAY_S, executable=binary) as teacher:
        yield teacher


def remote(port: int, route: str) -> RemoteTeacher:
    config = ProviderConfig.model_validate(
        {
            "provider": "openai_compatible",
            "model": "gpt-4o",
            "base_url": f"http://127.0.0.1:{port}/{route}/v1",
            "timeout_s": 10,
            "max_retries": 0,
        }
    )
    teacher = build_teacher(config, env={})
    assert isinstance(teacher, RemoteTeacher)
    return teacher


def post(port: int, path: str, conn: http.client.HTTPConnection | None = None) -> bytes:
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", path, body=b'{"model": "gpt-4o", "messages": []}')
    response = conn.getresponse()
    assert response.status == 200, response.read()
    assert response.getheader("Content-Type") == "application/json"
    return response.read()


async def test_the_teacher_path_parses_its_answer_with_usage_and_cost(
    go_teacher: harness.Loopback,
) -> None:
    teacher = remote(go_teacher.port, "instant")
    try:
        answers = await asyncio.gather(
            *(teacher.generate(TASK, {"text": f"ticket {i}"}) for i in range(20))
        )
    finally:
        await teacher.aclose()
    for answer in answers:
        assert answer.output == {"category": "billing", "priority": 2}  # schema checked
        assert answer.usage == Usage(60, 12)
        assert answer.cost == pytest.approx(pricing.cost(Usage(60, 12), teacher.price))
        assert answer.cost > 0
        assert answer.model == "gpt-4o"
        assert answer.attempts == 1


async def test_the_slow_route_answers_after_its_delay(go_teacher: harness.Loopback) -> None:
    teacher = remote(go_teacher.port, "slow")
    try:
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(teacher.generate(TASK, {"text": f"ticket {i}"}) for i in range(50))
        )
        took = time.perf_counter() - started
    finally:
        await teacher.aclose()
    assert all(a.output == {"category": "billing", "priority": 2} for a in answers)
    assert all(a.latency_s >= DELAY_S for a in answers)
    assert took < 3 * DELAY_S  # the 50 calls waited at the same time, not one after another


def test_it_answers_the_python_teachers_bytes_on_kept_alive_connections(
    go_teacher: harness.Loopback,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", go_teacher.port, timeout=5)
    go = [post(go_teacher.port, "/instant/v1/chat/completions", conn) for _ in range(3)]
    sock = conn.sock
    go.append(post(go_teacher.port, "/instant/v1/chat/completions", conn))
    assert conn.sock is sock and sock is not None  # the same connection throughout
    conn.close()
    with harness.loopback("python", DELAY_S) as python_teacher:
        py = post(python_teacher.port, "/instant/v1/chat/completions")
    assert set(go) == {py}
    assert json.loads(py) == harness.ANSWER


def test_other_paths_and_methods_are_refused(go_teacher: harness.Loopback) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", go_teacher.port, timeout=5)
    conn.request("GET", "/instant/v1/chat/completions")
    assert conn.getresponse().status == 405
    conn = http.client.HTTPConnection("127.0.0.1", go_teacher.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", body=b"{}")
    assert conn.getresponse().status == 404


def test_a_bad_answer_flag_is_refused(binary: Path) -> None:
    done = subprocess.run(
        [str(binary), "-answer", "not json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "-answer must be JSON" in done.stderr
