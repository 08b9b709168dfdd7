"""The stack-isolation and CRD rules of core.cluster_objects, one test per rule."""

from __future__ import annotations

import pytest
import yaml

from stackyard.core.cluster_objects import (
    ANNOTATION_CRD_CHART, ANNOTATION_CRD_CHART_VERSION, MAX_RELEASE_NAME, Rendered, cluster_scoped, collisions,
    crd_plan, parse_render, split_crds, stack_release, without_crds,
)
from stackyard.exceptions import InputError

RENDER = """---
# Source: l3/charts/certpilot/crds/issuers.yaml
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: issuers.example.com}
spec: {group: example.com, scope: Cluster, names: {kind: Issuer, plural: issuers}, versions: [{name: v1}]}
---
# Source: l3/charts/certpilot/templates/rbac.yaml
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "s-certpilot:controller"}
---
# Source: l3/charts/certpilot/templates/sa.yaml
apiVersion: v1
kind: ServiceAccount
metadata: {name: s-certpilot}
---
# Source: l3/charts/certpilot/templates/issuer.yaml
apiVersion: example.com/v1
kind: Issuer
metadata: {name: root}
---
# Source: l3/templates/list.yaml
apiVersion: v1
kind: List
items:
  - {apiVersion: scheduling.k8s.io/v1, kind: PriorityClass, metadata: {name: s-high}, value: 10}
"""
SCOPES = {("rbac.authorization.k8s.io", "ClusterRole"): False, ("", "ServiceAccount"): True,
          ("scheduling.k8s.io", "PriorityClass"): False}


def scopes(group, kind):
    return SCOPES.get((group, kind))


def test_the_release_is_the_namespace_when_it_fits_helms_limit():
    assert stack_release("l3-0b6502da") == "l3-0b6502da"
    assert stack_release("a" * MAX_RELEASE_NAME) == "a" * MAX_RELEASE_NAME


def test_longer_namespaces_get_distinct_release_names_within_the_limit():
    a, b = stack_release("x" * 60 + "abc"), stack_release("x" * 60 + "abd")
    assert a != b and len(a) <= MAX_RELEASE_NAME and len(b) <= MAX_RELEASE_NAME
    assert a == stack_release("x" * 60 + "abc")  # stable: teardown finds it again


def test_render_objects_know_their_chart_and_lists_are_expanded():
    objects = parse_render(RENDER)
    assert [str(o) for o in objects] == ["CustomResourceDefinition issuers.example.com",
                                         "ClusterRole s-certpilot:controller", "ServiceAccount s-certpilot",
                                         "Issuer root", "PriorityClass s-high"]
    assert objects[0].chart == "certpilot" and objects[-1].chart == "l3"


def test_invalid_yaml_names_its_source():
    with pytest.raises(InputError, match="l3/templates/bad.yaml"):
        parse_render("# Source: l3/templates/bad.yaml\nkind: [x\n")


def test_scope_comes_from_discovery_then_from_the_renders_own_crds():
    crds, objects = split_crds(parse_render(RENDER))
    assert [str(o) for o in cluster_scoped(objects, scopes, crds)] == [
        "ClusterRole s-certpilot:controller", "Issuer root", "PriorityClass s-high"]
    assert [str(o) for o in cluster_scoped(objects, scopes)] == [  # a kind nobody serves: left to helm
        "ClusterRole s-certpilot:controller", "PriorityClass s-high"]


def test_without_crds_drops_only_crd_documents_and_keeps_the_others_byte_for_byte():
    out = without_crds(RENDER)
    assert "CustomResourceDefinition" not in out
    assert 'metadata: {name: "s-certpilot:controller"}' in out and "items:\n  - {apiVersion: scheduling" in out
    assert [d["kind"] for d in yaml.safe_load_all(out) if d] == ["ClusterRole", "ServiceAccount", "Issuer", "List"]


def _role(annotations=None):
    return {"metadata": {"name": "r", "annotations": annotations or {}}}


