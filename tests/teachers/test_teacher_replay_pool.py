"""The replay teacher, the weighted pool, Gemini's schema translation."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from teacher_support import FakeClock

from apprentice import prompts
from apprentice.config import RemoteConfig, TaskConfig
from apprentice.teachers import base, build_pool, build_teacher, errors, google, pricing
from fakes.teachers import FakeTeacherServer

GOOD = {"category": "billing", "priority": 2}


@pytest.fixture
def answers(tmp_path: Path) -> Path:
    path = tmp_path / "answers.jsonl"
    rows = [
        {"input": {"text": "charged twice", "lang": "en"}, "output": GOOD},
        {"input": {"text": "app crashes"}, "output": {"category": "bug", "priority": 1}},
        {"input": {"messages": [{"role": "user", "content": "grade"}]},
         "output": {"text": '{"score": 0.5}'}},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    return path


def _replay(path: Path, clock: FakeClock, **extra: Any) -> base.Teacher:
    config = RemoteConfig.model_validate({"provider": "replay", "path": str(path), **extra})
    return build_pool(config, clock=clock, sleep=clock.sleep, env={}).primary


async def test_replay_answers_by_canonical_input(
    answers: Path, task: TaskConfig, clock: FakeClock
) -> None:
    teacher = _replay(answers, clock)
    answer = await teacher.generate(task, {"lang": "en", "text": "charged twice"})  # key order
    assert answer.output == GOOD and answer.provider == "replay"
    messages = prompts.build_messages(task, {"text": "charged twice", "lang": "en"})
    expected_in = sum(math.ceil(len(m["content"]) / 4) for m in messages)
    expected_out = math.ceil(len(prompts.render_output(GOOD)) / 4)
    assert (answer.usage.input_tokens, answer.usage.output_tokens) == (expected_in, expected_out)
    sonnet = pricing.LIST_PRICES[pricing.DEFAULT_REPLAY_MODEL]  # the default price
    assert answer.cost == pytest.approx(
        (expected_in * sonnet.input_per_mtok + expected_out * sonnet.output_per_mtok) / 1e6
    )
    assert teacher.estimate_cost(task, {"text": "charged twice", "lang": "en"}) == answer.cost


async def test_replay_price_as(answers: Path, task: TaskConfig, clock: FakeClock) -> None:
    cheap = _replay(answers, clock, price_as="gpt-4o-mini")
    dear = _replay(answers, clock)
    a = await cheap.generate(task, {"text": "app crashes"})
    b = await dear.generate(task, {"text": "app crashes"})
    assert a.usage == b.usage and 0 < a.cost < b.cost
    assert a.model == "gpt-4o-mini"


async def test_replay_unknown_input_names_the_file(
    answers: Path, task: TaskConfig, clock: FakeClock
) -> None:
    teacher = _replay(answers, clock)
    with pytest.raises(errors.ReplayMiss) as info:
        await teacher.generate(task, {"text": "never recorded"})
    assert str(answers) in str(info.value) and "never recorded" in str(info.value)
    assert isinstance(info.value, errors.BadRequest)


async def test_replay_output_breaking_the_schema(tmp_path: Path, task: TaskConfig) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"input": {"text": "x"}, "output": {"category": 3}}) + "\n")
    teacher = _replay(path, FakeClock())
    with pytest.raises(errors.InvalidOutput, match="fix the file"):
        await teacher.generate(task, {"text": "x"})


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json\n", "bad.jsonl:1: not JSON"), ('{"input": 1, "output": {}}\n', "bad.jsonl:1")],
)
def test_replay_file_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(errors.TeacherConfigError, match=message):
        _replay(path, FakeClock())
    with pytest.raises(errors.TeacherConfigError, match="cannot read replay file"):
        _replay(tmp_path / "missing.jsonl", FakeClock())


async def test_replay_complete_and_embed(answers: Path, clock: FakeClock) -> None:
    teacher = _replay(answers, clock)
    done = await teacher.complete([{"role": "user", "content": "grade"}])
    assert json.loads(done.text) == {"score": 0.5} and done.cost > 0
    with pytest.raises(errors.EmbeddingsUnsupported):
        await teacher.embed(["a"])


async def test_pool_spreads_by_weight_and_is_stable(
    answers: Path, env: dict[str, str], task: TaskConfig, clock: FakeClock
) -> None:
    async with FakeTeacherServer("openai", answer=lambda _: dict(GOOD)) as fake:
        remote = RemoteConfig.model_validate({
            "provider": "replay", "path": str(answers), "weight": 1,
            "additional_providers": [{
                "provider": "openai_compatible", "model": "gpt-4o", "base_url": fake.base_url,
                "api_key_env": "COMPAT_KEY", "weight": 3}],
        })  # fmt: skip
        pool = build_pool(remote, env=env, clock=clock, sleep=clock.sleep)
        try:
            picks = Counter(pool.pick(f"req-{i}").provider for i in range(4000))
            assert 0.70 < picks["openai_compatible"] / 4000 < 0.80
            assert all(pool.pick("same-id") is pool.pick("same-id") for _ in range(20))
            # Each answer records which teacher produced it.
            rid = next(f"r{i}" for i in range(100) if pool.pick(f"r{i}").provider != "replay")
            answer = await pool.generate(task, {"text": "charged twice", "lang": "en"},
                                         request_id=rid)  # fmt: skip
            assert (answer.provider, answer.model) == ("openai_compatible", "gpt-4o")
            assert fake.received  # it really went over HTTP
            worst = pool.estimate_cost(task, {"text": "app crashes"})
            assert worst >= max(t.estimate_cost(task, {"text": "app crashes"})
                                for t in pool.teachers)  # fmt: skip
        finally:
            await pool.aclose()


async def test_estimate_covers_the_worst_actual_cost(
    env: dict[str, str], task: TaskConfig, clock: FakeClock
) -> None:
    """A reservation must never be below what a call (with its repair) is billed."""
    from teacher_support import provider_config

    async with FakeTeacherServer("openai", prompt_tokens=10, completion_tokens=1024) as fake:
        fake.answer = lambda _: "no json here"
        teacher = build_teacher(provider_config("openai", fake.base_url), env=env,
                                     clock=clock, sleep=clock.sleep)  # fmt: skip
        try:
            estimate = teacher.estimate_cost(task, {"text": "x"})
            with pytest.raises(errors.InvalidOutput) as info:
                await teacher.generate(task, {"text": "x"})
        finally:
            await teacher.aclose()
    assert 0 < info.value.cost <= estimate


def test_pool_needs_teachers() -> None:
    with pytest.raises(ValueError):
        base.TeacherPool([])


def test_gemini_schema_translation() -> None:
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["a", "b"], "description": "the label"},
            "score": {"type": ["number", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        "required": ["label"],
        "additionalProperties": False,
    }
    assert google.to_gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "label": {"type": "STRING", "enum": ["a", "b"], "description": "the label"},
            "score": {"type": "NUMBER", "nullable": True},
            "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1},
        },
        "propertyOrdering": ["label", "score", "tags"],
        "required": ["label"],
    }


def test_openai_strict_only_when_the_schema_allows() -> None:
    from apprentice.teachers import openai

    closed = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
              "additionalProperties": False}  # fmt: skip
    assert openai.strict_compatible(closed)
    assert not openai.strict_compatible({**closed, "required": []})
    assert not openai.strict_compatible({"type": "object", "properties": {}})
    nested = {**closed, "properties": {"a": {"type": "array", "items": {"type": "object"}}}}
    assert not openai.strict_compatible(nested)


def test_reference_config_builds_and_refuses_a_missing_key() -> None:
    from apprentice import config

    cfg = config.load(Path(__file__).parents[2] / "apprentice.yaml")
    pool = build_pool(cfg.remote, env={"ANTHROPIC_API_KEY": "a", "OPENAI_API_KEY": "b"})
    assert [t.name for t in pool.teachers] == [
        "anthropic:claude-sonnet-4-6",
        "openai:gpt-4o",
    ]
    with pytest.raises(errors.TeacherConfigError, match="OPENAI_API_KEY"):
        build_pool(cfg.remote, env={"ANTHROPIC_API_KEY": "a"})


def test_public_surface() -> None:
    import apprentice.teachers as teachers

    assert sorted(teachers.__all__) == [
        "Completion", "Teacher", "TeacherAnswer", "TeacherPool", "Usage", "build_pool",
        "build_teacher",
    ]  # fmt: skip
    assert sorted(errors.__all__) == [
        "AuthError", "BadRequest", "EmbeddingsUnsupported", "InvalidOutput", "Overloaded",
        "ProviderError", "QuotaExhausted", "RateLimited", "ReplayMiss", "TeacherConfigError",
        "TeacherError", "Timeout", "error_for_status", "register_secret", "scrub",
    ]  # fmt: skip
