"""The session's control plane: started by ``hack/cluster/cluster.py up``, or reused.

A plane that ``make cluster`` started is reused and left running; one this session
started is stopped (and its state removed) when the session ends. The first start on a
new machine also builds the binaries from source (``make test`` builds them first).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cluster_support import ROOT, SCRIPT, Cluster

STATE = ROOT / ".tools" / "cluster"


def _running() -> bool:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "status"], capture_output=True, text=True, check=False
    )
    return out.returncode == 0


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    reused = _running()
    if not reused:
        up = subprocess.run(
            [sys.executable, str(SCRIPT), "up"],
            capture_output=True,
            text=True,
            timeout=3600,  # a cold build of kube-apiserver on two cores is long
            check=False,
        )
        assert up.returncode == 0, f"hack/cluster/cluster.py up failed:\n{up.stderr[-4000:]}"
    state = json.loads((STATE / "state.json").read_text())
    assert state["server"].startswith("https://127.0.0.1:")
    yield Cluster(
        kubeconfig=STATE / "kubeconfig",
        audit_log=STATE / "logs" / "audit.log",
        state_dir=STATE,
    )
    if not reused:
        subprocess.run([sys.executable, str(SCRIPT), "down"], check=False, timeout=120)


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    """The CRDs installed (a test that uninstalls them with the chart comes first)."""
    cluster.ensure_crds()
    return cluster
