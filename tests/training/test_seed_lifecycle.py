"""The seed's own example configuration, byte for byte, runs its whole lifecycle.

``tests/data/seed_apprentice.yaml`` says ``local.backend: ollama``, ``base_model:
llama3.1:8b``, ``fine_tune_backend: unsloth`` and no ``base_url``. Here:

- the config file is read unchanged (``validate-config`` passes on it);
- Ollama is the loopback server of ``fakes.ollama`` (Ollama's API, Ollama's
  refusals), reached through ``$OLLAMA_HOST`` as Ollama's own clients do;
- Unsloth is ``unsloth_standin.py``: the orchestrator's real trainer subprocess
  protocol, the real spec and chat JSONL in, a real peft adapter out;
- the teachers are the seed's Anthropic primary and OpenAI secondary, at the wire
  (``fakes.teachers``), so their requests and costs are real.

Cold start -> training (on meta-llama/Llama-3.1-8B-Instruct, the tag's Hugging
Face id) -> promotion (an Ollama model created from llama3.1:8b plus the adapter)
-> steady state, where the student answers most requests.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from ticket_workload import workload

from apprentice import cli as cli_main
from apprentice import config
from apprentice.gateway.facade import Apprentice
from apprentice.gateway.http import build_app
from apprentice.teachers import build_pool
from fakes.ollama import OllamaModel, OllamaServer
from fakes.teachers import FakeTeacherServer

SEED = Path(__file__).parents[1] / "data" / "seed_apprentice.yaml"
STANDIN = Path(__file__).parent / "unsloth_standin.py"
KEYS = {"ANTHROPIC_API_KEY": "sk-ant-test-not-a-key", "OPENAI_API_KEY": "sk-test-not-a-key"}


def learnt_answer(model: OllamaModel, messages: list[dict[str, Any]]) -> str:
    """What llama3.1:8b plus the stand-in's adapter answers: the rules the adapter holds."""
    task_input = json.loads(messages[-1]["content"])
    learnt = json.loads(model.adapter_metadata.get("apprentice.learnt", "null") or "null")
    if learnt is None:  # the bare base model has not learnt the task
        return json.dumps({"category": "other", "priority": 3, "confidence": 0.5})
    text = task_input["text"]
    category = next((c for k, c in learnt["category"].items() if k in text), "other")
    tokens = [k for k in learnt["priority"] if not k.startswith("tier:") and k in text]
    tier = f"tier:{task_input['metadata'].get('tier')}"
    priority = learnt["priority"][tokens[0]] if tokens else learnt["priority"].get(tier, 3)
    return json.dumps({"category": category, "priority": priority, "confidence": 0.9})


def test_seed_config_validates_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main.main(["validate-config", "-c", str(SEED)]) == 0
    out = capsys.readouterr().out
    assert "student: ollama serves llama3.1:8b; unsloth trains on" in out
    assert "meta-llama/Llama-3.1-8B-Instruct" in out
    cfg = config.load(SEED)
    assert cfg.local.training_base() == "meta-llama/Llama-3.1-8B-Instruct"
    assert cfg.local.serving_base() == "llama3.1:8b"


async def test_seed_config_runs_cold_start_to_steady_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the seed's store and model_dir are relative paths
    cfg = config.load(SEED)
    assert cfg.local.base_url is None  # Ollama's well-known address is used
    pairs = workload(400, seed=11)
    answers = {json.dumps(i, sort_keys=True): o for i, o in pairs}

    def teacher(task_input: dict[str, Any]) -> dict[str, Any]:
        return answers[json.dumps(task_input, sort_keys=True)]

    ollama = OllamaServer(answer=learnt_answer)
    ollama_server = TestServer(ollama.app(), host="127.0.0.1")
    await ollama_server.start_server()
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama_server.port}")
    async with (
        FakeTeacherServer("anthropic", answer=teacher) as claude,
        FakeTeacherServer("openai", answer=teacher) as gpt,
    ):
        remote = cfg.remote.model_copy(
            update={
                "base_url": claude.base_url,
                "additional_providers": [
                    p.model_copy(update={"base_url": gpt.base_url})
                    for p in cfg.remote.additional_providers
                ],
            }
        )
        pool = build_pool(remote, env=KEYS)
        app = Apprentice.from_config(
            cfg, teachers=pool, trainer_command=[sys.executable, str(STANDIN)]
        )
        await app.start()
        client = TestClient(TestServer(build_app(app.gateway)))
        await client.start_server()
        try:
            phases = []
            for task_input, expected in pairs:
                resp = await client.post("/v1/tasks/classify_ticket", json={"input": task_input})
                assert resp.status == 200, await resp.text()
                body = await resp.json()
                assert body["output"]["category"] == expected["category"]
                await app.wait_for_training_idle("classify_ticket")
                state = await (await client.get("/v1/tasks/classify_ticket/state")).json()
                if not phases or phases[-1] != state["phase"]:
                    phases.append(state["phase"])
                if state["phase"] == "steady_state" and state["student_answers"] >= 20:
                    break
            assert phases[:3] == ["cold_start", "reinforcement", "steady_state"], phases
            active = state["active_version"]
            assert active is not None and state["student_answers"] >= 20, state
            versions = {v.version: v for v in app.gateway.store.versions("classify_ticket")}
            assert versions[active].state == "promoted"
        finally:
            await client.close()
            await app.close()
            await ollama_server.close()

    # Training ran on the Hugging Face weights, with the seed's backend.
    spec = json.loads(
        (tmp_path / "models" / "classify_ticket" / ".runs" / "v1" / "spec.json").read_text()
    )
    assert spec["backend"] == "unsloth"
    assert spec["base_model"] == "meta-llama/Llama-3.1-8B-Instruct"
    adapter = json.loads(
        (tmp_path / "models" / "classify_ticket" / "v1" / "adapter_config.json").read_text()
    )
    assert adapter["base_model_name_or_path"] == "meta-llama/Llama-3.1-8B-Instruct"
    # Promotion: an Ollama model from the seed's tag plus the adapter's two files.
    create = ollama.bodies("/api/create")[0]
    assert create["model"] == "apprentice-classify_ticket:v1"
    assert create["from"] == "llama3.1:8b"
    assert set(create["adapters"]) == {"adapter_model.safetensors", "adapter_config.json"}
    # Steady state: the student's own answers were served through Ollama's chat API.
    served = [b for b in ollama.bodies("/api/chat") if b.get("messages")]
    assert len(served) > 20
    assert served[-1]["model"] == f"apprentice-classify_ticket:{active}"
    assert ollama.has(f"apprentice-classify_ticket:{active}")
    assert claude.received and gpt.received  # both teachers of the seed took calls
