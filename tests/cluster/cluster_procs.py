"""Local processes for the real-server tests: the operator and a pod's container.

kwok's nodes run no containers, so where a test needs what a pod would do, the pod's
own container runs here as a process, with what a kubelet would give it: its env
(``secretKeyRef`` and ``configMapKeyRef`` read from the API server) and its volumes.
ConfigMaps are written to files and empty dirs made, each such mount path mapped to its
local directory in the argv, the env and the mounted config files. The PVC is what the
hostPath provisioner made, a real directory here, bind-mounted at the container's mount
path in a private mount namespace (``unshare -m``; a tmpfs hides the rest of its parent
folder there), so the paths the operator hands around (a ModelVersion's adapter path)
resolve for the gateway and the trainer alike.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cluster_support import ROOT, Cluster, eventually

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def token_kubeconfig(cluster: Cluster, sa: str, namespace: str, path: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of ``namespace/sa``: its RBAC, nothing more."""
    token = cluster.kubectl("create", "token", sa, "-n", namespace, "--duration=3h").strip()
    server = json.loads((cluster.state_dir / "state.json").read_text())["server"]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "test",
                "cluster": {
                    "server": server,
                    "certificate-authority": str(cluster.state_dir / "pki" / "ca.crt"),
                },
            }
        ],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": sa}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(doc))
    return path


@dataclass
class Process:
    """A child process whose output goes to a log file; stopped with SIGTERM."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def start(name: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> Process:
    out = log.open("ab")
    proc = subprocess.Popen(
        argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
    )
    out.close()
    return Process(name, proc, log)


def base_env() -> dict[str, str]:
    """This machine's environment without in-cluster hints or a kubeconfig."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env.pop("KUBECONFIG", None)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env


def operator_env(
    cluster: Cluster, deployment: dict[str, Any], pod_name: str, **overrides: str
) -> dict[str, str]:
    """The chart Deployment's env as a kubelet resolves it (Secret and ConfigMap keys read,
    ``metadata.name`` the given pod name), then ``overrides``."""
    namespace = deployment["metadata"]["namespace"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        if ref is not None:
            assert ref == "metadata.name", f"env {item['name']}: fieldRef {ref}"
            env[item["name"]] = pod_name
        else:
            env[item["name"]] = env_value(cluster, namespace, item)
    env.update(overrides)
    return env


def env_value(cluster: Cluster, namespace: str, item: dict[str, Any]) -> str:
    """One ``env`` entry's value: literal, or a Secret's or ConfigMap's key."""
    if "valueFrom" not in item:
        return str(item.get("value", ""))  # the API server drops an empty value
    ref = item["valueFrom"]
    if "secretKeyRef" in ref:
        key = ref["secretKeyRef"]
        secret = cluster.get("secret", key["name"], namespace)
        assert secret is not None, f"Secret {namespace}/{key['name']} missing"
        return base64.b64decode(secret["data"][key["key"]]).decode()
    if "configMapKeyRef" in ref:
        key = ref["configMapKeyRef"]
        cm = cluster.get("configmap", key["name"], namespace)
        assert cm is not None, f"ConfigMap {namespace}/{key['name']} missing"
        return str(cm["data"][key["key"]])
    raise AssertionError(f"env {item['name']}: unsupported valueFrom {ref}")


def start_operator(
    workdir: Path, kubeconfig: Path, env: dict[str, str], name: str = "operator"
) -> Process:
    """``python -m apprentice.kube.operator`` (the chart's container args), here."""
    health = int(env["APPRENTICE_HEALTH_PORT"])
    proc = start(
        name,
        [sys.executable, "-m", "apprentice.kube.operator"],
        {**base_env(), **env, "KUBECONFIG": str(kubeconfig)},
        workdir / f"{name}.log",
        ROOT,
    )

    def live() -> bool:
        assert proc.alive(), f"the operator exited:\n{proc.tail()}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", health), 0.5):
            return True
        return False

    eventually(live, 60, "the operator's liveness endpoint")
    return proc


class LocalContainer:
    """One container of a pod, made runnable here the way a kubelet would run it."""

    def __init__(self, cluster: Cluster, namespace: str, pod_spec: dict[str, Any], root: Path):
        self.cluster, self.namespace, self.pod, self.root = cluster, namespace, pod_spec, root
        self.mounts: dict[str, Path] = {}  # mapped in text
        self.binds: dict[str, Path] = {}  # bind-mounted in the process's mount namespace

    def _volume_dir(self, volume: dict[str, Any]) -> Path:
        target = self.root / "volumes" / volume["name"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            pvc = self.cluster.get("pvc", claim, self.namespace)
            assert pvc is not None and pvc["status"].get("phase") == "Bound", pvc
            pv = self.cluster.get("pv", pvc["spec"]["volumeName"])
            assert pv is not None and "hostPath" in pv["spec"], pv
            return Path(pv["spec"]["hostPath"]["path"])  # the provisioner's real directory
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            name = volume["configMap"]["name"]
            cm = self.cluster.get("configmap", name, self.namespace)
            assert cm is not None, f"ConfigMap {name} missing"
            for key, text in (cm.get("data") or {}).items():
                (target / key).write_text(text)
        return target

    def _map(self, text: str) -> str:
        """Mount paths to local directories, in one pass (a local path is never re-mapped)."""
        if not self.mounts:
            return text
        paths = sorted(self.mounts, key=len, reverse=True)
        pattern = r"(?<![\w.-])(" + "|".join(re.escape(p) for p in paths) + r")(?![\w.-])"
        return re.sub(pattern, lambda m: str(self.mounts[m.group(1)]), text)

    def prepare(self, container_name: str) -> tuple[list[str], dict[str, str]]:
        """(argv, env) of the container with mount paths mapped to local directories."""
        container = next(c for c in self.pod["containers"] if c["name"] == container_name)
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            where = self.binds if "persistentVolumeClaim" in volume else self.mounts
            where[mount["mountPath"]] = self._volume_dir(volume)
        for mount in container.get("volumeMounts", []):  # config files name other mounts
            if "configMap" in volumes[mount["name"]]:
                for file in self.mounts[mount["mountPath"]].iterdir():
                    if file.is_file():
                        file.write_text(self._map(file.read_text()))
        env = base_env()
        for item in container.get("env", []):
            env[item["name"]] = self._map(env_value(self.cluster, self.namespace, item))
        argv = [self._map(a) for a in container.get("command", []) + container.get("args", [])]
        if argv and not os.path.isabs(argv[0]) and (VENV_BIN / argv[0]).exists():
            argv[0] = str(VENV_BIN / argv[0])
        return self._in_namespace(argv), env

    def _in_namespace(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped so each PVC mount path is its volume's directory."""
        if not self.binds:
            return argv
        lines = ["set -e"]
        for path, local in self.binds.items():
            parent = os.path.dirname(path)
            if not os.path.isdir(path):
                # Only a folder nothing here needs may be hidden behind a tmpfs.
                assert parent.startswith(("/var/lib", "/srv", "/data")), path
                lines.append(f"mount -t tmpfs apprentice-test {parent}")
                lines.append(f"mkdir -p {path}")
            lines.append(f"mount --bind {local} {path}")
        lines.append('exec "$@"')
        script = "; ".join(lines)
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv]


@contextlib.contextmanager
def running(proc: Process) -> Iterator[Process]:
    try:
        yield proc
    finally:
        proc.stop()
