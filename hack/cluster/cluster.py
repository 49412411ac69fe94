#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback, no Docker: ``cluster.py up|down|env|status``.

``up`` builds the binaries once (``build.sh``), then starts etcd, kube-apiserver (RBAC on,
ServiceAccount token signing, an audit log at Metadata level), kube-controller-manager
(garbage collector, Job, Deployment, PV binder with the hostPath provisioner),
kube-scheduler and kwok, which plays the kubelet of fake nodes (two CPU nodes, one with
``nvidia.com/gpu``), so pods reach Running and a Job's pods complete. It writes an admin
kubeconfig to ``.tools/cluster/kubeconfig`` and prints ``export KUBECONFIG=...``. A second
``up`` finds the running plane healthy and only prints that line. ``down`` stops every
process and removes the state. Python's standard library and ``openssl`` only, so it runs
before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STATE = Path(os.environ.get("APPRENTICE_CLUSTER_DIR", ROOT / ".tools" / "cluster"))
KUBECONFIG = STATE / "kubeconfig"
AUDIT_LOG = STATE / "logs" / "audit.log"
START_TIMEOUT_S = 120.0
# Fake nodes: name -> extra capacity. Every node also gets a generous CPU/memory/pods.
# Three, so the chart's hard anti-affinity value set (three replicas) can be scheduled.
NODES: dict[str, dict[str, str]] = {
    "kwok-cpu-0": {},
    "kwok-cpu-1": {},
    "kwok-gpu-0": {"nvidia.com/gpu": os.environ.get("APPRENTICE_CLUSTER_GPUS", "1")},
}
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

AUDIT_POLICY = """\
# Every request at Metadata level (who, verb, resource): never a Secret's data. Writes by
# workload ServiceAccounts (the operator under test) also keep their request body, so a
# test can see the ownerReferences an object was created with (blockOwnerDeletion needs
# update on the owner's finalizers: an admission check that leaves no audit event).
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources: [{group: "", resources: [secrets]}]
- level: Metadata
  userGroups: ["system:serviceaccounts:kube-system"]
- level: Request
  userGroups: ["system:serviceaccounts"]
  verbs: [create, patch, update]
- level: Metadata
"""

STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "hostpath",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    # kube-controller-manager's in-tree test provisioner (--enable-hostpath-provisioner).
    "provisioner": "kubernetes.io/host-path",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
}


class ClusterError(RuntimeError):
    """The control plane could not be started; the message names the log to read."""


def log(msg: str) -> None:
    print(f"cluster: {msg}", file=sys.stderr, flush=True)


# --- building and certificates ------------------------------------------------------------


def build() -> Path:
    """The folder of built binaries (built now when missing)."""
    out = subprocess.run(
        ["bash", str(HERE / "build.sh")], stdout=subprocess.PIPE, text=True, check=False
    )
    if out.returncode != 0:
        raise ClusterError(f"hack/cluster/build.sh failed (exit {out.returncode})")
    return Path(out.stdout.strip().splitlines()[-1])


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _key(path: Path) -> None:
    """A P-256 key: milliseconds to make, where RSA-2048 takes a second a key on 2 cores."""
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )


