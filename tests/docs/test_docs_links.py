"""Error messages link to their entry in the errors reference, and the entry exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apprentice import config
from apprentice.config import errors as config_errors
from apprentice.gateway import errors as gateway_errors

ERRORS = Path(__file__).resolve().parents[2] / "docs" / "reference" / "errors.md"


def anchor_exists(url: str) -> bool:
    assert url.startswith(config_errors.DOCS), url
    return "{#" + url.split("#", 1)[1] + "}" in ERRORS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("tasks: [", "yaml"),
        ("- 1", "type"),
        ("tasks: [{name: t}]\nremote:\n  provider: replay\n  path: ${NOPE}", "env_missing"),
        ("tasks: [{name: t, colour: red}]\nremote: {provider: replay}", "extra_forbidden"),
        ("tasks: [{name: t}]", "missing"),
        (
            "tasks: [{name: t, confidence_thresholds: {coaching_trigger: 0.9}}]\nremote: {provider: replay}",
            "rule",
        ),
        ("tasks: [{name: t}]\nremote: {provider: replay, timeout_s: -1}", "greater_than"),
    ],
)
def test_each_config_problem_links_to_its_entry(text: str, code: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.loads(text, env={})
    issue = next(i for i in info.value.issues if i.code == code)
    url = str(issue).rsplit("[", 1)[1].rstrip("]")
    assert anchor_exists(url), str(issue)
    assert url in str(info.value)


def test_a_missing_file_links_to_its_entry(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.load(tmp_path / "absent.yaml")
    assert info.value.issues[0].code == "file"
    assert anchor_exists(str(info.value).rsplit("[", 1)[1].rstrip("]"))


def test_every_gateway_error_body_carries_its_link() -> None:
    for cls in (
        gateway_errors.BudgetExhausted,
        gateway_errors.InvalidInput,
        gateway_errors.Overloaded,
    ):
        body = cls("no").body()["error"]
        assert body["docs"].endswith(f"#gateway-{body['type']}")
        assert anchor_exists(body["docs"])
    unknown = gateway_errors.UnknownTask("x", ["t"]).body()["error"]
    assert anchor_exists(unknown["docs"]) and unknown["type"] == "unknown_task"


def test_a_cli_error_ends_with_its_link(tmp_path: Path) -> None:
    # serve with the teacher's key unset: the gateway refuses to start, says why, and links.
    cfg = Path(__file__).resolve().parents[2] / "docs" / "guides" / "files" / "my-task.yaml"
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    out = subprocess.run(
        [str(Path(sys.executable).with_name("apprentice")), "serve", "-c", str(cfg), "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert "ANTHROPIC_API_KEY" in out.stderr
    url = out.stderr.strip().rsplit("[", 1)[1].rstrip("]")
    assert url.endswith("#gateway-startup_failed") and anchor_exists(url)
