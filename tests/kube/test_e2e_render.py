"""The kind suite cannot run here (no Docker), but it imports and its manifests are valid."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import kubernetes_validate

from apprentice.kube import crd_validation, crds

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "e2e" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_e2e_suite_imports_and_its_manifests_render_and_validate() -> None:
    kind = load("kind_cluster")
    load("test_cpu_task")  # the test module itself imports cleanly
    docs = kind.rendered_manifests(kind.Tools.unpack().helm)
    ours = crds.all_crds()
    kinds = [d["kind"] for d in docs]
    assert kinds.count("CustomResourceDefinition") == 5 and kinds[-2:] == [
        "ConfigMap",
        "DistilledTask",
    ]
    for doc in docs:
        if doc["kind"] in ours:
            assert crd_validation.validate(ours[doc["kind"]], doc) == []
        elif doc["kind"] not in ("KopfPeering", "ClusterKopfPeering"):
            kubernetes_validate.validate(doc, "1.33.0", strict=True)
    (answers,) = [d for d in docs if d["kind"] == "ConfigMap"]
    assert len(answers["data"]["answers.jsonl"].splitlines()) > 100
    env = {
        e["name"]: e.get("value")
        for d in docs
        if d["kind"] == "Deployment"
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["APPRENTICE_WATCH_NAMESPACES"] == kind.TASK_NS
    assert env["APPRENTICE_TRAINER_IMAGE"] in kind.IMAGES


def test_every_namespace_exists_before_anything_is_created_in_it() -> None:
    """Finding 13: the Role, RoleBinding and KopfPeering in `e2e` came before `e2e` did."""
    kind = load("kind_cluster")
    docs = kind.rendered_manifests(kind.Tools.unpack().helm)
    created: set[str] = set()
    in_task_ns = set()
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] == "Namespace":
            created.add(meta["name"])
            continue
        namespace = meta.get("namespace")
        if namespace is not None:
            assert namespace in created, f"{doc['kind']}/{meta['name']} before namespace"
            if namespace == kind.TASK_NS:
                in_task_ns.add(doc["kind"])
    assert {"Role", "RoleBinding", "KopfPeering", "DistilledTask"} <= in_task_ns
    # The CRDs come before any object of their kinds (crds/ first, then templates).
    order = [d["kind"] for d in docs]
    last_crd = max(i for i, k in enumerate(order) if k == "CustomResourceDefinition")
    assert order.index("KopfPeering") > last_crd and order.index("DistilledTask") > last_crd
