"""The training subprocess (``apprentice.training.run``) and the Kubernetes trainer Job."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_backends import install_fake_axolotl
from ticket_workload import TASK, workload

from apprentice import config
from apprentice.training import corpus, export, job
from apprentice.training.backends import TrainingResult
from apprentice.training.backends.huggingface import effective_hyper
from apprentice.training.run import TrainingRunSpec, command

ROOT = Path(__file__).parents[2]
TOKEN = "admin-token-never-logged"


def write_dataset(path: Path, n: int) -> Path:
    rows = [{"input": i, "output": o, "split": "train"} for i, o in workload(n, seed=9)]
    selection = corpus.training_selection(TASK, rows, hyper=config.TrainingConfig())
    return selection.dataset.write_jsonl(path)


def run_spec(spec_path: Path) -> tuple[int, list[dict[str, Any]], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
    proc = subprocess.run(
        command(spec_path), capture_output=True, text=True, env=env, timeout=300, check=False
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_tiny_profile_trains_long_enough_and_says_so() -> None:
    hyper = config.TrainingConfig()
    used = effective_hyper("apprentice/tiny", hyper, 240)
    assert used.learning_rate > hyper.learning_rate and used.epochs * 15 >= 360
    assert effective_hyper("meta-llama/Llama-3.2-1B", hyper, 240) == hyper
    big = effective_hyper("apprentice/tiny", hyper, 5000)  # 313 steps an epoch
    assert big.epochs == 2


@pytest.mark.slow
def test_run_trains_in_a_subprocess_and_writes_adapter_and_metadata(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "train.jsonl", 8)
    out = tmp_path / "models" / "classify_ticket" / "v1"
    spec = TrainingRunSpec(dataset=str(data), out_dir=str(out), device="cpu", max_steps=12)
    code, events, stderr = run_spec(spec.write(tmp_path / "spec.json"))
    assert code == 0, stderr
    assert events[0]["event"] == "start" and events[0]["examples"] == 8
    epochs = [e for e in events if e["event"] == "epoch"]
    assert epochs and epochs[-1]["step"] == 12
    done = events[-1]
    assert done["event"] == "done"
    meta = TrainingResult.read_metadata(out)
    assert meta.to_json() == done["result"]
    assert meta.base_model == "apprentice/tiny" and meta.examples_used == 8
    assert meta.data_hash.startswith("sha256:") and meta.duration_s > 0
    assert meta.hyper_parameters["requested"]["lora_rank"] == 16
    assert len(meta.loss_curve) == len(epochs) and meta.loss_curve[-1] < meta.loss_curve[0]
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()


def test_run_fails_clearly(tmp_path: Path) -> None:
    code, events, stderr = run_spec(tmp_path / "missing.json")
    assert code == 2 and events[-1]["kind"] == "SpecError" and "cannot read spec" in stderr
    (tmp_path / "empty.jsonl").write_text("")
    spec = TrainingRunSpec(dataset=str(tmp_path / "empty.jsonl"), out_dir=str(tmp_path / "o"))
    code, events, stderr = run_spec(spec.write(tmp_path / "spec.json"))
    assert code == 1 and events[-1] == {
        "event": "error",
        "kind": "TrainingFailed",
        "message": "the dataset is empty; collect teacher examples first",
    }
    assert not (tmp_path / "o").exists()


class GatewayFake:
    """The admin training-data route of the gateway contract."""

    def __init__(self, lines: str) -> None:
        self.lines = lines
        self.paths: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/admin/tasks/{task}/training/dataset", self.dataset)
        return app

    async def dataset(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response(
                {"error": {"type": "unauthorized", "message": "bad token"}}, status=401
            )
        if request.match_info["task"] != "classify_ticket":
            return web.json_response({"error": {"type": "unknown_task"}}, status=404)
        self.paths.append(request.path)
        return web.Response(text=self.lines, content_type="application/x-ndjson")


async def run_job(
    fake: GatewayFake, tmp_path: Path, token: str, task: str = "classify_ticket"
) -> tuple[int, Path]:
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    out = tmp_path / "models" / task / "v4"
    env = {
        "APPRENTICE_GATEWAY_URL": f"http://127.0.0.1:{server.port}",
        "APPRENTICE_TASK": task,
        "APPRENTICE_ADMIN_TOKEN_FILE": str(token_file),
        "APPRENTICE_FINE_TUNE_BACKEND": "axolotl",
        "APPRENTICE_BASE_MODEL": "meta-llama/Llama-3.2-1B-Instruct",
        "APPRENTICE_TRAINING": json.dumps({"lora_rank": 32, "epochs": 1}),
    }
    try:
        code = await asyncio.to_thread(job.main, ["--output-dir", str(out)], env)
    finally:
        await server.close()
    return code, out


async def test_job_pulls_train_split_trains_and_writes_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = install_fake_axolotl(tmp_path, monkeypatch, fail=False)
    lines = export.export_jsonl(TASK, workload(6, seed=4), "chat")
    fake = GatewayFake(lines)
    code, out = await run_job(fake, tmp_path, TOKEN)
    assert code == 0, capsys.readouterr().err
    assert fake.paths == ["/admin/tasks/classify_ticket/training/dataset"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "classify_ticket" and metrics["examples_used"] == 6
    assert metrics["hyper_parameters"]["lora_rank"] == 32 and metrics["adapter_dir"] == str(out)
    assert json.loads(log.read_text())[0] == "train"
    assert (out / "axolotl" / "train.jsonl").read_text() == lines
    assert TOKEN not in capsys.readouterr().out


async def test_job_failures_exit_non_zero_with_a_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = GatewayFake(export.export_jsonl(TASK, workload(2, seed=4), "chat"))
    code, _ = await run_job(fake, tmp_path, "wrong-token")
    err = capsys.readouterr().err
    assert code == 1 and "rejected the admin token" in err and "wrong-token" not in err
    code, _ = await run_job(fake, tmp_path, TOKEN, task="nope")
    assert code == 1 and "does not know task 'nope'" in capsys.readouterr().err
    code, _ = await run_job(GatewayFake(""), tmp_path, TOKEN)
    assert code == 1 and "train split of 'classify_ticket' is empty" in capsys.readouterr().err
    assert job.main([], {}) == 2
    assert "missing settings: --gateway-url, --task, --output-dir" in capsys.readouterr().err
    settings = job.settings_from(
        ["--gateway-url", "http://g", "--task", "t", "--output-dir", "/o"],
        {"APPRENTICE_ADMIN_TOKEN": TOKEN},
    )
    assert TOKEN not in repr(settings)


def test_job_max_steps_caps_a_smoke_run_and_rejects_nonsense() -> None:
    argv = ["--gateway-url", "http://g", "--task", "t", "--output-dir", "/o"]
    env = {"APPRENTICE_ADMIN_TOKEN": TOKEN}
    assert job.settings_from(argv, env).max_steps is None
    assert job.settings_from(argv, {**env, "APPRENTICE_MAX_STEPS": "40"}).max_steps == 40
    assert job.settings_from([*argv, "--max-steps", "7"], env).max_steps == 7
    for bad in ("0", "-3", "many"):
        with pytest.raises(job.JobError, match="APPRENTICE_MAX_STEPS") as info:
            job.settings_from(argv, {**env, "APPRENTICE_MAX_STEPS": bad})
        assert info.value.code == 2
