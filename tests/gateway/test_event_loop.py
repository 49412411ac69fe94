"""``apprentice serve``'s event loop: uvloop when installed (the dev extra has it), asyncio's
when asked for, a clear error when uvloop is asked for and missing.

"Missing" is real: a child interpreter with ``sys.modules['uvloop'] = None``, which makes
``import uvloop`` fail as it does where uvloop is not installed. The serve tests start
``apprentice serve`` for real and wait on its "listening" line, never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import gw_rules
import httpx
import pytest
import uvloop
import yaml
from gw_config import config_dict
from gw_sweeps import young_sweeps

from apprentice.gateway import errors, event_loop, server

WITHOUT_UVLOOP = "import sys; sys.modules['uvloop'] = None\n"
"""A child's first line: from then on ``import uvloop`` raises ImportError."""
CLI = "from apprentice.cli import main; raise SystemExit(main())"


async def _running() -> str:
    return event_loop.describe(asyncio.get_running_loop())


def test_auto_runs_uvloop_when_it_is_installed() -> None:
    assert event_loop.event_loop_factory() is uvloop.new_event_loop
    assert event_loop.event_loop_factory("uvloop") is uvloop.new_event_loop
    assert event_loop.run(_running()) == f"uvloop {uvloop.__version__}"
    assert event_loop.chosen() == f"uvloop {uvloop.__version__}"  # the benches' headers


def test_asyncio_when_asked_for() -> None:
    assert event_loop.event_loop_factory("asyncio") is None
    assert event_loop.run(_running(), "asyncio") == "asyncio"
    assert event_loop.chosen("asyncio") == "asyncio"


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_UVLOOP + code],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_auto_falls_back_to_asyncio_without_uvloop() -> None:
    out = _child(
        "import asyncio\nfrom apprentice.gateway import event_loop\n"
        "async def main(): return event_loop.describe(asyncio.get_running_loop())\n"
        "print(event_loop.run(main()), event_loop.chosen())"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "asyncio asyncio"


def test_uvloop_asked_for_but_missing_names_the_fix() -> None:
    out = _child(
        "from apprentice.gateway import event_loop\n"
        "async def main(): pass\n"
        "try:\n    event_loop.run(main(), 'uvloop')\n"
        "except Exception as exc:\n    print(type(exc).__name__, exc)"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{errors.StartupError.__name__} ")
    assert "pip install 'apprentice[speedups]'" in out.stdout
    assert "never awaited" not in out.stderr  # the coroutine was closed, not leaked


def test_serve_with_loop_uvloop_but_missing_stops_with_the_fix(tmp_path: Path) -> None:
    cfg = tmp_path / "apprentice.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(tmp_path)))
    out = _child(
        f"sys.argv[1:] = ['serve', '-c', {str(cfg)!r}, '--port', '0', '--loop', 'uvloop']\n{CLI}"
    )
    assert out.returncode == 1
    assert "pip install 'apprentice[speedups]'" in out.stderr
    assert "Traceback" not in out.stderr


def test_tune_process_sweeps_on_uvloop(restored: None) -> None:
    """``serve``'s tuning schedules its young-generation sweep on a uvloop loop too."""

    async def two_sweeps() -> str:
        server.tune_process()
        await young_sweeps(2)
        return event_loop.describe(asyncio.get_running_loop())

    assert event_loop.run(two_sweeps(), "uvloop").startswith("uvloop ")


SERVES = [
    pytest.param({}, [], f"uvloop {uvloop.__version__}", signal.SIGINT, id="auto"),
    pytest.param({"event_loop": "asyncio"}, [], "asyncio", signal.SIGTERM, id="config-asyncio"),
    pytest.param(
        {"event_loop": "asyncio"}, ["--loop", "uvloop"], f"uvloop {uvloop.__version__}",
        signal.SIGTERM, id="flag-over-config",
    ),
]  # fmt: skip


class Serving:
    """``apprentice serve`` as a child process on a free port."""

    def __init__(self, proc: asyncio.subprocess.Process, url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    @property
    def loop_line(self) -> str:
        """The stderr line naming the loop (flushed before the listening line goes out)."""
        (line,) = [x for x in self.log.read_text().splitlines() if "event loop:" in x]
        return line


@asynccontextmanager
async def serving(
    tmp_path: Path, gateway: dict[str, Any], flags: list[str]
) -> AsyncIterator[Serving]:
    cfg = tmp_path / "apprentice.yaml"
    cfg.write_text(yaml.safe_dump(config_dict(tmp_path, gateway=gateway)))
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "apprentice.cli", "serve", "-c", str(cfg), "--port", "0", *flags,
            stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
        assert "listening on" in line, f"serve did not start: {line!r}: {log.read_text()}"
        yield Serving(proc, line.strip().rsplit(" ", 1)[-1], log)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(("gateway", "flags", "loop", "stop"), SERVES)
async def test_serve_reports_its_loop_answers_and_stops_cleanly(
    tmp_path: Path, gateway: dict[str, str], flags: list[str], loop: str, stop: signal.Signals
) -> None:
    async with serving(tmp_path, gateway, flags) as served:
        assert served.loop_line == f"apprentice gateway event loop: {loop}"
        task_input = gw_rules.make_input(3)
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(
                f"{served.url}/v1/tasks/classify", json={"input": task_input}
            )
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"] == gw_rules.teacher_output(task_input)
        served.proc.send_signal(stop)
        assert await asyncio.wait_for(served.proc.wait(), 60) == 0, served.log.read_text()


async def test_serve_on_uvloop_refuses_past_max_connections_with_503(tmp_path: Path) -> None:
    """The refusal writes on uvloop's transport, which is no asyncio.WriteTransport."""
    limits = {"max_connections": 2, "header_timeout_s": 60}  # the admitted two stay open
    async with serving(tmp_path, limits, []) as served:
        assert served.loop_line.endswith(f"uvloop {uvloop.__version__}")
        port = int(served.url.rsplit(":", 1)[1])
        admitted = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # accepted third
        head, _, body = (await asyncio.wait_for(reader.read(), 30)).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), head
        assert b"Retry-After: 1" in head
        assert json.loads(body)["error"]["details"] == {"max_connections": 2}
        for _, w in [*admitted, (reader, writer)]:
            w.close()
