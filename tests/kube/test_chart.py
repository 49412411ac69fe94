"""The Helm chart, rendered by the real helm binary and validated offline.

Every documented value set (charts/apprentice/ci/) lints clean and renders objects that
Kubernetes' own schemas accept; tests/cluster installs the same sets on a real API server.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART,
    K8S_VERSION,
    NOT_BUILT_IN,
    VALUE_SETS,
    by_kind,
    env_of,
    helm_binary,
    render,
    run_helm,
    value_set,
)

from apprentice.kube import crds


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


def test_the_documented_value_sets_are_there() -> None:
    assert {"default", "namespaced", "standalone", "monitoring", "hardened"} <= set(VALUE_SETS)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_is_clean(helm: Path, name: str) -> None:
    out = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(VALUE_SETS[name]))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[ERROR]" not in out.stdout and "[WARNING]" not in out.stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_manifests_validate_against_kubernetes(
    helm: Path, tmp_path: Path, name: str
) -> None:
    docs = render(helm, tmp_path, value_set(name), "--include-crds")
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "CustomResourceDefinition"} <= kinds
    assert {"ClusterRole", "Role"} & kinds
    for doc in docs:
        if doc["kind"] in NOT_BUILT_IN:
            assert doc["apiVersion"] == NOT_BUILT_IN[doc["kind"]]
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_chart_crds_are_the_generated_crds(helm: Path, tmp_path: Path) -> None:
    rendered = {
        d["metadata"]["name"]: d
        for d in by_kind(render(helm, tmp_path, {}), "CustomResourceDefinition")
    }
    generated = {crd["metadata"]["name"]: crd for crd in crds.all_crds().values()}
    assert set(rendered) == set(generated)  # kopf's peering CRDs are not templates
    for name, crd in generated.items():
        assert rendered[name]["spec"] == crd["spec"]
        assert rendered[name]["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_kopf_peering_crds_are_installed_first_and_never_owned(helm: Path, tmp_path: Path) -> None:
    """Finding 1: a KopfPeering and its CRD in one release's templates cannot install."""
    with_crds = render(helm, tmp_path, {}, "--include-crds")
    peering_crds = {
        d["metadata"]["name"]: d
        for d in by_kind(with_crds, "CustomResourceDefinition")
        if d["spec"]["group"] == "kopf.dev"
    }
    assert set(peering_crds) == {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    # Plain YAML from crds/ (Helm installs it before it maps the templates' kinds, skips it
    # when present, never deletes it), so no release labels that claim ownership.
    for crd in peering_crds.values():
        assert "labels" not in crd["metadata"] and "annotations" not in crd["metadata"]
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1" and version["storage"] is True
    templates = [p.name for p in (CHART / "templates").rglob("*.yaml")]
    assert not any("kopfpeering" in t for t in templates)
    # ...and the peering object itself is a template of the same release.
    assert [d["metadata"]["name"] for d in by_kind(with_crds, "ClusterKopfPeering")] == [
        "apprentice"
    ]


def test_crds_can_be_left_out_or_not_kept(helm: Path, tmp_path: Path) -> None:
    assert not by_kind(
        render(helm, tmp_path, {"crds": {"enabled": False}}), "CustomResourceDefinition"
    )
    not_kept = by_kind(
        render(helm, tmp_path, {"crds": {"keep": False}}), "CustomResourceDefinition"
    )
    assert not_kept and all("annotations" not in d["metadata"] for d in not_kept)


def test_values_schema_rejects_unknown_keys_and_bad_values(helm: Path, tmp_path: Path) -> None:
    out = run_helm(helm, "template", "x", str(CHART), values={"replicas": 2}, tmp=tmp_path)
    assert out.returncode != 0 and "replicas" in out.stderr
    out = run_helm(
        helm, "template", "x", str(CHART), values={"podAntiAffinity": "maybe"}, tmp=tmp_path
    )
    assert out.returncode != 0 and "podAntiAffinity" in out.stderr


def test_several_replicas_without_peering_fail_at_render_time(helm: Path, tmp_path: Path) -> None:
    values = {"replicaCount": 2, "peering": {"enabled": False}}
    out = run_helm(helm, "template", "x", str(CHART), values=values, tmp=tmp_path)
    assert out.returncode != 0
    assert "replicaCount=2 needs peering.enabled=true" in out.stderr
    docs = render(helm, tmp_path, value_set("standalone"))
    assert env_of(docs)["APPRENTICE_PEERING"] == ""
    assert not by_kind(docs, "ClusterKopfPeering") and not by_kind(docs, "KopfPeering")


def test_images_default_to_the_app_version(helm: Path, tmp_path: Path) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    docs = render(helm, tmp_path, {})
    (deploy,) = by_kind(docs, "Deployment")
    image = deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/apprentice-dev/apprentice-operator:{app_version}"
    env = env_of(docs)
    assert env["APPRENTICE_GATEWAY_IMAGE"].endswith(f":{app_version}")
    assert env["APPRENTICE_TRAINER_IMAGE"].endswith(f":{app_version}")
    assert env["APPRENTICE_PEERING"] == "apprentice"


def test_operator_settings_follow_the_values(helm: Path, tmp_path: Path) -> None:
    env = env_of(render(helm, tmp_path, {**value_set("postgresql"), **value_set("gpu")}))
    assert env["APPRENTICE_POSTGRES_SECRET"] == "apprentice-db/dsn"
    assert env["APPRENTICE_GPU_NODE_SELECTOR"] == '{"pool":"gpu"}'
    from apprentice.kube.runtime import settings_from_env

    settings = settings_from_env(env)
    assert settings.defaults.gpu_node_selector == {"pool": "gpu"}
    assert settings.defaults.postgres is not None
    assert settings.defaults.postgres.name == "apprentice-db"
    assert settings.clusterwide and settings.peering == "apprentice"


def test_operator_pod_is_hardened(helm: Path, tmp_path: Path) -> None:
    (deploy,) = by_kind(render(helm, tmp_path, {}), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def anti_affinity(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deploy,) = by_kind(docs, "Deployment")
    affinity: dict[str, Any] = deploy["spec"]["template"]["spec"].get("affinity", {})
    return affinity.get("podAntiAffinity", {})


def test_replicas_spread_over_nodes_and_survive_drains(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, {})
    (deploy,) = by_kind(docs, "Deployment")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    (term,) = anti_affinity(docs)["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= pod_labels.items()
    (pdb,) = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == deploy["spec"]["selector"]

    hard = render(helm, tmp_path, value_set("hardened"))
    assert "requiredDuringSchedulingIgnoredDuringExecution" in anti_affinity(hard)
    single = render(helm, tmp_path, value_set("namespaced"))  # one replica
    assert anti_affinity(single) == {} and not by_kind(single, "PodDisruptionBudget")
    own = {"nodeAffinity": {"x": 1}}
    (deploy,) = by_kind(render(helm, tmp_path, {"affinity": own}), "Deployment")
    assert deploy["spec"]["template"]["spec"]["affinity"] == own  # the user's wins


def test_the_packaged_chart_renders_what_the_source_does(helm: Path, tmp_path: Path) -> None:
    """What the release workflow pushes (helm package, .helmignore applied) is complete."""
    out = run_helm(helm, "package", str(CHART), "--destination", str(tmp_path))
    assert out.returncode == 0, out.stderr
    (package,) = tmp_path.glob("apprentice-*.tgz")
    values = str(VALUE_SETS["monitoring"])
    rendered = run_helm(helm, "template", "apprentice", str(package), "-f", values)
    source = run_helm(helm, "template", "apprentice", str(CHART), "-f", values)
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    (dashboard,) = [d for d in docs if d["metadata"]["name"].endswith("-dashboard")]
    assert len(dashboard["data"]["apprentice.json"]) > 1000  # dashboards/ was packaged

    def without_secrets(text: str) -> list[dict[str, Any]]:  # the generated key differs
        return [d for d in yaml.safe_load_all(text) if d and d["kind"] != "Secret"]

    assert without_secrets(rendered.stdout) == without_secrets(source.stdout)
    with tarfile.open(package) as tar:
        names = tar.getnames()
    assert "apprentice/crds/kopf-peerings.yaml" in names
    assert not any(n.startswith("apprentice/ci/") for n in names)
