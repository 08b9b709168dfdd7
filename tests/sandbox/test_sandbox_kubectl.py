"""kubectl 1.35 (real binary, default flags) against the sandbox."""

from __future__ import annotations

import json

import pytest

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team-a
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        env:
        - {name: A, value: "1"}
        ports:
        - containerPort: 80
"""


def _get(cli, *args) -> dict:
    return json.loads(cli.kubectl("get", *args, "-o", "json").stdout)


def test_namespaces_create_label_annotate_get_delete(cli):
    cli.kubectl("create", "namespace", "team-a")
    cli.kubectl("label", "namespace", "team-a", "stackyard.io/stack=s1", "tier=dev")
    cli.kubectl("annotate", "namespace", "team-a", "owner=alice")
    ns = _get(cli, "namespace", "team-a")
    assert ns["metadata"]["labels"]["stackyard.io/stack"] == "s1"
    assert ns["metadata"]["annotations"]["owner"] == "alice"
    assert ns["status"]["phase"] == "Active"
    out = cli.kubectl("get", "ns", "-l", "tier in (dev,qa),stackyard.io/stack").stdout
    assert "team-a" in out and "STATUS" in out and "Active" in out
    cli.kubectl("label", "namespace", "team-a", "tier-")
    assert "tier" not in _get(cli, "namespace", "team-a")["metadata"]["labels"]
    cli.kubectl("delete", "namespace", "team-a")
    assert "team-a" not in cli.kubectl("get", "ns").stdout


def test_deployment_apply_reapply_label_scale_delete(cli, tmp_path):
    cli.kubectl("create", "namespace", "team-a")
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(DEPLOY)
    assert "deployment.apps/web created" in cli.kubectl("apply", "-f", str(manifest)).stdout
    assert "unchanged" in cli.kubectl("apply", "-f", str(manifest)).stdout
    manifest.write_text(DEPLOY.replace('value: "1"', 'value: "2"').replace("replicas: 2", "replicas: 3"))
    assert "configured" in cli.kubectl("apply", "-f", str(manifest)).stdout
    dep = _get(cli, "deploy", "web", "-n", "team-a")
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]
    assert dep["metadata"]["generation"] == 2
    cli.kubectl("rollout", "status", "deployment/web", "-n", "team-a", "--timeout=30s")
    cli.kubectl("label", "deploy", "web", "-n", "team-a", "release=blue")
    cli.kubectl("annotate", "deploy", "web", "-n", "team-a", "note=hello")
    assert "web" in cli.kubectl("get", "deploy", "-n", "team-a", "-l", "release=blue").stdout
    assert "No resources found" in cli.kubectl("get", "deploy", "-n", "team-a", "-l", "release!=blue").stderr
    cli.kubectl("scale", "deploy", "web", "-n", "team-a", "--replicas=1")
    assert _get(cli, "deploy", "web", "-n", "team-a")["spec"]["replicas"] == 1
    cli.kubectl("delete", "deploy", "web", "-n", "team-a")
    assert _get(cli, "deploy", "-n", "team-a")["items"] == []


def test_server_side_apply_conflict_then_force(cli, tmp_path):
    cli.kubectl("create", "namespace", "team-a")
    manifest = tmp_path / "deploy.yaml"
    manifest.write_text(DEPLOY)
    cli.kubectl("apply", "--server-side", "--field-manager=pipeline", "-f", str(manifest))
    cli.kubectl("scale", "deploy", "web", "-n", "team-a", "--replicas=5")
    proc = cli.kubectl("apply", "--server-side", "--field-manager=pipeline", "-f", str(manifest), check=False)
    assert proc.returncode != 0 and "conflict" in proc.stderr and ".spec.replicas" in proc.stderr
    cli.kubectl("apply", "--server-side", "--field-manager=pipeline", "--force-conflicts", "-f", str(manifest))
    assert _get(cli, "deploy", "web", "-n", "team-a")["spec"]["replicas"] == 2


def test_explain_uses_openapi_v3(cli):
    out = cli.kubectl("explain", "deployment.spec.replicas").stdout
    assert "replicas" in out and "integer" in out


def test_crd_and_custom_objects(cli, tmp_path):
    crd = tmp_path / "crd.yaml"
    crd.write_text("""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.io}
spec:
  group: example.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
---
apiVersion: example.io/v1
kind: Widget
metadata: {name: w1, namespace: default, labels: {color: red}}
spec: {size: 3}
""")
    proc = cli.kubectl("apply", "-f", str(crd), check=False)
    if proc.returncode != 0:  # the CR can race the CRD's establishment on a real cluster too
        cli.kubectl("apply", "-f", str(crd))
    assert _get(cli, "wd", "w1")["spec"]["size"] == 3
    assert "w1" in cli.kubectl("get", "widgets", "-l", "color=red").stdout
    cli.kubectl("delete", "crd", "widgets.example.io")
    proc = cli.kubectl("get", "widgets", check=False)
    assert proc.returncode != 0


@pytest.mark.parametrize("selector,expected", [
    ("env=prod", ["a"]), ("env==prod", ["a"]), ("env!=prod", ["b", "c", "default", "kube-node-lease",
                                                                 "kube-public", "kube-system"]),
    ("env in (prod,qa)", ["a", "b"]), ("env notin (prod),env", ["b"]), ("env", ["a", "b"]),
    ("!env,team", ["c"]),
])
def test_label_selector_operators_via_kubectl(cli, selector, expected):
    for name, labels in [("a", ["env=prod", "team=x"]), ("b", ["env=qa"]), ("c", ["team=y"])]:
        cli.kubectl("create", "namespace", name)
        cli.kubectl("label", "namespace", name, *labels)
    names = cli.kubectl("get", "ns", "-l", selector, "-o", "name").stdout.split()
    assert names == [f"namespace/{n}" for n in expected]
