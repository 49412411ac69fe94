"""The llama.cpp student for real: tiny's GGUF, llama-cpp-python's server, the gateway.

Nothing stands in: the GGUF is written by ``gguf``, read by llama.cpp (compiled
from PyPI's llama-cpp-python), served by its OpenAI-compatible server in a child
process, and the lifecycle test trains the tiny student for real and routes the
gateway's requests to that server.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import llama_cpp
import pytest
import torch
import yaml
from aiohttp.test_utils import TestClient, TestServer
from llama_cpp import llama_chat_format

sys.path.insert(0, str(Path(__file__).parents[1] / "gateway"))
import gw_rules
from gw_config import config_dict

from apprentice import config, prompts
from apprentice.gateway.facade import Apprentice
from apprentice.gateway.http import build_app
from apprentice.students import build_student, gguf_export, llama_cpp_managed, tiny
from apprentice.students.base import NoStudent, StudentUnavailable, VersionLoadError, VersionRef

MANAGED = config.LocalConfig(backend="llama_cpp", base_model="apprentice/tiny", device="cpu")
TEXTS = ["hello world", ' {"label": "x"}\n\t', "héllo — ü 日本語 🎉", "  two  spaces ", "<s>"]


@pytest.fixture(scope="module")
def quiet_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny with a zeroed output head: greedy always picks <pad>, so it answers "" fast
    (an untrained byte model's invalid UTF-8 stalls llama-cpp-python's text decoding)."""
    model = tiny.build_tiny_model()
    with torch.no_grad():
        model.lm_head.weight.zero_()
    path = tmp_path_factory.mktemp("gguf") / "quiet.gguf"
    gguf_export.write_gguf(model, path)
    return path


@pytest.fixture(scope="module")
def base_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "base.gguf"
    gguf_export.write_gguf(tiny.build_tiny_model(), path)
    return path


def test_llama_cpp_tokenizes_exactly_as_bytecodec(base_gguf: Path) -> None:
    llm = llama_cpp.Llama(str(base_gguf), vocab_only=True, verbose=False)
    codec = tiny.ByteCodec()
    for text in TEXTS:
        ids = llm.tokenize(text.encode(), add_bos=False, special=False)
        assert ids == codec.encode_text(text), text
        assert llm.detokenize(ids).decode() == text


def test_the_gguf_chat_template_prompts_as_the_in_process_student(base_gguf: Path) -> None:
    llm = llama_cpp.Llama(str(base_gguf), vocab_only=True, verbose=False)
    template = llm.metadata["tokenizer.chat_template"]
    formatter = llama_chat_format.Jinja2ChatFormatter(template, "</s>", "<s>")
    task = config_task()
    messages = prompts.build_messages(task, {"text": "héllo invoice"})
    rendered = formatter(messages=messages)
    ids = llm.tokenize(rendered.prompt.encode(), add_bos=False, special=True)
    assert ids == tiny.encode_chat(tiny.ByteCodec(), messages).prompt_ids


def config_task() -> config.TaskConfig:
    return config.TaskConfig.model_validate(
        {
            "name": "classify",
            "description": "Label a ticket",
            "input_schema": {"text": "str"},
            "output_schema": {"label": "str"},
            "evaluator": "exact_match",
        }
    )


def test_conversion_failures_name_the_backend_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(gguf_export.ConversionError, match=r"llama_cpp: .*convert_hf_to_gguf"):
        gguf_export.convert_version("meta-llama/Llama-3.2-1B", tmp_path)
    with pytest.raises(gguf_export.ConversionError, match=r"llama_cpp: no adapter .*train"):
        gguf_export.convert_version("apprentice/tiny", tmp_path)


async def test_a_version_that_cannot_convert_is_refused_and_nothing_serves(tmp_path: Path) -> None:
    student = build_student(MANAGED)
    assert isinstance(student, llama_cpp_managed.ManagedLlamaCppStudent)
    try:
        with pytest.raises(VersionLoadError, match=r"llama_cpp: no adapter .*v1 refused"):
            await student.load_version(VersionRef("v1", str(tmp_path)))
        with pytest.raises(NoStudent):
            await student.generate(config_task(), {"text": "x"})
    finally:
        await student.aclose()


