"""The Kubernetes trainer Job warm-starts as the embedded mode does.

The gateway names the adapter the run starts from with the run's data (header
``X-Apprentice-Init-Adapter``); the Job hands it to the huggingface backend, which
loads its weights. Trained for real on the tiny model on CPU: a warm run's first
loss is where the earlier adapter ended, far below a fresh start's, and the Job's
own ``training.warm_start: false`` trains from the base even when an adapter is named.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from ticket_workload import TASK, workload

from apprentice.training import export, job
from apprentice.training.backends import TrainingResult
from apprentice.training.dataset import INIT_ADAPTER_HEADER

NAME = TASK.name
TOKEN_FILE_TEXT = "warm-start-admin-token"


class TrainingDataRoute:
    """The gateway's ``training/dataset`` route: the data and, when set, the warm start."""

    def __init__(self, lines: str) -> None:
        self.lines = lines
        self.init_adapter: str | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/admin/tasks/{task}/training/dataset", self.dataset)
        return app

    async def dataset(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN_FILE_TEXT}"
        headers = {}
        if self.init_adapter is not None:
            headers[INIT_ADAPTER_HEADER] = urllib.parse.quote(self.init_adapter, safe="/")
        return web.Response(text=self.lines, content_type="application/x-ndjson", headers=headers)


async def train(
    route: TrainingDataRoute, root: Path, version: str, *, steps: int, warm: bool = True
) -> tuple[int, Path]:
    server = TestServer(route.app(), host="127.0.0.1")
    await server.start_server()
    out = root / "models dir" / NAME / version  # a space: the header is percent-encoded
    env = {
        "APPRENTICE_GATEWAY_URL": f"http://127.0.0.1:{server.port}",
        "APPRENTICE_TASK": NAME,
        "APPRENTICE_ADMIN_TOKEN": TOKEN_FILE_TEXT,
        "APPRENTICE_OUTPUT_DIR": str(out),
        "APPRENTICE_DEVICE": "cpu",
        "APPRENTICE_MAX_STEPS": str(steps),
        "APPRENTICE_TRAINING": json.dumps({"warm_start": warm}),
    }
    try:
        code = await asyncio.to_thread(job.main, [], env)
    finally:
        await server.close()
    return code, out


@pytest.mark.slow
async def test_the_job_starts_from_the_adapter_the_gateway_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    route = TrainingDataRoute(export.export_jsonl(TASK, workload(16, seed=9), "chat"))
    code, first = await train(route, tmp_path, "v1", steps=30)
    assert code == 0, capsys.readouterr().err
    v1 = TrainingResult.read_metadata(first)
    assert v1.hyper_parameters["init_adapter"] is None  # nothing named: from the base

    route.init_adapter = str(first)
    capsys.readouterr()
    code, second = await train(route, tmp_path, "v2", steps=1)
    assert code == 0, capsys.readouterr().err
    dataset_event = json.loads(capsys.readouterr().out.splitlines()[0])
    assert dataset_event["init_adapter"] == str(first)
    v2 = TrainingResult.read_metadata(second)
    assert v2.hyper_parameters["init_adapter"] == str(first)
    # One step from v1's weights scores about what v1 ended on, far below a fresh start.
    assert v2.loss_curve[0] < v1.loss_curve[0] / 2

    # The run's own switch: warm_start off trains from the base, adapter named or not.
    code, cold = await train(route, tmp_path, "v3", steps=1, warm=False)
    assert code == 0, capsys.readouterr().err
    v3 = TrainingResult.read_metadata(cold)
    assert v3.hyper_parameters["init_adapter"] is None
    assert v3.loss_curve[0] > 2 * v2.loss_curve[0]  # the same one step, from the base


async def test_the_job_reads_the_warm_start_with_its_data(tmp_path: Path) -> None:
    """Without training: what ``fetch_input`` hands the backend, header decoded."""
    route = TrainingDataRoute(export.export_jsonl(TASK, workload(3, seed=4), "chat"))
    server = TestServer(route.app(), host="127.0.0.1")
    await server.start_server()
    argv = ["--gateway-url", f"http://127.0.0.1:{server.port}", "--task", NAME]
    env = {"APPRENTICE_ADMIN_TOKEN": TOKEN_FILE_TEXT, "APPRENTICE_OUTPUT_DIR": "/o"}
    try:
        cold = await asyncio.to_thread(job.fetch_input, job.settings_from(argv, env))
        route.init_adapter = "/var/lib/apprentice/models/classify ticket/v3"
        warm = await asyncio.to_thread(job.fetch_input, job.settings_from(argv, env))
        off = job.settings_from([*argv, "--training", '{"warm_start": false}'], env)
        unwanted = await asyncio.to_thread(job.fetch_input, off)
    finally:
        await server.close()
    assert cold.init_adapter is None and len(cold.dataset) == 3
    assert warm.init_adapter == "/var/lib/apprentice/models/classify ticket/v3"
    assert warm.dataset.data_hash == cold.dataset.data_hash
    assert unwanted.init_adapter is None
