"""Helpers of the real-API-server tests: kubectl and helm against ``make cluster``'s plane.

The control plane (etcd, kube-apiserver with RBAC, kube-controller-manager,
kube-scheduler, kwok) is started by ``hack/cluster/cluster.py``; these helpers only
drive the real ``kubectl`` and ``helm`` binaries at it. Waiting is always on a condition
with a deadline (``kubectl wait`` or :func:`eventually`), never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "apprentice"
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "examples" / "kubernetes"
SCRIPT = ROOT / "hack" / "cluster" / "cluster.py"
GROUP = "apprentice.dev"

T = TypeVar("T")


class CommandFailed(AssertionError):
    """kubectl or helm exited non-zero; the message carries its stderr."""

    def __init__(self, argv: list[str], out: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{' '.join(argv)} -> exit {out.returncode}\n{out.stderr or out.stdout}")
        self.stderr = out.stderr
        self.returncode = out.returncode


def eventually(check: Callable[[], T | None], within: float, what: str, step: float = 0.25) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what} (last: {last!r})")
        time.sleep(step)  # a polling step of a bounded wait, not a synchronisation point


@dataclass
class Cluster:
    """One running control plane: its kubeconfig, audit log and the two CLIs."""

    kubeconfig: Path
    audit_log: Path
    state_dir: Path
    tools: Path = ROOT / ".tools"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(self.state_dir / "helm" / "cache"),
            "HELM_CONFIG_HOME": str(self.state_dir / "helm" / "config"),
            "HELM_DATA_HOME": str(self.state_dir / "helm" / "data"),
        }

    def run(
        self,
        tool: str,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: int = 180,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.tools / tool), *args]
        if tool == "kubectl":
            argv.insert(1, f"--cache-dir={self.state_dir / 'kubectl-cache'}")
        try:
            out = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:  # a wait that never ended: say what it said
            said = f"{_text(exc.stderr)}{_text(exc.stdout)}\n(killed after {timeout} s)"
            raise CommandFailed(argv, subprocess.CompletedProcess(argv, -9, "", said)) from exc
        if check and out.returncode != 0:
            raise CommandFailed(argv, out)
        return out

    def kubectl(self, *args: str, stdin: str | None = None, timeout: int = 180) -> str:
        return self.run("kubectl", *args, stdin=stdin, timeout=timeout).stdout

    def try_kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, stdin=stdin, check=False)

    def helm(self, *args: str, timeout: int = 300) -> str:
        return self.run("helm", *args, timeout=timeout).stdout

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        ns = ["-n", namespace] if namespace else []
        out = self.run("kubectl", "get", kind, name, *ns, "-o", "json", check=False)
        if out.returncode != 0:
            if "NotFound" in out.stderr or "not found" in out.stderr:
                return None
            raise CommandFailed(["kubectl", "get", kind, name], out)
        obj: dict[str, Any] = json.loads(out.stdout)
        return obj

    def items(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        sel = ["-l", selector] if selector else []
        data = json.loads(self.kubectl("get", kind, "-n", namespace, *sel, "-o", "json"))
        return list(data["items"])

    def apply(self, objs: dict[str, Any] | Iterable[dict[str, Any]], namespace: str) -> str:
        docs = [objs] if isinstance(objs, dict) else list(objs)
        return self.kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(docs))

    def create_namespace(self, name: str) -> str:
        """A fresh namespace (deleted first if a previous run left it)."""
        if self.get("namespace", name) is not None:
            self.release_finalizers(name)  # a previous run's operator may be gone
            self.kubectl("delete", "namespace", name, "--wait=true", timeout=300)
        self.kubectl("create", "namespace", name)
        # The ServiceAccount controller creates "default"; pods cannot be admitted before.
        eventually(lambda: self.get("serviceaccount", "default", name), 30, f"{name}/default SA")
        return name

    def warm_watch_caches(self, crds: Iterable[str]) -> None:
        """List each CRD's objects from the API server's watch cache until it answers.

        kube-apiserver builds a custom resource's watch cache on the first request for it,
        and answers 429 "storage is (re)initializing" until the cache is ready. When the
        first request is the CRD finalizer's own list (the CRD is being deleted and nothing
        watched its objects, as the operator would), the finalizer's retry can be lost (its
        status write conflicts with its own earlier one, and it ignores an update that only
        changed the Terminating condition): the CRD then stays Terminating until the
        finalizer's informer resyncs, five minutes later. Seen here: 2 of 6 such deletions
        took 290 s. A list without a limit (``--chunk-size=0``) is only ever served from
        the cache, so its success means the cache is ready; then a delete takes a second.
        """
        for crd in crds:
            if self.get("crd", crd) is not None:
                eventually(partial(self._listed, crd), 60, f"the watch cache of {crd} objects")

    def _listed(self, crd: str) -> bool:
        return self.try_kubectl("get", crd, "-A", "--chunk-size=0", "-o", "name").returncode == 0

    def delete_crds(self, crds: list[str]) -> None:
        """Delete the CRDs (those that exist) and wait until they are gone."""
        self.warm_watch_caches(crds)
        self.kubectl(
            "delete", "crd", *crds, "--ignore-not-found", "--wait=true", "--timeout=120s",
            timeout=150,
        )  # fmt: skip

    def release_finalizers(self, namespace: str) -> None:
        """Drop the finalizers of Apprentice objects no operator is left to release."""
        for kind in ("distilledtasks", "trainingjobs", "modelversions"):
            out = self.run("kubectl", "get", kind, "-n", namespace, "-o", "name", check=False)
            for ref in out.stdout.split():
                patch = '{"metadata":{"finalizers":null}}'
                self.run("kubectl", "patch", ref, "-n", namespace, "--type=merge", "-p", patch)

    def ensure_crds(self) -> None:
        """The committed CRDs, applied server-side (adopting any a Helm release left)."""
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "--field-manager=tests", "-f", str(CRDS)
        )
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRDS), timeout=90
        )

    def audit_events(self) -> Iterator[dict[str, Any]]:
        with self.audit_log.open() as lines:
            for line in lines:
                if line.strip():
                    yield json.loads(line)


def _text(data: str | bytes | None) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else data or ""


def log_tails(state_dir: Path, lines: int = 25) -> str:
    """The last lines of each control-plane component's log, to explain a failure."""
    parts = []
    for log in sorted((state_dir / "logs").glob("*.log")):
        if log.name != "audit.log":
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts) or f"no component logs under {state_dir / 'logs'}"


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def example_task(name: str = "classify-ticket.yaml") -> dict[str, Any]:
    """The DistilledTask of one example file."""
    for doc in load_docs(EXAMPLES / name):
        if doc["kind"] == "DistilledTask":
            return doc
    raise AssertionError(f"{name} holds no DistilledTask")