def make_pki(pki: Path) -> None:
    """One CA; a serving cert for 127.0.0.1; client certs; the ServiceAccount signing key."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, ca = pki / "ca.key", pki / "ca.crt"
    _key(ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-days", "3650", "-subj",
        "/CN=apprentice-test-ca", "-out", str(ca),
    )  # fmt: skip
    certs = {
        "apiserver": ("/CN=kube-apiserver", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
        "admin": ("/O=system:masters/CN=apprentice-admin", "clientAuth", None),
        "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
        "scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
        "kwok": ("/O=system:masters/CN=kwok", "clientAuth", None),
    }
    for name, (subject, usage, san) in certs.items():
        key, csr, crt, ext = (pki / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
        _key(key)
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        lines = [f"extendedKeyUsage={usage}", "keyUsage=digitalSignature"]
        if san:
            lines.append(f"subjectAltName={san}")
        ext.write_text("\n".join(lines) + "\n")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-out", str(crt),
        )  # fmt: skip
    _key(pki / "sa.key")  # ServiceAccount tokens are then signed ES256
    _openssl("pkey", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def kubeconfig(server: str, pki: Path, user: str) -> str:
    """A kubeconfig with the files' contents inlined, so it can be copied anywhere."""
    import base64

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "apprentice-test",
                "cluster": {"server": server, "certificate-authority-data": b64(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(pki / f"{user}.crt"),
                    "client-key-data": b64(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "apprentice-test", "context": {"cluster": "apprentice-test", "user": user}}
        ],
        "current-context": "apprentice-test",
    }
    return json.dumps(doc, indent=1)  # JSON is YAML


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(name: str, argv: list[str]) -> int:
    """Start one component in its own session (it outlives this script); returns its pid."""
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / f"{name}.log").open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=STATE,
        )
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def admin_context(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def api(
    server: str, ctx: ssl.SSLContext, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        server + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            text = resp.read().decode()
            return resp.status, json.loads(text) if text.startswith("{") else text
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(what: str, check: Any, pids: dict[str, int], deadline: float) -> None:
    """Poll ``check()`` until true; fail early when a component has died."""
    while True:
        with contextlib.suppress(OSError, ssl.SSLError, urllib.error.URLError):
            if check():
                return
        dead = [n for n, p in pids.items() if not alive(p)]
        if dead:
            raise ClusterError(f"{dead[0]} exited; see {STATE / 'logs' / (dead[0] + '.log')}")
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out waiting for {what}; logs in {STATE / 'logs'}")
        time.sleep(0.2)


# --- up / down ----------------------------------------------------------------------------


def read_state() -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((STATE / "state.json").read_text())
        return data
    except (OSError, ValueError):
        return None


def healthy(state: dict[str, Any]) -> bool:
    if not all(alive(int(p)) for p in state["pids"].values()):
        return False
    try:
        code, _ = api(state["server"], admin_context(STATE / "pki"), "GET", "/readyz")
    except (OSError, ssl.SSLError, urllib.error.URLError):
        return False
    return code == 200


def up() -> dict[str, Any]:
    state = read_state()
    if state and healthy(state):
        return state
    if state:
        log("a previous control plane is not healthy: replacing it")
    down()
    binaries = build()
    started = time.monotonic()
    deadline = started + START_TIMEOUT_S
    pki = STATE / "pki"
    make_pki(pki)
    (STATE / "audit-policy.yaml").write_text(AUDIT_POLICY)
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    pids: dict[str, int] = {}
    state = {"server": server, "pids": pids, "binaries": str(binaries)}

    def save() -> None:
        (STATE / "state.json").write_text(json.dumps(state, indent=1))

    etcd_url = f"http://127.0.0.1:{etcd_port}"
    pids["etcd"] = spawn(
        "etcd",
        [
            str(binaries / "etcd"),
            "--name=apprentice-test",
            f"--data-dir={STATE / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=apprentice-test=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync",  # a throw-away test store; fsync would dominate start time
            "--log-level=warn",
        ],
    )
    save()
    for name, text in (
        ("admin", kubeconfig(server, pki, "admin")),
        ("controller-manager", kubeconfig(server, pki, "controller-manager")),
        ("scheduler", kubeconfig(server, pki, "scheduler")),
        ("kwok", kubeconfig(server, pki, "kwok")),
    ):
        (STATE / f"{name}.kubeconfig").write_text(text)
    pids["kube-apiserver"] = spawn(
        "kube-apiserver",
        [
            str(binaries / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # No in-cluster client reaches the API through the kubernetes Service here, and
            # the endpoint reconciler refuses a loopback address.
            "--endpoint-reconciler-type=none",
            f"--secure-port={api_port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            f"--audit-policy-file={STATE / 'audit-policy.yaml'}",
            f"--audit-log-path={AUDIT_LOG}",
            "--audit-log-mode=blocking",  # an entry is written before the response returns
            "--profiling=false",
            "--v=1",
        ],
    )
    save()
    ctx = admin_context(pki)
    wait_for("etcd", lambda: _get(etcd_url + "/health"), pids, deadline)
    wait_for(
        "kube-apiserver /readyz",
        lambda: api(server, ctx, "GET", "/readyz")[0] == 200,
        pids,
        deadline,
    )
    pids["kube-controller-manager"] = spawn(
        "kube-controller-manager",
        [
            str(binaries / "kube-controller-manager"),
            f"--kubeconfig={STATE / 'controller-manager.kubeconfig'}",
            "--use-service-account-credentials",  # each controller under its own RBAC
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--controllers=*",  # the default set: garbagecollector, job, deployment, ...
            "--enable-hostpath-provisioner",
            "--leader-elect=false",
            "--secure-port=0",
            "--concurrent-gc-syncs=5",
            "--v=1",
        ],
    )
    pids["kube-scheduler"] = spawn(
        "kube-scheduler",
        [
            str(binaries / "kube-scheduler"),
            f"--kubeconfig={STATE / 'scheduler.kubeconfig'}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=1",
        ],
    )
    pids["kwok"] = spawn(
        "kwok",
        [
            str(binaries / "kwok"),
            f"--kubeconfig={STATE / 'kwok.kubeconfig'}",
            f"--config={HERE / 'kwok-stages.yaml'}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.1/16",
            "--node-ip=10.240.0.1",
        ],
    )
    save()
    _apply(server, ctx, "/apis/storage.k8s.io/v1/storageclasses", STORAGE_CLASS)
    for name, extra in NODES.items():
        _apply(server, ctx, "/api/v1/nodes", _node(name, extra))
    for name in NODES:
        wait_for(f"node {name} Ready", lambda n=name: _node_ready(server, ctx, n), pids, deadline)
    wait_for(
        "ServiceAccount default/default",
        lambda: (
            api(server, ctx, "GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
        ),
        pids,
        deadline,
    )
    KUBECONFIG.write_text((STATE / "admin.kubeconfig").read_text())
    state["start_seconds"] = round(time.monotonic() - started, 2)
    save()
    return state


def _get(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)


def _apply(server: str, ctx: ssl.SSLContext, collection: str, obj: dict[str, Any]) -> None:
    code, text = api(server, ctx, "POST", collection, obj)
    if code not in (200, 201, 409):
        raise ClusterError(f"POST {collection} {obj['metadata']['name']}: {code} {text}")


def _node(name: str, extra: dict[str, str]) -> dict[str, Any]:
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", **extra}
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
    }
    if extra:
        labels["apprentice.dev/gpu"] = "true"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def _node_ready(server: str, ctx: ssl.SSLContext, name: str) -> bool:
    code, node = api(server, ctx, "GET", f"/api/v1/nodes/{name}")
    if code != 200 or not isinstance(node, dict):
        return False
    conds = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def down() -> None:
    """Stop every component (SIGTERM, then SIGKILL) and remove the state folder."""
    state = read_state()
    # Only our own components: after a reboot a recorded pid may be someone else's.
    pids = [int(p) for p in (state or {}).get("pids", {}).values() if _ours(int(p), state)]
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    if STATE.exists():
        subprocess.run(["rm", "-rf", str(STATE)], check=True)


def _ours(pid: int, state: dict[str, Any] | None) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return bool(state) and str((state or {}).get("binaries", "\0")) in cmdline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "env", "status"])
    args = parser.parse_args(argv)
    if args.command == "down":
        down()
        return 0
    if args.command == "up":
        before = read_state()
        running = before is not None and healthy(before)
        try:
            started = up()
        except ClusterError as exc:
            log(f"error: {exc}")
            return 1
        how = "already running" if running else f"started in {started['start_seconds']} s"
        log(f"control plane at {started['server']} ({how})")
    state = read_state()
    if state is None or not healthy(state):
        log("not running: make cluster")
        return 1
    if args.command == "status":
        print(json.dumps(state, indent=1))
    else:
        print(f"export KUBECONFIG={KUBECONFIG}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
