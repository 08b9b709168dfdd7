"""Stack isolation and CRDs on a kube sandbox with real helm: two stacks of one chart with
cluster-wide objects and CRDs side by side, collisions refused, CRD changes only as the policy
allows (docs/chart-contract.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stackyard.adapters.cluster import Cluster
from stackyard.adapters.helm import Helm, HelmConfig
from stackyard.core.cluster_objects import (
    ANNOTATION_CRD_CHART, ANNOTATION_CRD_CHART_VERSION, LABEL_CRD_MANAGED, stack_release,
)
from stackyard.exceptions import InputError
from stackyard.steps import preflight

from tests.support.certpilot import CERTS, ISSUERS, certpilot_source



@pytest.fixture(scope="module")
def sandbox():
    from kube_sandbox import Sandbox

    with Sandbox(ready_delay=0.01) as sb:
        yield sb


@pytest.fixture
def env(sandbox, tmp_path, helm_bin):
    return _env(sandbox, tmp_path, helm_bin)


def _env(sandbox, tmp_path, helm_bin):
    from kubernetes import config

    helm = Helm(HelmConfig(home=tmp_path / "helm", binary=helm_bin, kubeconfig=str(sandbox.kubeconfig_path),
                           base_env={"PATH": "/usr/bin:/bin"}))
    cluster = Cluster(config.new_client_from_config(config_file=str(sandbox.kubeconfig_path)))
    return helm, cluster, tmp_path


def package(helm: Helm, cluster: Cluster, tmp: Path, version: str = "1.0.0", **values) -> Path:
    return helm.package(certpilot_source(tmp / f"certpilot-{version}", version, **values), tmp / "pkg")


def deploy(helm, cluster, pkg, namespace, *, may_upgrade=True):
    release = stack_release(namespace)
    done = preflight.prepare(helm, cluster, pkg, release=release, namespace=namespace, values_files=[],
                             may_upgrade_crds=may_upgrade, log=lambda _: None)
    helm.upgrade_install(release, pkg, namespace=namespace, create_namespace=True, timeout="60s",
                         without_crds=True)
    return done


def test_two_stacks_share_the_cluster_and_removing_one_leaves_the_other(env):
    helm, cluster, tmp = env
    pkg = package(helm, cluster, tmp)
    first = deploy(helm, cluster, pkg, "iso-a", may_upgrade=False)
    second = deploy(helm, cluster, pkg, "iso-b", may_upgrade=False)

    assert first["crds"] == {ISSUERS: "install", CERTS: "install"}
    assert second["crds"] == {ISSUERS: "keep", CERTS: "keep"}
    assert f"ClusterRole iso-a-certpilot:controller" in first["cluster_scoped"]
    for name in (ISSUERS, CERTS):
        crd = cluster.get_crd(name)
        assert crd["metadata"]["labels"][LABEL_CRD_MANAGED] == "true"
        assert crd["metadata"]["annotations"][ANNOTATION_CRD_CHART] == "certpilot"
        assert crd["metadata"]["annotations"][ANNOTATION_CRD_CHART_VERSION] == "1.0.0"
        assert "meta.helm.sh/release-name" not in crd["metadata"]["annotations"]
    for release in ("iso-a", "iso-b"):  # a release never owns a CRD
        kinds = [d["kind"] for d in yaml.safe_load_all(helm._run(
            ["get", "manifest", release, "--namespace", release], kube=True, stdout_is_data=True).stdout) if d]
        assert "CustomResourceDefinition" not in kinds and "ClusterRole" in kinds

    helm.uninstall("iso-a", namespace="iso-a")

    role = lambda name: cluster._get(f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}")  # noqa: E731
    assert role(f"iso-b-certpilot:controller")["metadata"]["name"] == f"iso-b-certpilot:controller"
    with pytest.raises(LookupError):
        role(f"iso-a-certpilot:controller")
    assert cluster.get_crd(ISSUERS) and cluster.get_crd(CERTS)  # CRDs outlive every stack


def test_an_object_owned_by_another_stack_is_refused_naming_both(env):
    helm, cluster, tmp = env
    pkg = package(helm, cluster, tmp)
    # Release "col-x" deployed into namespace "col-other" (say by hand) owns col-x's ClusterRole.
    preflight.prepare(helm, cluster, pkg, release="col-x", namespace="col-other", values_files=[],
                      may_upgrade_crds=True, log=lambda _: None)
    helm.upgrade_install("col-x", pkg, namespace="col-other", create_namespace=True, timeout="60s",
                         without_crds=True)

    with pytest.raises(InputError) as refused:
        deploy(helm, cluster, pkg, "col-x")

    message = str(refused.value)
    assert f"ClusterRole col-x-certpilot:controller" in message
    assert "owned by release col-x of stack col-other" in message
    assert "release col-x of stack col-x" in message
    assert helm.list(namespace="col-x") == []  # nothing was installed


def test_a_crd_upgrade_goes_through_the_gate_and_a_downgrade_or_removed_version_is_refused(env):
    helm, cluster, tmp = env
    deploy(helm, cluster, package(helm, cluster, tmp, "1.0.0"), "crd-v1")
    newer = package(helm, cluster, tmp, "1.1.0", certificateVersions=["v1", "v2"])

    with pytest.raises(InputError, match="reaches the cluster only through the L3 gate"):
        deploy(helm, cluster, newer, "crd-personal", may_upgrade=False)
    assert cluster.get_crd(CERTS)["metadata"]["annotations"][ANNOTATION_CRD_CHART_VERSION] == "1.0.0"

    assert deploy(helm, cluster, newer, "crd-gate")["crds"][CERTS] == "upgrade"
    crd = cluster.get_crd(CERTS)
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1", "v2"]
    assert crd["metadata"]["annotations"][ANNOTATION_CRD_CHART_VERSION] == "1.1.0"

    with pytest.raises(InputError, match=r"older than certpilot 1\.1\.0 that installed it; CRD downgrades are refused"):
        deploy(helm, cluster, package(helm, cluster, tmp, "1.0.1"), "crd-old")
    with pytest.raises(InputError, match=r"drops version\(s\) v1"):
        deploy(helm, cluster, package(helm, cluster, tmp, "1.2.0", certificateVersions=["v2"]), "crd-drop")
    assert [v["name"] for v in cluster.get_crd(CERTS)["spec"]["versions"]] == ["v1", "v2"]


D = "sha256:" + "d" * 64
BUSYBOX = "docker.io/library/busybox:1.36"


@pytest.fixture
def own_env(tmp_path, helm_bin):
    """A sandbox of the test's own: the module's holds CRDs of newer certpilot versions."""
    from kube_sandbox import Sandbox

    with Sandbox(ready_delay=0.01) as sb:
        yield _env(sb, tmp_path, helm_bin)


def test_pin_images_runs_the_locked_digest_hooks_included_and_refuses_what_it_cannot_pin(own_env):
    """helm 4's post-renderer (stackyard-post-render) pins every container, the test hook
    included, and still drops CRDs; an image that cannot be pinned is refused by the preflight
    render before anything changes, and by the post-renderer itself with its reason."""
    from stackyard.core.images import ChartDigests, images_in

    helm, cluster, tmp = own_env
    pkg = package(helm, cluster, tmp)
    digests = ChartDigests("certpilot", {"certpilot": {BUSYBOX: D}})
    release = stack_release("pin-a")
    done = preflight.prepare(helm, cluster, pkg, release=release, namespace="pin-a", may_upgrade_crds=True,
                             log=lambda _: None, image_digests=digests)
    assert done["pinned_images"] == [f"docker.io/library/busybox@{D}"]
    helm.upgrade_install(release, pkg, namespace="pin-a", create_namespace=True, timeout="60s", without_crds=True,
                         image_digests=digests)
    docs = [d for d in yaml.safe_load_all(helm._run(["get", "manifest", release, "--namespace", "pin-a"], kube=True,
                                                    stdout_is_data=True).stdout) if d]
    assert "CustomResourceDefinition" not in [d["kind"] for d in docs]
    hooks = [yaml.safe_load(h["manifest"]) for h in helm.release_hooks(release, namespace="pin-a")]
    images = [i.reference for i in images_in([*docs, *hooks])]
    assert len(images) >= 2 and set(images) == {f"docker.io/library/busybox@{D}"}, images
    assert any(h.get("metadata", {}).get("annotations", {}).get("helm.sh/hook") == "test" for h in hooks)
    assert not any("postrender" in str(d.get("metadata", {}).get("annotations", {})) for d in docs)

    with pytest.raises(InputError, match=r"(?s)release pin-b in pin-b \(pin_images\): 2 image\(s\) cannot be run at a pinned "
                                         r"digest.*chart certpilot: .* image docker.io/library/busybox:1.36: has no "
                                         r"image lock"):
        preflight.prepare(helm, cluster, pkg, release="pin-b", namespace="pin-b", may_upgrade_crds=True,
                          log=lambda _: None, image_digests=ChartDigests("certpilot", {"certpilot": None}))
    with pytest.raises(InputError, match=r"(?s)helm post-render: .*container .*: image docker.io/library/busybox:1.36: "
                                         r"not in its image lock"):
        helm.upgrade_install("pin-b", pkg, namespace="pin-b", create_namespace=True, timeout="60s", without_crds=True,
                             image_digests=ChartDigests("certpilot", {"certpilot": {"other:1": D}}))
    assert [r.name for r in helm.list(namespace="pin-b")] == []
    assert not list((tmp / "helm").glob("image-digests-*"))  # the digests file lived for the command only