@pytest.mark.parametrize("live, expected", [
    (None, []),
    (_role({"meta.helm.sh/release-name": "s", "meta.helm.sh/release-namespace": "s"}), []),
    (_role({"meta.helm.sh/release-name": "l3", "meta.helm.sh/release-namespace": "l3-5241766b"}),
     ["owned by release l3 of stack l3-5241766b; release s of stack s wants the same object"]),
    (_role(), ["belongs to no helm release; release s of stack s would take it over"]),
], ids=["absent", "this release's own", "another stack's", "nobody's"])
def test_collisions(live, expected):
    [role] = [o for o in parse_render(RENDER) if o.kind == "ClusterRole"]
    found = collisions([role], lambda _: live, release="s", namespace="s")
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found))


def _crd(versions=("v1",), name="issuers.example.com"):
    return Rendered({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                     "metadata": {"name": name}, "spec": {"versions": [{"name": v} for v in versions]}},
                    "l3/charts/certpilot/templates/crd.yaml")


def _live(version, chart="certpilot", stored=("v1",), name="issuers.example.com"):
    annotations = {ANNOTATION_CRD_CHART: chart, ANNOTATION_CRD_CHART_VERSION: version} if chart else {}
    return {"metadata": {"name": name, "annotations": annotations}, "status": {"storedVersions": list(stored)}}


def _plan(live, version, *, may_upgrade=True, crds=None, by_chart=None):
    return crd_plan(crds or [_crd()], lambda _: live, {"certpilot": version}, may_upgrade=may_upgrade,
                    who="stack s", live_by_chart=by_chart)


@pytest.mark.parametrize("live, version, may_upgrade, action", [
    (None, "1.0.0", False, "install"),
    (_live("1.0.0"), "1.0.0", False, "keep"),
    (_live("1.0.0"), "1.1.0", True, "upgrade"),
    (_live("", chart=None), "1.0.0", True, "upgrade"),
    (_live("", chart=None), "1.0.0", False, "keep"),
], ids=["absent: installed by anyone", "same chart version: kept", "newer in the gate: upgraded",
        "outside stackyard, in the gate: taken over", "outside stackyard, personal: left alone"])
def test_crd_actions(live, version, may_upgrade, action):
    [planned] = _plan(live, version, may_upgrade=may_upgrade)
    assert planned.action == action


@pytest.mark.parametrize("live, version, may_upgrade, crds, message", [
    (_live("1.1.0"), "1.0.0", True, None, "older than certpilot 1.1.0 that installed it; CRD downgrades are refused"),
    (_live("1.0.0"), "1.1.0", False, None, "reaches the cluster only through the L3 gate"),
    (_live("1.0.0", stored=("v1", "v1alpha1")), "1.1.0", True, None, "drops version(s) v1alpha1 that the cluster stores"),
    (_live("1.0.0", chart="other"), "1.0.0", True, None, "but other 1.0.0 installed it; one CRD has one chart"),
], ids=["downgrade", "upgrade outside the gate", "stored version dropped", "two charts, one CRD"])
def test_crd_changes_refused(live, version, may_upgrade, crds, message):
    with pytest.raises(InputError, match="CRD issuers.example.com: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        _plan(live, version, may_upgrade=may_upgrade, crds=crds)


def test_a_crd_its_chart_no_longer_brings_is_refused_never_removed():
    gone = _live("1.0.0", name="old.example.com")
    with pytest.raises(InputError, match="CRD old.example.com: stack s deploys certpilot 1.1.0 which no longer brings it"):
        _plan(None, "1.1.0", by_chart={"certpilot": [gone]})


def test_applied_crds_name_their_chart_drop_helm_ownership_and_ask_helm_to_keep_them():
    crd = _crd()
    crd.body["metadata"]["annotations"] = {"meta.helm.sh/release-name": "l3", "meta.helm.sh/release-namespace": "x"}
    [planned] = _plan(None, "1.0.0", crds=[crd])
    annotations = planned.body()["metadata"]["annotations"]
    assert annotations == {ANNOTATION_CRD_CHART: "certpilot", ANNOTATION_CRD_CHART_VERSION: "1.0.0",
                           "helm.sh/resource-policy": "keep"}
    assert planned.body()["metadata"]["labels"] == {"stackyard.io/crd": "true"}
