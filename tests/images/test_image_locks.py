"""Every image's Python packages are locked, and the locks resolve (finding 10).

Docker cannot run here, so this is the check that can: each image's constraints file (its
lock, written by ``bash images/lock.sh``) must pin every package the image installs, on
linux/amd64 and linux/arm64 alike; the Dockerfile must install through it; torch and
transformers must be compatible (transformers >= 4.5x disables PyTorch < 2.6, which broke
the old gateway image). The operator image is installed for real into a fresh venv with
pip, as its Dockerfile does, and its entry point runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
#: image -> what its Dockerfile installs from the repository (extras of pyproject.toml).
EXTRAS = {
    "operator": ["kube"],
    "gateway": ["train", "semantic", "postgres", "otel", "speedups"],
    "trainer": ["train", "postgres"],
}
PLATFORMS = ["x86_64-manylinux_2_28", "aarch64-manylinux_2_28"]
PIP_ENV = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def marker_env(machine: str) -> dict[str, str]:
    """The images' Python (3.11 on Debian) on one architecture."""
    return {
        "python_version": "3.11",
        "python_full_version": "3.11.11",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
    }


def lock(image: str, machine: str = "x86_64") -> dict[str, Version]:
    """name -> pinned version on ``machine``, from images/<image>/constraints.txt.

    The lock is universal (one file for every platform, with markers); this is the slice a
    linux/``machine`` image with Python 3.11 installs from.
    """
    pins: dict[str, Version] = {}
    for line in (IMAGES / image / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{image}: {line} is not an exact pin"
        if req.marker is not None and not req.marker.evaluate(marker_env(machine)):
            continue
        name = canonical(req.name)
        assert name not in pins, f"{image}: {name} pinned twice for {machine}"
        pins[name] = Version(spec.version)
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def uv() -> str:
    path = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert path, "uv is missing: it is in the dev extra (make tools)"
    return path


def test_every_image_has_a_lock_and_installs_through_it() -> None:
    assert sorted(p.name for p in IMAGES.iterdir() if (p / "Dockerfile").exists()) == sorted(EXTRAS)
    for image, extras in EXTRAS.items():
        dockerfile = (IMAGES / image / "Dockerfile").read_text()
        assert f"COPY images/{image}/constraints.txt ./constraints.txt" in dockerfile
        installs = [
            line
            for line in re.sub(r"\\\n", " ", dockerfile).split("&&")
            if "pip install" in line and "pip==" not in line and "unsloth" not in line
        ]
        assert installs, image
        for line in installs:
            assert "-c constraints.txt" in line, f"{image}: {line.strip()} bypasses the lock"
        assert f'".[{",".join(extras)}]"' in dockerfile, image
        assert lock(image), image


@pytest.mark.parametrize("image", ["gateway", "trainer"])
def test_torch_and_transformers_are_pinned_compatibly(image: str) -> None:
    pins = lock(image)
    assert pins["transformers"] >= Version("4.44")  # pyproject's floor
    if pins["transformers"] >= Version("4.50"):
        assert pins["torch"] >= Version("2.6"), "transformers disables PyTorch below 2.6"
    pinned_in = (IMAGES / "pins.in").read_text()
    assert f"torch=={pins['torch']}" in pinned_in  # the version `make test` runs with
    makefile = (ROOT / "Makefile").read_text()
    assert f'"torch=={pins["torch"]}"' in makefile, "the images ship the torch CI tests"


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("image", sorted(EXTRAS))
def test_lock_is_complete_on_every_platform(image: str, platform: str) -> None:
    """Resolving the image's requirements under its lock adds nothing the lock lacks."""
    sources = ["pyproject.toml"] + (["images/pins.in"] if image != "operator" else [])
    extras = [a for e in EXTRAS[image] for a in ("--extra", e)]
    out = subprocess.run(
        [uv(), "pip", "compile", *sources, *extras, "-c", f"images/{image}/constraints.txt",
         "--python-version", "3.11", "--python-platform", platform,
         "--no-header", "--no-annotate", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    pins = lock(image, platform.split("-")[0])
    resolved = [Requirement(line.split(";")[0]) for line in out.stdout.splitlines() if line]
    assert len(resolved) > 10
    for req in resolved:
        (spec,) = req.specifier
        name = canonical(req.name)
        assert name in pins, f"{image} on {platform}: {name} is not in the lock"
        assert Version(spec.version) == pins[name], f"{image}: {name}"


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with pip, as the Dockerfile's build stage makes one."""
    where = tmp_path_factory.mktemp("image-venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    return where


@pytest.mark.parametrize("image", ["gateway", "trainer"])
def test_pip_resolves_the_image_in_a_fresh_venv_within_its_lock(
    fresh_venv: Path, tmp_path: Path, image: str
) -> None:
    """What the Dockerfile's ``pip install -c constraints.txt ".[extras]"`` would install.

    A dry run: torch with CUDA is gigabytes. (The gateway's Dockerfile takes torch from the
    CPU index first; the version is the same, the lock pins it.)
    """
    report = tmp_path / "report.json"
    extras = ",".join(EXTRAS[image])
    dry = subprocess.run(
        [str(fresh_venv / "bin" / "python"), "-m", "pip", "install", "-q", "--dry-run",
         "--ignore-installed", "--report", str(report),
         "-c", f"images/{image}/constraints.txt", f".[{extras}]"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False, env=PIP_ENV,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    planned = {
        canonical(i["metadata"]["name"]): Version(i["metadata"]["version"])
        for i in json.loads(report.read_text())["install"]
    }
    pins = lock(image)
    assert planned.pop("apprentice") == Version("0.1.0")
    assert planned.items() <= pins.items(), set(planned.items()) - set(pins.items())
    assert {"torch", "transformers", "peft"} <= set(planned)
    if image == "gateway":  # `apprentice serve` runs on uvloop there (the speedups extra)
        assert "uvloop" in planned


def test_operator_image_installs_in_a_fresh_venv_and_starts(
    fresh_venv: Path, tmp_path: Path
) -> None:
    python = fresh_venv / "bin" / "python"
    report = tmp_path / "report.json"
    install = [str(python), "-m", "pip", "install", "-q", "-c", "images/operator/constraints.txt"]
    dry = subprocess.run(
        [*install, "--dry-run", "--report", str(report), ".[kube]"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False, env=PIP_ENV,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    planned = {
        canonical(i["metadata"]["name"]): Version(i["metadata"]["version"])
        for i in json.loads(report.read_text())["install"]
    }
    pins = lock("operator")
    assert {n: v for n, v in planned.items() if n != "apprentice"}.items() <= pins.items()
    real = subprocess.run(
        [*install, ".[kube]"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False, env=PIP_ENV,
    )  # fmt: skip
    assert real.returncode == 0, real.stderr
    # The image's CMD, outside a cluster and without a kubeconfig: it must import every
    # module and stop with its own message, not an ImportError.
    env = {k: v for k, v in PIP_ENV.items() if not k.startswith(("KUBE", "APPRENTICE_"))}
    env["HOME"] = str(tmp_path)
    run = subprocess.run(
        [str(python), "-m", "apprentice.kube.operator"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert run.returncode != 0
    assert "no in-cluster service account and no kubeconfig" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
