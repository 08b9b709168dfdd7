"""stackyard.core.drift and core.releases: one named case per comparison rule."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from stackyard.core.drift import DriftState, drift_state, field_diffs, object_diffs, release_drift
from stackyard.core.releases import decode_release, manifest_objects, release_records, subchart_of


@pytest.mark.parametrize("name, desired, live, expected", [
    ("equal", {"a": 1}, {"a": 1}, []),
    ("a changed scalar is named by path", {"spec": {"replicas": 2}}, {"spec": {"replicas": 3}}, ["spec.replicas"]),
    ("fields the manifest does not set are not compared", {"a": 1}, {"a": 1, "b": 2}, []),
    ("a field the manifest sets but live lacks", {"a": 1, "b": 2}, {"a": 1}, ["b"]),
    ("int-or-string ports are equal", {"port": "80"}, {"port": 80}, []),
    ("quantities are equal in any notation", {"cpu": "0.5", "mem": "1Gi"}, {"cpu": "500m", "mem": "1073741824"}, []),
    ("an empty map equals an absent one", {"a": {}, "b": []}, {}, []),
    ("nulls are not set", {"a": None}, {}, []),
    ("named list items are matched by name", {"c": [{"name": "x", "image": "1"}, {"name": "y", "image": "2"}]},
     {"c": [{"name": "y", "image": "2"}, {"name": "x", "image": "9"}]}, ["c[x].image"]),
    ("a named item gone", {"c": [{"name": "x"}]}, {"c": [{"name": "z"}]}, ["c[x]"]),
    ("other lists by position and length", {"args": ["a", "b"]}, {"args": ["a"]}, ["args"]),
])
def test_field_comparison_rules(name, desired, live, expected):
    assert field_diffs(desired, live) == expected, name


def secret(**data):
    return {"kind": "Secret", "metadata": {"name": "s"}, "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_secret_contents_are_compared_decoded_and_never_shown():
    desired = {"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"token": "abc"}}
    assert object_diffs(desired, secret(token="abc")) == []
    diffs = object_diffs(desired, secret(token="hunter22"))
    assert diffs == ["data (contents differ; not shown)"] and "hunter22" not in json.dumps(diffs)


def test_a_release_reports_missing_and_changed_objects_skips_hooks_and_names_kinds_not_compared():
    manifest = """---
# Source: l3/charts/orders/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders}
spec: {replicas: 2}
---
# Source: l3/charts/orders/templates/service.yaml
apiVersion: v1
kind: Service
metadata: {name: orders}
spec: {type: ClusterIP}
---
# Source: l3/charts/orders/templates/test.yaml
apiVersion: v1
kind: Pod
metadata: {name: t, annotations: {helm.sh/hook: test}}
---
# Source: l3/charts/orders/templates/crd.yaml
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
"""
    rendered = manifest_objects(manifest)
    assert [subchart_of(r.source) for r in rendered] == ["orders"] * 4
    live = {("Deployment", "ns", "orders"): {"metadata": {"name": "orders"}, "spec": {"replicas": 5}}}
    entries = release_drift(rendered, live, "ns", {"Deployment", "Service", "Pod"})
    assert entries == [{"object": "Deployment/orders", "fields": ["spec.replicas"]},
                       {"object": "Service/orders", "missing": True}, {"not_compared": ["Widget"]}]
    assert drift_state(entries) is DriftState.DRIFTED
    assert drift_state([{"not_compared": ["Widget"]}]) is DriftState.SYNCED and drift_state(None) is DriftState.UNKNOWN


def release_secret(release: dict) -> dict:
    inner = base64.b64encode(gzip.compress(json.dumps(release).encode()))
    return {"type": "helm.sh/release.v1", "metadata": {"name": "sh.helm.release.v1.orders.v2"},
            "data": {"release": base64.b64encode(inner).decode()}}


def test_release_records_decode_helm_storage_and_drop_the_values():
    release = {"name": "orders", "namespace": "qa1", "version": 2, "manifest": "kind: X",
               "info": {"status": "deployed", "description": "Upgrade complete", "last_deployed": "2026-03-04T10:00:00Z"},
               "chart": {"metadata": {"name": "orders", "version": "1.1.0", "appVersion": "1.1.0"}},
               "config": {"secrets": {"API_TOKEN": "never-shown"}}}
    records, broken = release_records([release_secret(release), {"type": "Opaque"},
                                       {"type": "helm.sh/release.v1", "metadata": {"name": "bad"}, "data": {"release": "!!"}}])
    assert len(broken) == 1 and "bad" in broken[0]
    assert records[0].summary() == {"release": "orders", "revision": 2, "status": "deployed", "chart": "orders-1.1.0",
                                    "app_version": "1.1.0", "description": "Upgrade complete", "updated": "2026-03-04T10:00:00Z"}
    assert "never-shown" not in repr(records[0]) and "never-shown" not in json.dumps(records[0].summary())
    assert decode_release(release_secret(release)).manifest == "kind: X"
