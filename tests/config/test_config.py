"""Config loading: the seed loads unchanged; each broken config gives one precise error."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from apprentice import config, schemas
from apprentice.commands import validate_config
from apprentice.config import errors as config_errors

ROOT = Path(__file__).resolve().parents[2]
SEED = (ROOT / "tests" / "data" / "seed_apprentice.yaml").read_text()


def test_seed_config_loads_unchanged() -> None:
    cfg = config.loads(SEED)
    ticket = cfg.task("classify_ticket")
    assert ticket.input_schema["required"] == ["text", "metadata"]
    assert ticket.output_schema["properties"]["priority"] == {"type": "integer"}
    assert ticket.match_fields == ["category", "priority"]
    assert ticket.confidence_thresholds.phase2_to_phase3 == 0.85
    assert [p.provider.value for p in cfg.remote.providers()] == ["anthropic", "openai"]
    assert cfg.local.fine_tune_batch_size == 100
    assert cfg.sampling.min_floor == 0.02
    assert cfg.budget.monthly == 150.0


def test_reference_config_loads() -> None:
    cfg = config.load(ROOT / "apprentice.yaml")
    assert cfg.task("classify_ticket").effective_sampling(cfg.sampling).min_floor == 0.05
    assert cfg.task("extract_entities").evaluator is config.EvaluatorKind.semantic_similarity


BROKEN = [
    (
        ("coaching_trigger: 0.70", "coaching_trigger: 0.90"),
        "tasks[0].confidence_thresholds.coaching_trigger (0.9) must be below phase2_to_phase3 (0.85)",
    ),
    (
        ("emergency_threshold: 0.50", "emergency_threshold: 0.75"),
        "tasks[0].confidence_thresholds.emergency_threshold (0.75) must be below coaching_trigger",
    ),
    (
        ("phase2_to_phase3: 0.85", "phase2_to_phase3: 1.5"),
        "tasks[0].confidence_thresholds.phase2_to_phase3",
    ),
    (("min_floor: 0.02", "min_floor: 0"), "sampling.min_floor"),
    (("daily: 10.00", "daily: 80.00"), "budget.daily (80.0) must not exceed weekly (50.0)"),
    (("monthly: 150.00", "monthly: -1"), "budget.monthly"),
    (("decay_function: exponential", "decay_function: cubic"), "sampling.decay_function"),
    (("backend: ollama", "backend: tensorrt"), "local.backend"),
    (
        ("match_fields: [category, priority]", "match_fields: [category, urgency]"),
        "tasks[0].match_fields",
    ),
    (
        ("output_schema: {category: str", "output_schema: {category: strng"),
        "tasks[0].output_schema",
    ),
    (
        ("  provider: anthropic\n", "  provider: anthropic\n  api_key_file: /k\n"),
        "remote.api_key_file",
    ),
    (("window_size: 100", "windw_size: 100"), "sampling.windw_size"),
]


@pytest.mark.parametrize(("edit", "expected"), BROKEN, ids=[e[1].split()[0] for e in BROKEN])
def test_broken_config_gives_one_precise_error(edit: tuple[str, str], expected: str) -> None:
    old, new = edit
    assert old in SEED
    with pytest.raises(config.ConfigError) as info:
        config.loads(SEED.replace(old, new, 1))
    assert len(info.value.issues) == 1, str(info.value)
    assert str(info.value).startswith(expected), str(info.value)


def test_each_issue_carries_its_docs_link() -> None:
    text = SEED.replace("window_size: 100", "windw_size: 100", 1)
    with pytest.raises(config.ConfigError) as info:
        config.loads(text)
    (issue,) = info.value.issues
    assert issue.docs == config_errors.DOCS + "#config-extra_forbidden"
    assert str(issue).endswith(f"[{issue.docs}]")
    odd = config.ConfigIssue("tasks[0].x", "no_such_pydantic_code", "wrong")
    assert odd.docs == config_errors.DOCS + "#config-validation"  # the shared entry


def test_env_expansion_and_missing_variable() -> None:
    text = SEED.replace("model_dir: ./models/", "model_dir: ${MODELS:-/var/models}/${TEAM}")
    cfg = config.loads(text, env={"TEAM": "support"})
    assert cfg.local.model_dir == "/var/models/support"
    with pytest.raises(config.ConfigError, match=r"local\.model_dir: environment variable TEAM"):
        config.loads(text, env={})


def test_duplicate_task_names_are_refused() -> None:
    text = SEED.replace("name: extract_entities", "name: classify_ticket")
    with pytest.raises(config.ConfigError, match="appears twice"):
        config.loads(text)


def test_openai_compatible_needs_base_url() -> None:
    text = SEED.replace("provider: openai\n", "provider: openai_compatible\n")
    with pytest.raises(config.ConfigError, match=r"remote\.additional_providers\[0\]\.base_url"):
        config.loads(text)


def test_camel_case_aliases_are_accepted_for_crds() -> None:
    task = config.TaskConfig.model_validate(
        {"name": "t", "confidenceThresholds": {"phase1ToPhase2": 10}, "inputSchema": {"a": "str"}}
    )
    assert task.confidence_thresholds.phase1_to_phase2 == 10


def test_shorthand_and_json_schema_agree() -> None:
    short = schemas.normalize({"tags": "list[str]", "note": "str?", "n": "int"})
    assert short["required"] == ["tags", "n"]
    assert schemas.validation_errors(short, {"tags": ["a"], "n": 1}) == []
    errors = schemas.validation_errors(short, {"tags": [1], "n": "x", "extra": 1})
    assert any(e.startswith("tags[0]:") for e in errors)
    assert any(e.startswith("n:") for e in errors)
    with pytest.raises(schemas.SchemaSyntaxError, match="type must be 'object'"):
        schemas.normalize({"type": "string"})


@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}", fullmatch=True),
        st.sampled_from(["str", "int", "float", "bool", "dict", "list", "list[int]"]),
        min_size=1,
        max_size=6,
    )
)
@example({"type": "str", "items": "list[int]", "enum": "bool", "const": "int"})
def test_shorthand_schemas_are_valid_closed_objects(raw: dict[str, str]) -> None:
    schema = schemas.normalize(raw)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == set(raw)


def test_validate_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SEED)
    bad = tmp_path / "bad.yaml"
    bad.write_text(SEED.replace("coaching_trigger: 0.70", "coaching_trigger: 0.90"))
    parser = __import__("argparse").Namespace
    assert validate_config.run(parser(config=str(good))) == 0
    assert "OK" in capsys.readouterr().out
    assert validate_config.run(parser(config=str(bad))) == 1
    assert "coaching_trigger (0.9) must be below" in capsys.readouterr().err
