"""The session's control plane: started by ``hack/cluster/cluster.py up``, or reused.

A plane that ``make cluster`` started is reused and left running; one this session
started is stopped (and its state removed) when the session ends. The first start on a
new machine also builds the binaries from source (``make test`` builds them first).

One pytest session at a time uses the plane: the tests use fixed namespaces and one kopf
peering, so a second session would delete the first one's namespace (and with it the
PVC whose hostPath directory a trainer is writing to), pause its operator behind its own
replica, and stop a plane the first one still uses. A second session waits on
``.tools/cluster.lock`` (an flock: released when the holder exits, even killed).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from cluster_support import ROOT, SCRIPT, Cluster, eventually, log_tails

# Where cluster.py keeps the plane's state (the same override as there).
STATE = Path(os.environ.get("APPRENTICE_CLUSTER_DIR", ROOT / ".tools" / "cluster"))
LOCK = ROOT / ".tools" / "cluster.lock"
#: How long a session waits for another one to finish with the plane.
LOCK_WAIT_S = 3600.0
#: Where a session that had a failure leaves a copy of the plane's logs.
KEPT_LOGS = ROOT / ".tools" / "cluster-logs-failed"
#: Failed tests of this session (the first few carry the logs' tails in their report).
FAILED: list[str] = []
TAILS_IN_REPORTS = 3


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed cluster test's report ends with the control plane's last log lines."""
    report = yield
    if report.failed and (STATE / "logs").is_dir():
        FAILED.append(item.nodeid)
        if len(FAILED) <= TAILS_IN_REPORTS:
            where = f"(all of them are copied to {KEPT_LOGS} when the session ends)"
            report.sections.append((f"control plane logs {where}", log_tails(STATE)))
    return report


def _running() -> bool:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "status"], capture_output=True, text=True, check=False
    )
    return out.returncode == 0


@pytest.fixture(scope="session")
def exclusive() -> Iterator[None]:
    """This session alone on the plane (see the module docstring)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)

    def take() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        eventually(take, LOCK_WAIT_S, f"another pytest session to release {LOCK}", step=1.0)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


@pytest.fixture(scope="session")
def cluster(exclusive: None) -> Iterator[Cluster]:
    reused = _running()
    if not reused:
        up = subprocess.run(
            [sys.executable, str(SCRIPT), "up"],
            capture_output=True,
            text=True,
            timeout=3600,  # a cold build of kube-apiserver on two cores is long
            check=False,
        )
        if up.returncode != 0:
            pytest.fail(
                f"hack/cluster/cluster.py up failed:\n{up.stderr[-4000:]}\n{log_tails(STATE)}"
            )
    state = json.loads((STATE / "state.json").read_text())
    assert state["server"].startswith("https://127.0.0.1:")
    yield Cluster(
        kubeconfig=STATE / "kubeconfig",
        audit_log=STATE / "logs" / "audit.log",
        state_dir=STATE,
    )
    if FAILED:
        shutil.rmtree(KEPT_LOGS, ignore_errors=True)
        shutil.copytree(STATE / "logs", KEPT_LOGS)
    if not reused:
        subprocess.run([sys.executable, str(SCRIPT), "down"], check=False, timeout=120)


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    """The CRDs installed (a test that uninstalls them with the chart comes first)."""
    cluster.ensure_crds()
    return cluster
