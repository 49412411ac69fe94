"""Drive a kind cluster for the end-to-end suite: build, load, install, apply, wait.

Everything here shells out to the real tools (docker, kind, helm, kubectl). The manifests
the suite applies come from :func:`rendered_manifests`, which needs only helm, so this
project's CI renders and validates them without a Docker engine.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from apprentice.kube import tools

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "apprentice"
CPU_EXAMPLE = ROOT / "examples" / "kubernetes" / "cpu-replay-task.yaml"
ANSWERS = ROOT / "examples" / "demo" / "answers.jsonl"
INPUTS = ROOT / "examples" / "demo" / "inputs.jsonl"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]

CLUSTER = "apprentice-e2e"
RELEASE = "apprentice"
SYSTEM_NS = "apprentice-system"
TASK_NS = "e2e"
TASK = "ticket-triage-cpu"
IMAGES = {  # image -> Dockerfile; the trainer runs on CPU from the gateway image here
    f"ghcr.io/apprentice-dev/apprentice-operator:{APP_VERSION}": "images/operator/Dockerfile",
    f"ghcr.io/apprentice-dev/apprentice-gateway:{APP_VERSION}": "images/gateway/Dockerfile",
}
HELM_VALUES: dict[str, Any] = {
    "replicaCount": 1,
    "watchNamespaces": [TASK_NS],
    "pollIntervalSeconds": 5,
    "image": {"pullPolicy": "Never"},
    "trainer": {"image": {"repository": "ghcr.io/apprentice-dev/apprentice-gateway"}},
}


class E2EError(RuntimeError):
    """A step failed; the message carries the command and its output."""


def missing_tools() -> list[str]:
    """Host tools the suite needs and cannot provide itself (helm/kubectl it unpacks)."""
    return [t for t in ("docker", "kind") if shutil.which(t) is None]


@dataclass
class Tools:
    helm: str
    kubectl: str

    @classmethod
    def unpack(cls) -> Tools:
        paths = tools.ensure_tools(ROOT / ".tools")
        return cls(str(paths["helm"]), str(paths["kubectl"]))


def run(*cmd: str, input_text: str | None = None, timeout: float = 1800) -> str:
    proc = subprocess.run(
        list(cmd),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise E2EError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def namespaces() -> list[dict[str, Any]]:
    """The namespaces that must exist before ``helm install``.

    With ``watchNamespaces`` set the chart renders a Role, a RoleBinding and a KopfPeering
    into each watched namespace; Helm does not create those namespaces (only the release's,
    with ``--create-namespace``), so the install fails unless they exist first.
    """
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        for name in (SYSTEM_NS, *HELM_VALUES["watchNamespaces"])
    ]


def helm_template(helm: str) -> list[dict[str, Any]]:
    """What ``helm install`` creates: kopf's peering CRDs from crds/ first, then templates."""
    values = yaml.safe_dump(HELM_VALUES)
    out = run(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        SYSTEM_NS,
        "--include-crds",
        "-f",
        "-",
        input_text=values,
    )
    return [d for d in yaml.safe_load_all(out) if d]


def task_manifests() -> list[dict[str, Any]]:
    """The CPU example with the full demo answers in its ConfigMap, in the e2e namespace."""
    docs = [d for d in yaml.safe_load_all(CPU_EXAMPLE.read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = TASK_NS
        if doc["kind"] == "ConfigMap":
            doc["data"] = {"answers.jsonl": ANSWERS.read_text()}
    return docs


def rendered_manifests(helm: str) -> list[dict[str, Any]]:
    """Everything the suite creates, in order: namespaces, the chart, the task and answers."""
    return [*namespaces(), *helm_template(helm), *task_manifests()]


class Cluster:
    """One kind cluster with the chart installed."""

    def __init__(self, tools_: Tools) -> None:
        self.tools = tools_

    def kubectl(self, *args: str, input_text: str | None = None, timeout: float = 600) -> str:
        return run(
            self.tools.kubectl,
            "--context",
            f"kind-{CLUSTER}",
            *args,
            input_text=input_text,
            timeout=timeout,
        )

    def create(self) -> None:
        clusters = run("kind", "get", "clusters").split()
        if CLUSTER not in clusters:
            run("kind", "create", "cluster", "--name", CLUSTER, "--wait", "180s")

    def delete(self) -> None:
        run("kind", "delete", "cluster", "--name", CLUSTER)

    def build_and_load_images(self) -> None:
        for image, dockerfile in IMAGES.items():
            run("docker", "build", "-f", dockerfile, "-t", image, ".", timeout=3600)
            run("kind", "load", "docker-image", image, "--name", CLUSTER)

    def create_namespaces(self) -> None:
        """Idempotent: ``kubectl apply`` of the namespaces the chart's objects live in."""
        self.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(namespaces()))

    def install_chart(self) -> None:
        self.create_namespaces()
        run(
            self.tools.helm,
            "upgrade",
            "--install",
            RELEASE,
            str(CHART),
            "--namespace",
            SYSTEM_NS,
            "--kube-context",
            f"kind-{CLUSTER}",
            "--wait",
            "--timeout",
            "10m",
            "-f",
            "-",
            input_text=yaml.safe_dump(HELM_VALUES),
        )

    def apply_task(self) -> None:
        self.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(task_manifests()))

    def task(self) -> dict[str, Any]:
        out = self.kubectl("get", "distilledtask", TASK, "-n", TASK_NS, "-o", "json")
        body: dict[str, Any] = json.loads(out)
        return body

    def wait_ready(self, timeout_s: int = 900) -> None:
        self.kubectl(
            "wait",
            "--for=condition=Ready",
            f"distilledtask/{TASK}",
            "-n",
            TASK_NS,
            f"--timeout={timeout_s}s",
            timeout=timeout_s + 30,
        )

    @contextlib.contextmanager
    def port_forward(self) -> Iterator[str]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = subprocess.Popen(
            [
                self.tools.kubectl,
                "--context",
                f"kind-{CLUSTER}",
                "-n",
                TASK_NS,
                "port-forward",
                f"svc/{TASK}-gateway",
                f"{port}:8080",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def poll(check: Any, timeout_s: float, every_s: float, what: str) -> Any:
    """Call ``check`` until it returns something truthy (real-cluster progress is slow)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise E2EError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)
