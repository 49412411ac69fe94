"""Fine-tuning backends at their boundaries: unsloth (no GPU here), axolotl (a fake CLI
on PATH), OpenAI (a loopback server speaking the fine-tuning API)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from ticket_workload import TASK, workload

from apprentice import config
from apprentice.config import FineTuneBackend
from apprentice.students import openai_ft as openai_student
from apprentice.training import corpus
from apprentice.training.backends import (
    BackendUnavailable,
    TrainingError,
    TrainingFailed,
    TrainingResult,
    axolotl,
    get_fine_tuner,
    openai_ft,
    unsloth,
)
from apprentice.training.dataset import TrainingDataset

HYPER = config.TrainingConfig(lora_rank=32, lora_alpha=64, epochs=2, batch_size=4)


def dataset(n: int = 5) -> TrainingDataset:
    rows = [{"input": i, "output": o, "split": "train"} for i, o in workload(n, seed=5)]
    return corpus.training_selection(TASK, rows, hyper=HYPER).dataset


def test_get_fine_tuner_maps_every_backend() -> None:
    kinds = {k: type(get_fine_tuner(k)).__name__ for k in FineTuneBackend}
    assert kinds == {
        FineTuneBackend.huggingface: "HuggingFaceFineTuner",
        FineTuneBackend.unsloth: "UnslothFineTuner",
        FineTuneBackend.axolotl: "AxolotlFineTuner",
        FineTuneBackend.openai: "OpenAIFineTuner",
    }


def test_an_unknown_fine_tuner_is_an_error_not_the_openai_default() -> None:
    with pytest.raises(
        TrainingError, match=r"unknown fine_tune_backend 'peft'; known: huggingface"
    ):
        get_fine_tuner("peft")


def test_unsloth_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match=r"pip install unsloth.*huggingface"):
        get_fine_tuner("unsloth").train(
            dataset(), base_model="unsloth/Llama-3.2-1B", hyper=HYPER, out_dir=tmp_path
        )
    assert not any(tmp_path.iterdir())
    with pytest.raises(BackendUnavailable):
        unsloth.check_available()


FAKE_AXOLOTL = """#!{python}
import json, sys, pathlib, yaml
log = pathlib.Path({log!r})
log.write_text(json.dumps(sys.argv[1:]))
cfg = yaml.safe_load(pathlib.Path(sys.argv[2]).read_text())
out = pathlib.Path(cfg["output_dir"])
if {fail}:
    print("Traceback: CUDA out of memory", flush=True)
    sys.exit(3)
for step, loss in enumerate([1.5, 0.9, 0.4]):
    print({{"loss": loss, "grad_norm": 1.0, "learning_rate": 1e-4, "epoch": step / 3}}, flush=True)
