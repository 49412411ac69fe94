"""Phase 1 -> 2 -> 3 through the HTTP API with the real tiny model, trained for real.

Nothing stands in here: the replay teacher, the ``transformers`` student on
``apprentice/tiny``, ``python -m apprentice.training.run`` in a subprocess
(huggingface LoRA on CPU), held-out validation by a second student instance with
the task's evaluator, promotion, and the student serving in steady state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from gw_config import config_dict

from apprentice import config
from apprentice.gateway.facade import Apprentice
from apprentice.gateway.http import build_app

WORDS = {
    "invoice": "billing",
    "refund": "billing",
    "crash": "technical",
    "error": "technical",
    "password": "account",
    "login": "account",
}


def _input(i: int) -> dict[str, Any]:
    return {"text": f"{list(WORDS)[i % 6]} issue on order {1000 + i * 7}"}


def _answer(task_input: dict[str, Any]) -> dict[str, Any]:
    return {"label": WORDS[task_input["text"].split()[0]]}


@pytest.mark.slow
async def test_real_tiny_model_graduates_through_the_http_api(tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    answers.write_text(
        "".join(
            json.dumps({"input": _input(i), "output": _answer(_input(i))}) + "\n"
            for i in range(200)
        )
    )
    d = config_dict(tmp_path)
    d["remote"]["path"] = str(answers)
    d["local"]["device"] = "cpu"
    app = Apprentice.from_config(config.loads(yaml.safe_dump(d)))
    await app.start()
    client = TestClient(TestServer(build_app(app.gateway)))
    await client.start_server()
    try:

        async def send(i: int) -> None:
            resp = await client.post("/v1/tasks/classify", json={"input": _input(i)})
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["output"] == _answer(_input(i))

        for i in range(20):  # phase 1: the teacher answers, 20 examples
            await send(i)
        await app.wait_for_training_idle("classify")
        state = await (await client.get("/v1/tasks/classify/state")).json()
        assert state["phase"] == "reinforcement" and state["active_version"] == "v1", state
        v1 = app.store.version("classify", "v1")
        assert v1.heldout_score is not None and v1.heldout_score >= 0.8
        meta = json.loads((Path(v1.path) / "metadata.json").read_text())
        assert meta["base_model"] == "apprentice/tiny" and meta["loss_curve"]
        assert (Path(v1.path) / "adapter_config.json").exists()

        i = 20
        while state["phase"] != "steady_state" and i < 80:  # phase 2: compared, graduates
            await send(i)
            i += 1
            state = await (await client.get("/v1/tasks/classify/state")).json()
        assert state["phase"] == "steady_state", state
        assert state["confidence_lower_bound"] >= 0.8

        before = app.store.request_counts("classify")
        for j in range(i, i + 20):  # phase 3: the trained student serves
            await send(j)
        await app.gateway.flush()
        after = app.store.request_counts("classify")
        assert after.student_answers - before.student_answers >= 10
    finally:
        await client.close()
        await app.close()
