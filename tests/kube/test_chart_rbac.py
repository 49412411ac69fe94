"""The chart's RBAC: what the operator calls, nothing more (finding 6).

tests/cluster measures the verbs the operator really uses against a real API server; these
tests pin the shape: cluster-wide only what kopf needs, Secrets never listed, owner
references allowed to block deletion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_support import by_kind, env_of, helm_binary, render, value_set


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


def grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for res in rule["resources"]:
                out.setdefault((group, res), set()).update(rule["verbs"])
    return out


def test_namespaced_mode_keeps_workload_rules_in_the_namespaces(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, value_set("namespaced"))
    # kopf's CRD and namespace scanning is off (the operator checks its CRDs at start):
    # nothing cluster-wide at all.
    assert not by_kind(docs, "ClusterRole") and not by_kind(docs, "ClusterRoleBinding")
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for role in roles:
        assert grants(role)[("kopf.dev", "kopfpeerings")] == {"list", "watch", "patch"}
    assert len(by_kind(docs, "KopfPeering")) == 2 and not by_kind(docs, "ClusterKopfPeering")
    env = env_of(docs)
    assert env["APPRENTICE_WATCH_NAMESPACES"] == "team-a,team-b"
    assert env["APPRENTICE_IMAGE_PULL_SECRETS"] == "regcred"


@pytest.mark.parametrize("name", ["default", "namespaced"])
def test_workload_rules_are_least_privilege(helm: Path, tmp_path: Path, name: str) -> None:
    docs = render(helm, tmp_path, value_set(name))
    roles = by_kind(docs, "Role") or by_kind(docs, "ClusterRole")
    for role in roles:
        g = grants(role)
        for (group, res), verbs in g.items():
            assert "*" not in verbs and res != "*" and group != "*"
            assert "deletecollection" not in verbs and "escalate" not in verbs
            if res.endswith("/finalizers"):
                assert verbs == {"update"}
            else:
                assert "update" not in verbs, (res, verbs)  # patches, never full updates
        # Secrets: the derived admin token Secret is created once; never read or patched.
        assert g[("", "secrets")] == {"create"}
        # blockOwnerDeletion on children needs update of the owners' finalizers.
        assert g[("apprentice.dev", "distilledtasks/finalizers")] == {"update"}
        assert g[("apprentice.dev", "trainingjobs/finalizers")] == {"update"}
        assert g[("", "events")] == {"create"}
        assert g[("", "pods")] == {"list"}
        # Children are server-side applied and never read back or deleted.
        for child in [("", "configmaps"), ("", "services"), ("apps", "deployments")]:
            assert g[child] == {"create", "patch"}
        assert g[("", "persistentvolumeclaims")] == {"create"}
        assert g[("batch", "jobs")] == {"create", "get"}
        assert g[("apprentice.dev", "trainingjobs")] == {"list", "watch", "create", "patch"}
        assert "delete" not in set().union(*g.values())


def test_reading_secrets_is_an_explicit_opt_in(helm: Path, tmp_path: Path) -> None:
    """Only tasks with their own adminTokenSecretRef need it (the operator sends that token)."""
    docs = render(helm, tmp_path, {"rbac": {"readAdminTokenSecrets": True}})
    (cluster_role,) = by_kind(docs, "ClusterRole")
    assert grants(cluster_role)[("", "secrets")] == {"create", "get"}


def test_admin_tokens_are_derived_from_a_kept_key(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {})
    (deploy,) = by_kind(docs, "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    ref = env["APPRENTICE_ADMIN_TOKEN_KEY"]["valueFrom"]["secretKeyRef"]
    (secret,) = by_kind(docs, "Secret")
    assert ref == {"name": secret["metadata"]["name"], "key": "key"}
    assert len(secret["data"]["key"]) >= 48 and secret["metadata"]["namespace"] == "apprentice"
    assert env["APPRENTICE_TRAINING_BACKOFF"]["value"] == "600"
    assert env["APPRENTICE_TRAINING_MAX_FAILURES"]["value"] == "5"
    own = render(helm, tmp_path, {"adminTokenKey": {"existingSecret": "mine", "secretKey": "k"}})
    assert not by_kind(own, "Secret")
    (deploy,) = by_kind(own, "Deployment")
    env = {e["name"]: e for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["APPRENTICE_ADMIN_TOKEN_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mine",
        "key": "k",
    }


def test_clusterwide_mode_has_no_namespace_roles(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {})
    assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding")
    (cluster_role,) = by_kind(docs, "ClusterRole")
    g = grants(cluster_role)
    assert g[("kopf.dev", "clusterkopfpeerings")] == {"list", "watch", "patch"}
    assert ("", "namespaces") not in g and (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
    ) not in g
    standalone = render(helm, tmp_path, value_set("standalone"))
    (cluster_role,) = by_kind(standalone, "ClusterRole")
    assert ("kopf.dev", "clusterkopfpeerings") not in grants(cluster_role)