async def test_managed_restart_keeps_the_old_version_until_the_new_one_is_healthy(
    tmp_path: Path, quiet_gguf: Path
) -> None:
    """v1 serves; v2's GGUF is corrupt (the server refuses it): v1 keeps serving. Then
    v1's server dies: answers fail naming the backend and how to restart it."""
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    for folder in (v1, v2):
        folder.mkdir()
        (folder / "adapter_config.json").write_text("{}")  # conversion is skipped below
    (v1 / gguf_export.GGUF_NAME).write_bytes(await asyncio.to_thread(quiet_gguf.read_bytes))
    (v2 / gguf_export.GGUF_NAME).write_bytes(b"GGUF not really a model")
    student = llama_cpp_managed.ManagedLlamaCppStudent(MANAGED, threads=1)
    task = config_task()
    try:
        await student.load_version(VersionRef("v1", str(v1)))
        first = await student.generate(task, {"text": "hello"})
        assert first.version == "v1" and (await student.health()).ready
        with pytest.raises(VersionLoadError, match=r"llama_cpp server refused .*reconvert"):
            await student.load_version(VersionRef("v2", str(v2)))
        assert student.active_version() == "v1"
        again = await student.generate(task, {"text": "hello"})
        assert again.raw_text == first.raw_text  # greedy: the same answer, from v1
        server = student._server
        assert server is not None
        server.process.kill()
        await server.process.wait()
        health = await student.health()
        assert not health.ready and "llama_cpp server for v1 exited" in health.detail
        with pytest.raises(StudentUnavailable, match=r"llama_cpp .*unreachable.*promote or roll"):
            await student.generate(task, {"text": "hello"})
    finally:
        await student.aclose()


def _exact(a: dict[str, Any] | None, b: dict[str, Any]) -> float:
    return 1.0 if a == b else 0.0


@pytest.mark.slow
async def test_tiny_student_trained_converted_and_served_by_llama_cpp_through_the_gateway(
    tmp_path: Path,
) -> None:
    d = config_dict(tmp_path, n_answers=200)
    d["local"] = {**d["local"], "backend": "llama_cpp", "device": "cpu"}
    app = Apprentice.from_config(config.loads(yaml.safe_dump(d)))
    await app.start()
    client = TestClient(TestServer(build_app(app.gateway)))
    await client.start_server()
    try:
        i = await _run_to_steady_state(app, client)
        before = app.store.request_counts("classify")
        for j in range(i, i + 20):  # phase 3: llama.cpp answers through the gateway
            resp = await client.post("/v1/tasks/classify", json={"input": _input(j)})
            assert resp.status == 200, await resp.text()
        await app.gateway.flush()
        served = app.store.request_counts("classify").student_answers - before.student_answers
        assert served >= 10
        await _assert_same_agreement_as_in_process(app)
    finally:
        await client.close()
        await app.close()


def _input(i: int) -> dict[str, Any]:
    return gw_rules.make_input(i)


async def _run_to_steady_state(app: Apprentice, client: TestClient[Any, Any]) -> int:
    for i in range(20):  # phase 1: the teacher answers; then v1 trains, converts, serves
        resp = await client.post("/v1/tasks/classify", json={"input": _input(i)})
        assert resp.status == 200, await resp.text()
    await app.wait_for_training_idle("classify")
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["active_version"] == "v1", state
    v1 = app.store.version("classify", "v1")
    assert (Path(v1.path) / gguf_export.GGUF_NAME).exists()
    i = 20
    while state["phase"] != "steady_state" and i < 100:  # phase 2: compared, graduates
        resp = await client.post("/v1/tasks/classify", json={"input": _input(i)})
        assert resp.status == 200, await resp.text()
        i += 1
        state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["phase"] == "steady_state", state
    return i


async def _assert_same_agreement_as_in_process(app: Apprentice) -> None:
    """The held-out split v1 was validated on: llama.cpp (its recorded score and a fresh
    server) agrees with the in-process transformers student answer for answer."""
    v1 = app.store.version("classify", "v1")
    heldout = app.store.examples("classify", "heldout")
    assert heldout and v1.heldout_score is not None
    task = app.config.task("classify")
    local = app.config.local
    in_process = build_student(local.model_copy(update={"backend": "transformers"}))
    served = build_student(local)
    try:
        await in_process.load_version(VersionRef("v1", v1.path))
        await served.load_version(VersionRef("v1", v1.path))
        pairs = [
            (await in_process.generate(task, e.input), await served.generate(task, e.input))
            for e in heldout
        ]
    finally:
        await in_process.aclose()
        await served.aclose()
    same = sum(a.raw_text == b.raw_text for a, b in pairs)
    assert same == len(pairs), [(a.raw_text, b.raw_text) for a, b in pairs]
    ours = sum(_exact(a.output, e.output) for (a, _), e in zip(pairs, heldout, strict=True))
    assert v1.heldout_score == pytest.approx(ours / len(heldout))
    print(f"held-out {len(heldout)}: identical {same}, agreement {ours / len(heldout):.3f}")