(out / "adapter_config.json").write_text(json.dumps({{"r": cfg["lora_r"]}}))
(out / "adapter_model.safetensors").write_bytes(b"x")
"""


def install_fake_axolotl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "argv.json"
    exe = bin_dir / "axolotl"
    exe.write_text(FAKE_AXOLOTL.format(python=sys.executable, log=str(log), fail=fail))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_axolotl_writes_config_and_dataset_and_runs_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = install_fake_axolotl(tmp_path, monkeypatch, fail=False)
    data = dataset()
    out = tmp_path / "v1"
    events: list[dict[str, Any]] = []
    result = get_fine_tuner("axolotl").train(
        data,
        base_model="meta-llama/Llama-3.2-1B-Instruct",
        hyper=HYPER,
        out_dir=out,
        progress=events.append,
    )
    config_path = out / "axolotl" / "axolotl.yaml"
    assert json.loads(log.read_text()) == ["train", str(config_path)]
    cfg = yaml.safe_load(config_path.read_text())
    assert cfg["base_model"] == "meta-llama/Llama-3.2-1B-Instruct"
    assert cfg["adapter"] == "lora" and cfg["lora_r"] == 32 and cfg["lora_alpha"] == 64
    assert cfg["lora_target_linear"] is True and cfg["num_epochs"] == 2
    assert cfg["micro_batch_size"] == 4 and cfg["output_dir"] == str(out)
    ds = cfg["datasets"][0]
    assert ds["type"] == "chat_template" and ds["field_messages"] == "messages"
    assert ds["roles_to_train"] == ["assistant"]
    assert Path(ds["path"]).read_text() == data.to_jsonl_text()
    assert result.loss_curve == [1.5, 0.9, 0.4] and [e["loss"] for e in events] == [1.5, 0.9, 0.4]
    assert TrainingResult.read_metadata(out) == result
    assert result.data_hash == data.data_hash and result.examples_used == 5


def test_axolotl_failure_and_absence_are_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BackendUnavailable, match="not on PATH"):
        axolotl.AxolotlFineTuner().train(
            dataset(), base_model="m", hyper=HYPER, out_dir=tmp_path / "x"
        )
    install_fake_axolotl(tmp_path, monkeypatch, fail=True)
    with pytest.raises(TrainingFailed, match=r"(?s)exited with 3:.*CUDA out of memory"):
        axolotl.AxolotlFineTuner().train(
            dataset(), base_model="m", hyper=HYPER, out_dir=tmp_path / "y"
        )


class FineTuningAPI:
    """The OpenAI fine-tuning endpoints, as the real API answers them."""

    def __init__(self, final_status: str = "succeeded") -> None:
        self.final_status = final_status
        self.uploads: list[dict[str, Any]] = []
        self.jobs: list[dict[str, Any]] = []
        self.polls = 0
        self.auth: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/files", self.files)
        app.router.add_post("/v1/fine_tuning/jobs", self.create)
        app.router.add_get("/v1/fine_tuning/jobs/{id}", self.get)
        app.router.add_get("/v1/fine_tuning/jobs/{id}/events", self.events)
        return app

    async def files(self, request: web.Request) -> web.Response:
        self.auth.add(request.headers.get("Authorization", ""))
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        self.uploads.append(
            {
                "purpose": form["purpose"],
                "name": upload.filename,
                "content": upload.file.read().decode(),
            }
        )
        return web.json_response(
            {
                "id": "file-abc123",
                "object": "file",
                "bytes": 1,
                "created_at": 1,
                "filename": upload.filename,
                "purpose": "fine-tune",
            }
        )

    def job(self, status: str) -> dict[str, Any]:
        done = status == "succeeded"
        return {
            "id": "ftjob-xyz",
            "object": "fine_tuning.job",
            "model": "gpt-4o-mini-2024-07-18",
            "created_at": 1,
            "status": status,
            "training_file": "file-abc123",
            "fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:acme:apprentice:xyz" if done else None,
            "trained_tokens": 12345 if done else None,
            "error": {"code": "invalid_file", "message": "line 3 is not valid", "param": None}
            if status == "failed"
            else None,
        }

    async def create(self, request: web.Request) -> web.Response:
        self.jobs.append(await request.json())
        return web.json_response(self.job("validating_files"))

    async def get(self, request: web.Request) -> web.Response:
        self.polls += 1
        return web.json_response(self.job("running" if self.polls < 3 else self.final_status))

    async def events(self, request: web.Request) -> web.Response:
        data = [
            {
                "object": "fine_tuning.job.event",
                "id": f"e{i}",
                "created_at": i,
                "level": "info",
                "message": m,
            }
            for i, m in enumerate(["Step 2/2: training loss=0.25", "Step 1/2: training loss=1.10"])
        ]
        return web.json_response({"object": "list", "data": data, "has_more": False})


async def run_openai(api: FineTuningAPI, out: Path) -> TrainingResult:
    server = TestServer(api.app(), host="127.0.0.1")
    await server.start_server()
    try:
        tuner = openai_ft.OpenAIFineTuner(
            base_url=f"http://127.0.0.1:{server.port}/v1",
            poll_interval_s=0.0,
            sleep=lambda _s: None,
        )
        return await asyncio.to_thread(
            tuner.train, dataset(), base_model="gpt-4o-mini-2024-07-18", hyper=HYPER, out_dir=out
        )
    finally:
        await server.close()


async def test_openai_fine_tuning_upload_create_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    api = FineTuningAPI()
    result = await run_openai(api, tmp_path / "v1")
    assert api.auth == {"Bearer sk-test-secret"}
    assert api.uploads[0]["purpose"] == "fine-tune"
    assert api.uploads[0]["content"] == dataset().to_jsonl_text()
    job = api.jobs[0]
    assert job["model"] == "gpt-4o-mini-2024-07-18" and job["training_file"] == "file-abc123"
    assert job["method"]["supervised"]["hyperparameters"] == {"n_epochs": 2, "batch_size": 4}
    assert result.adapter_dir == "ft:gpt-4o-mini-2024-07-18:acme:apprentice:xyz"
    assert result.loss_curve == [1.10, 0.25] and api.polls == 3
    assert "sk-test-secret" not in (tmp_path / "v1" / "metadata.json").read_text()
    # The version directory names the ft: model the openai student serves.
    assert openai_student.ft_model(str(tmp_path / "v1")) == result.adapter_dir
    assert result.metrics["serve_as"] == "openai"


async def test_openai_failed_job_and_missing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with pytest.raises(TrainingFailed, match="failed: line 3 is not valid"):
        await run_openai(FineTuningAPI(final_status="failed"), tmp_path / "v1")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(BackendUnavailable, match=r"\$OPENAI_API_KEY"):
        await run_openai(FineTuningAPI(), tmp_path / "v2")
