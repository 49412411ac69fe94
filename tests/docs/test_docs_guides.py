"""The commands the guides show are run: each ```bash block after ``<!-- tested -->``.

Only cheap, offline commands are marked (validate-config, simulate, evaluate); each line
must exit 0 from the repository root, as a reader would type it after ``make demo``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apprentice import config
from apprentice.kube import crd_validation, crds

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ROOT / "docs" / "guides"
BIN = Path(sys.executable).parent
TESTED = re.compile(r"<!-- tested -->\n```bash\n(.*?)```", re.S)


def marked_commands() -> list[tuple[str, str]]:
    out = []
    for guide in sorted(GUIDES.glob("*.md")):
        for block in TESTED.findall(guide.read_text(encoding="utf-8")):
            out += [(guide.name, line) for line in block.splitlines() if line.strip()]
    return out


def test_the_guides_mark_commands_to_run() -> None:
    names = {g for g, _ in marked_commands()}
    assert {"quickstart.md", "thresholds.md"} <= names


@pytest.mark.parametrize(("guide", "command"), marked_commands())
def test_a_tested_command_succeeds(guide: str, command: str) -> None:
    argv = shlex.split(command)
    assert argv[0] == "apprentice", f"{guide}: only apprentice commands are run: {command}"
    out = subprocess.run(
        [str(BIN / "apprentice"), *argv[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, f"{guide}: {command}\n{out.stdout}\n{out.stderr}"
    assert out.stdout.strip(), command


@pytest.mark.parametrize("path", sorted(GUIDES.glob("files/*.yaml")), ids=lambda p: p.name)
def test_the_guides_configs_are_valid(path: Path) -> None:
    assert config.load(path, env={}).tasks


def test_every_repository_path_a_guide_names_exists() -> None:
    named = set()
    for page in (ROOT / "docs").rglob("*.md"):
        named |= set(
            re.findall(
                r"`((?:examples|charts|bench|tests|hack|e2e)/[\w./-]+)`",
                page.read_text(encoding="utf-8"),
            )
        )
    missing = sorted(p for p in named if "*" not in p and not (ROOT / p.rstrip("/")).exists())
    assert not missing, missing


def custom_resources_in_guides() -> list[tuple[str, dict[str, object]]]:
    out = []
    for guide in sorted(GUIDES.glob("*.md")):
        for block in re.findall(r"```yaml\n(.*?)```", guide.read_text(encoding="utf-8"), re.S):
            for doc in yaml.safe_load_all(block):
                if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith(
                    "apprentice.dev/"
                ):
                    out.append((guide.name, doc))
    return out


def test_the_custom_resources_the_guides_show_are_valid() -> None:
    found = custom_resources_in_guides()
    assert found, "the Kubernetes guide shows a DistilledTask"
    by_kind = crds.all_crds()
    for guide, doc in found:
        assert crd_validation.validate(by_kind[str(doc["kind"])], doc) == [], guide
