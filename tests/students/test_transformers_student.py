"""The in-process transformers student, for real on apprentice/tiny with a trained adapter."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "training"))
from ticket_workload import TASK, agreement, workload

from apprentice import config
from apprentice.students import build_student, decoding, tiny, transformers_backend
from apprentice.students.base import (
    NoStudent,
    VersionLoadError,
    VersionRef,
)
from apprentice.training import corpus
from apprentice.training.backends.huggingface import HuggingFaceFineTuner

PAIRS = workload(16, seed=21)
LOCAL = config.LocalConfig(backend="transformers", base_model="apprentice/tiny", device="cpu")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real LoRA run on 16 examples (100 optimiser steps on apprentice/tiny)."""
    out = tmp_path_factory.mktemp("adapters") / "v1"
    rows = [{"input": i, "output": o, "split": "train"} for i, o in PAIRS]
    data = corpus.training_selection(TASK, rows, hyper=LOCAL.training).dataset
    HuggingFaceFineTuner(device="cpu").train(
        data, base_model="apprentice/tiny", hyper=LOCAL.training, out_dir=out
    )
    return out


def test_json_stop_ends_at_the_first_object() -> None:
    stop = decoding.JsonStop()
    assert not stop.feed('{"a": "}{\\"", "b": {"c": 1}')
    assert stop.feed("} trailing")
    assert decoding.JsonStop().feed('x {"a": 1}')
    assert not decoding.JsonStop().feed('"}"')


def test_tiny_base_is_the_same_everywhere() -> None:
    a, _ = tiny.load_base("apprentice/tiny")
    b, codec = tiny.load_base("apprentice/tiny")
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(p, q), name
    chat = tiny.encode_chat(codec, [{"role": "user", "content": "hé"}], "{}")
    assert codec.decode(chat.prompt_ids) == "hé" and codec.decode(chat.target_ids) == "{}"


def test_generate_text_counts_the_models_own_tokens() -> None:
    """The usage a student answer reports: the prompt's tokens and every token generated."""
    model, codec = tiny.load_base("apprentice/tiny")
    loaded = transformers_backend.LoadedVersion(
        "base", "-", codec, decoding.make_decoder(model), model.config.max_position_embeddings
    )
    messages = [{"role": "user", "content": '{"text": "hé"}'}]
    text, usage = transformers_backend.generate_text(loaded, messages, 7)
    assert usage.input_tokens == len(tiny.encode_chat(codec, messages).prompt_ids) > 0
    # an untrained base rarely stops: it makes all 7, or fewer when it emits EOS (counted)
    assert 0 < usage.output_tokens <= 7
    assert len(text) <= usage.output_tokens  # a byte token decodes to one character at most


@pytest.mark.slow
async def test_generate_is_deterministic_schema_valid_and_learnt(adapter: Path) -> None:
    student = build_student(LOCAL)
    assert isinstance(student, transformers_backend.TransformersStudent)
    with pytest.raises(NoStudent):
        await student.generate(TASK, PAIRS[0][0])
    assert (await student.health()).ready
    await student.load_version(VersionRef("v1", str(adapter)))
    assert student.active_version() == "v1"
    answers = [await student.generate(TASK, i) for i, _ in PAIRS]
    again = await student.generate(TASK, PAIRS[0][0])
    assert again.raw_text == answers[0].raw_text
    assert all(a.version == "v1" and a.latency_s > 0 for a in answers)
    valid = [a for a in answers if a.output is not None]
    assert len(valid) >= 14, [a.raw_text for a in answers]
    mean = sum(agreement(a.output, o) for a, (_, o) in zip(answers, PAIRS, strict=True)) / 16
    assert mean >= 0.6  # it learnt its training examples (chance is about 0.2)
    await student.aclose()


@pytest.mark.slow
async def test_fast_decoder_matches_the_model_token_for_token(adapter: Path) -> None:
    model, codec = transformers_backend.load_merged("apprentice/tiny", str(adapter), "cpu")
    fast = decoding.make_decoder(model)
    assert isinstance(fast, decoding.LlamaGreedy)
    from apprentice import prompts

    for task_input, _ in PAIRS[:3]:
        ids = tiny.encode_chat(codec, prompts.build_messages(TASK, task_input)).prompt_ids
        out = fast.generate(ids, 40, lambda _t: False)
        with torch.no_grad():
            logits = model(torch.tensor([ids + out])).logits[0]
        assert logits[len(ids) - 1 : -1].argmax(-1).tolist() == out
        assert decoding.HFGreedy(model).generate(ids, 40, lambda _t: False) == out


@pytest.mark.slow
async def test_version_swap_is_atomic_and_never_blocks_the_loop(
    adapter: Path, tmp_path: Path
) -> None:
    v2 = tmp_path / "v2"
    shutil.copytree(adapter, v2)
    student = build_student(LOCAL)
    await student.load_version(VersionRef("v1", str(adapter)))
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.create_task(ticker())
    requests = [student.generate(TASK, i) for i, _ in PAIRS[:8]]
    results = await asyncio.gather(
        *requests[:4], student.load_version(VersionRef("v2", str(v2))), *requests[4:]
    )
    stop.set()
    await tick_task
    versions = [r.version for r in results if r is not None]
    assert set(versions) <= {"v1", "v2"} and len(versions) == 8
    assert student.active_version() == "v2"
    assert ticks > 8  # the loop kept running while torch worked on the worker thread
    with pytest.raises(VersionLoadError, match="cannot load adapter"):
        await student.load_version(VersionRef("v3", str(tmp_path / "missing")))
    assert student.active_version() == "v2"
    await student.unload_version("v2")
    with pytest.raises(NoStudent):
        await student.generate(TASK, PAIRS[0][0])
    await student.aclose()
    assert not (await student.health()).ready
