"""One training-data path: the embedded run and the Kubernetes trainer Job train on the same data.

Two gateways start on two copies of the same store state: a coaching task whose
store holds held-out examples, a schema-invalid answer, a duplicate, comparisons
the student lost, a shift (recent answers weigh more), and examples that arrived
after the run became due (not covered). One gateway's LocalOrchestrator runs a
training run (the trainer is a stand-in process; the dataset file it is handed is
what is compared). The other is driven as the Kubernetes operator and trainer Job
drive it, over real HTTP on loopback: ``training/started``, the Job's own
``fetch_dataset``, then the version's registration. Both must hand the trainer
the same conversations, and mark the same examples as trained by the version.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer

from apprentice import config
from apprentice.gateway.facade import Apprentice
from apprentice.gateway.http import build_app
from apprentice.store import open_store, records
from apprentice.training import job
from apprentice.training.dataset import TrainingDataset
from apprentice.training.run import TrainingRunSpec

TASK = "classify"
TOKEN_ENV = "ORCH_TEST_ADMIN_TOKEN"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
SHIFT = T0 + timedelta(hours=30)
COVERED = 48  # examples in the store when the run becomes due


def make_config(root: Path, *, warm_start: bool = True) -> config.ApprenticeConfig:
    answers = root / "answers.jsonl"
    answers.write_text("")
    return config.ApprenticeConfig.model_validate(
        {
            "tasks": [
                {
                    "name": TASK,
                    "description": "Label a ticket",
                    "input_schema": {"text": "str"},
                    "output_schema": {"label": "str"},
                    "evaluator": "exact_match",
                }
            ],
            "remote": {"provider": "replay", "path": str(answers)},
            "local": {
                "backend": "transformers",
                "base_model": "apprentice/tiny",
                "model_dir": str(root / "models"),
                "training": {"coaching_weight": 3, "warm_start": warm_start},
            },
            "store": {"url": f"sqlite:///{root}/apprentice.db"},
            "gateway": {"admin_token_env": TOKEN_ENV},
        }
    )


def _record(store: object, i: int, label: object, *, score: float | None = None) -> None:
    """One request with its example (and comparison, when ``score`` is given)."""
    task_input = {"text": f"ticket {i % 45}"}  # inputs 45.. repeat 0..: duplicates
    at = T0 + timedelta(hours=i)
    request_id = f"req-{i}"
    example = records.ExampleRecord(
        task=TASK,
        input=task_input,
        output={"label": label},  # type: ignore[dict-item]
        input_hash=records.input_hash(task_input) + ("" if i < 45 else f"-{i}"),
        split="heldout" if i % 7 == 3 else "train",
        teacher_provider="replay",
        teacher_model="replay",
        created_at=at,
        request_id=request_id,
    )
    comparison = None
    if score is not None:
        comparison = records.ComparisonRecord(task=TASK, request_id=request_id, at=at, score=score)
    store.record_request(  # type: ignore[attr-defined]
        records.RequestRecord(
            id=request_id, task=TASK, received_at=at, route="both", served_by="teacher"
        ),
        example=example,
        comparison=comparison,
    )


def fill_store(cfg: config.ApprenticeConfig, first: int, last: int) -> None:
    store = open_store(cfg.store.url)
    try:
        for i in range(first, last):
            label: object = "payments" if i > 30 else "billing"
            label = 7 if i == 11 else ("late" if i >= COVERED else label)
            _record(store, i, label, score=0.0 if i % 4 == 0 else (1.0 if i % 4 == 1 else None))
        if first == 0:
            store.add_event(records.EventRecord(task=TASK, at=SHIFT, kind="shift", message="x"))
            store.save_task_state(TASK, {"phase": "steady_state", "coaching": True})
    finally:
        store.close()


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"orch-{uuid.uuid4().hex}"
    monkeypatch.setenv(TOKEN_ENV, value)
    return value


@contextlib.asynccontextmanager
async def started_gateways(
    tmp_path: Path, *, warm_start: bool = True
) -> AsyncIterator[tuple[Apprentice, Apprentice]]:
    made = []
    for name in ("local", "job"):
        root = tmp_path / name
        root.mkdir()
        cfg = make_config(root, warm_start=warm_start)
        fill_store(cfg, 0, COVERED)
        trainer = [sys.executable, "-c", "import sys; sys.exit(0)"]
        app = Apprentice.from_config(cfg, trainer_command=trainer)
        await app.gateway.start(serving=False)
        fill_store(cfg, COVERED, COVERED + 6)  # arrived after the run became due
        made.append(app)
    try:
        yield made[0], made[1]
    finally:
        for app in made:
            await app.close()


@pytest.fixture
async def gateways(tmp_path: Path, token: str) -> AsyncIterator[tuple[Apprentice, Apprentice]]:
    async with started_gateways(tmp_path) as made:
        yield made


def trained_ids(app: Apprentice, version: str) -> set[int]:
    return {
        e.id
        for e in app.gateway.store.examples(TASK)
        if e.trained_in_version == version and e.id is not None
    }


def copies(dataset: TrainingDataset, text: str) -> int:
    return sum(json.loads(c[1]["content"]) == {"text": text} for c in dataset.conversations)


async def test_local_and_job_paths_train_on_the_same_selected_examples(
    gateways: tuple[Apprentice, Apprentice], tmp_path: Path, token: str
) -> None:
    local, remote = gateways
    # The embedded mode: the LocalOrchestrator's own run (validation then fails for
    # want of a serving student; the dataset and the registration came before it).
    assert local.gateway.orchestrator is not None
    await local.gateway.orchestrator.train(TASK, "test")
    run_dir = tmp_path / "local" / "models" / TASK / ".runs" / "v1"
    local_data = TrainingDataset.read_jsonl(run_dir / "train.jsonl")

    # The Kubernetes mode: the operator's admin calls and the Job's own fetch, over HTTP.
    server = TestServer(build_app(remote.gateway), host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers) as admin:
            started = await admin.post(f"/admin/tasks/{TASK}/training/started", json={})
            assert started.status_code == 200
            settings = job.settings_from(
                ["--gateway-url", url, "--task", TASK, "--output-dir", str(tmp_path / "out")],
                {"APPRENTICE_ADMIN_TOKEN": token},
            )
            job_data = await asyncio.to_thread(job.fetch_dataset, settings)
            registered = await admin.post(
                f"/admin/tasks/{TASK}/versions",
                json={"path": str(tmp_path / "out"), "version": "v1", "metrics": {}},
            )
            assert registered.status_code == 201, registered.text
    finally:
        await server.close()

    assert job_data.conversations == local_data.conversations
    assert job_data.data_hash == local_data.data_hash
    # ... and that data is the selection, not the raw train split:
    answers = [json.loads(c[-1]["content"]) for c in job_data.conversations]
    assert {"label": 7} not in answers  # the schema-invalid answer
    assert {"label": "late"} not in answers  # arrived after the run became due
    assert copies(job_data, "ticket 3") == 0  # held out (i % 7 == 3)
    assert copies(job_data, "ticket 5") == 1  # an ordinary example
    assert copies(job_data, "ticket 4") == 3  # the student got it wrong: coaching weight
    assert copies(job_data, "ticket 33") == 3  # answered after the shift: recency weight
    assert copies(job_data, "ticket 2") == 3  # a duplicate input: the latest (i = 47, recent)
    # The same examples are marked as trained by the version in both modes: the covered
    # train split, never a held-out one or one that arrived after the run became due.
    marked = trained_ids(local, "v1")
    assert marked and marked == trained_ids(remote, "v1")
    rows = {e.id: e for e in local.gateway.store.examples(TASK)}
    covered_train = [e for e in rows.values() if e.split == "train" and e.id is not None]
    assert marked == {e.id for e in covered_train if e.output["label"] != "late"}


async def test_only_the_run_that_took_the_data_marks_it(
    gateways: tuple[Apprentice, Apprentice], tmp_path: Path, token: str
) -> None:
    """A failed run owes no mark, and a version registered by hand marks nothing."""
    _, remote = gateways
    server = TestServer(build_app(remote.gateway), host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    base = f"/admin/tasks/{TASK}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers) as admin:
            assert (await admin.post(f"{base}/training/started", json={})).status_code == 200
            fetched = await admin.get(f"{base}/training/dataset")
            assert fetched.status_code == 200 and fetched.text
            failed = {"ok": False, "reason": "the trainer Job failed"}
            assert (await admin.post(f"{base}/training/finished", json=failed)).status_code == 200
            for version in ("v1", "v2"):
                body = {"path": str(tmp_path / version), "version": version, "metrics": {}}
                assert (await admin.post(f"{base}/versions", json=body)).status_code == 201
    finally:
        await server.close()
    assert trained_ids(remote, "v1") == set() and trained_ids(remote, "v2") == set()


def promote_adapter(app: Apprentice, root: Path) -> str:
    """A promoted v1 with its adapter folder on disk (as the operator or a run leaves it)."""
    adapter = root / "models" / TASK / "v1"
    adapter.mkdir(parents=True)
    now = datetime.now(UTC)
    app.gateway.store.add_version(
        records.ModelVersionRecord(
            task=TASK,
            version="v1",
            state="promoted",
            path=str(adapter),
            base_model="apprentice/tiny",
            created_at=now,
            updated_at=now,
        )
    )
    return str(adapter)


async def job_input(app: Apprentice, out: Path, token: str) -> job.TrainingInput:
    """What the trainer Job is handed, over HTTP, after the operator's training/started."""
    server = TestServer(build_app(app.gateway), host="127.0.0.1")
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(base_url=url) as admin:
            started = await admin.post(
                f"/admin/tasks/{TASK}/training/started",
                json={},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert started.status_code == 200
        settings = job.settings_from(
            ["--gateway-url", url, "--task", TASK, "--output-dir", str(out)],
            {"APPRENTICE_ADMIN_TOKEN": token},
        )
        return await asyncio.to_thread(job.fetch_input, settings)
    finally:
        await server.close()


async def starts(local: Apprentice, remote: Apprentice, tmp_path: Path, token: str) -> list[object]:
    """The adapter each mode's next run starts from: the local run's spec, the Job's input."""
    assert local.gateway.orchestrator is not None
    await local.gateway.orchestrator.train(TASK, "retrain")
    spec_path = tmp_path / "local" / "models" / TASK / ".runs" / "v2" / "spec.json"
    spec = TrainingRunSpec.model_validate_json(spec_path.read_text(encoding="utf-8"))
    given = await job_input(remote, tmp_path / "out", token)
    return [spec.init_adapter, given.init_adapter]


async def test_both_modes_warm_start_from_the_active_version(
    gateways: tuple[Apprentice, Apprentice], tmp_path: Path, token: str
) -> None:
    """The gateway names the adapter a run starts from, with its data, for both modes."""
    local, remote = gateways
    assert (await job_input(remote, tmp_path / "out", token)).init_adapter is None  # no v1 yet
    wanted = [promote_adapter(local, tmp_path / "local"), promote_adapter(remote, tmp_path / "job")]
    assert await starts(local, remote, tmp_path, token) == wanted


async def test_training_warm_start_off_trains_both_modes_from_the_base(
    tmp_path: Path, token: str
) -> None:
    """One switch, read by the gateway for both modes."""
    async with started_gateways(tmp_path, warm_start=False) as (local, remote):
        for app, app_name in ((local, "local"), (remote, "job")):
            promote_adapter(app, tmp_path / app_name)
        assert await starts(local, remote, tmp_path, token) == [None, None]
