"""The sandbox as a cluster would answer: every built-in kind, names, decoding, endpoints, events,
StatefulSet claims, and helm/kubectl's own messages for unknown kinds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kube_sandbox.api import drop_nulls, name_errors
from kube_sandbox.controllers import template_hash
from kube_sandbox.resources import Registry

CHARTS = Path(__file__).parent / "charts"


def _rt(plural, group=""):
    return next(t for t in Registry().types() if t.plural == plural and t.group == group)


@pytest.mark.parametrize("plural,group,name,ok", [
    ("clusterroles", "rbac.authorization.k8s.io", "cm-webhook:subjectaccessreviews", True),
    ("clusterroles", "rbac.authorization.k8s.io", "system:Auth Delegator", True),
    ("clusterroles", "rbac.authorization.k8s.io", "a/b", False),
    ("clusterroles", "rbac.authorization.k8s.io", "..", False),
    ("clusterroles", "rbac.authorization.k8s.io", "x\n", False),
    ("configmaps", "", "a.b-c", True), ("configmaps", "", "a:b", False), ("configmaps", "", "a..b", False),
    ("configmaps", "", "x" * 254, False), ("namespaces", "", "evil\n", False), ("namespaces", "", "a.b", False),
    ("namespaces", "", "ok-1", True), ("services", "", "1abc", False), ("services", "", "abc-1", True),
    ("pods", "", "Upper", False),
])
def test_name_rules_per_kind(plural, group, name, ok):
    assert (not name_errors(_rt(plural, group), name)) is ok


def test_nulls_dropped_and_template_hash_canonical():
    assert drop_nulls({"a": None, "b": {"c": None, "d": [1, {"e": None}]}}) == {"b": {"d": [1, {}]}}
    assert template_hash({"a": 1, "b": {"c": 2}}) == template_hash({"b": {"c": 2}, "a": 1})
    assert template_hash({"a": 1}) != template_hash({"a": 2})


def test_catalogue_serves_every_stable_builtin_kind(cli):
    kinds = {line.split()[-1] for line in cli.kubectl("api-resources", "--no-headers").stdout.splitlines()}
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "ValidatingAdmissionPolicy",
                 "PriorityClass", "EndpointSlice", "Event", "RuntimeClass", "CertificateSigningRequest",
                 "APIService", "CSIDriver", "VolumeAttachment", "PodDisruptionBudget", "FlowSchema", "Lease"):
        assert kind in kinds
    assert cli.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert json.loads(cli.kubectl("get", "--raw", "/openapi/v2").stdout)["swagger"] == "2.0"


def test_platform_chart_installs_upgrades_and_uninstalls(cli):
    chart = str(CHARTS / "platform")
    cli.helm("install", "p", chart, "-n", "infra", "--create-namespace", "--wait", "--timeout", "30s")
    names = cli.kubectl("get", "validatingwebhookconfigurations,mutatingwebhookconfigurations,priorityclasses,"
                        "clusterroles,clusterrolebindings,runtimeclasses", "-o", "name").stdout.split()
    assert "clusterrole.rbac.authorization.k8s.io/p-webhook:subjectaccessreviews" in names
    assert "validatingwebhookconfiguration.admissionregistration.k8s.io/p-webhook" in names
    assert "priorityclass.scheduling.k8s.io/p-critical" in names
    cli.helm("upgrade", "p", chart, "-n", "infra", "--wait")
    cli.helm("rollback", "p", "1", "-n", "infra", "--wait")
    cli.helm("uninstall", "p", "-n", "infra", "--wait")
    assert cli.kubectl("get", "priorityclasses", "-o", "name").stdout.strip() == ""


def test_unknown_kind_gives_helms_own_message(cli):
    proc = cli.helm("install", "q", str(CHARTS / "platform"), "--set", "unknownKind=true", check=False)
    assert proc.returncode != 0
    assert 'no matches for kind "Gadget" in version "example.com/v1"' in proc.stderr
    assert "ensure CRDs are installed first" in proc.stderr


def test_invalid_namespace_name_is_refused(cli):
    proc = cli.kubectl("create", "namespace", "evil\n", check=False)
    assert proc.returncode != 0 and "is invalid" in proc.stderr


def test_kubernetes_service_and_endpoints(cli):
    svc = json.loads(cli.kubectl("get", "svc", "kubernetes", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] == "10.96.0.1" and svc["spec"]["ports"][0]["port"] == 443
    ep = json.loads(cli.kubectl("get", "endpoints", "kubernetes", "-o", "json").stdout)
    assert ep["subsets"][0]["ports"][0]["port"] == int(cli.sb.url.rsplit(":", 1)[1])


def _json(cli, *args):
    return json.loads(cli.kubectl(*args, "-o", "json").stdout)


def _wait(fn, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_workloads_chart_endpoints_claims_events_and_noop_upgrade(cli):
    chart = str(CHARTS / "workloads")
    cli.helm("install", "w", chart, "--wait", "--timeout", "30s")
    rs_before = [r["metadata"]["name"] for r in _json(cli, "get", "rs")["items"]]
    dep = _json(cli, "get", "deploy", "w-web")
    assert "limits" not in dep["spec"]["template"]["spec"]["containers"][0]["resources"]  # null dropped
    cli.helm("upgrade", "w", chart, "--wait")
    assert [r["metadata"]["name"] for r in _json(cli, "get", "rs")["items"]] == rs_before  # no new rollout
    ep = _json(cli, "get", "endpoints", "w-web")
    assert len(ep["subsets"][0]["addresses"]) == 2 and ep["subsets"][0]["ports"][0]["port"] == 8080
    slices = _json(cli, "get", "endpointslices", "-l", "kubernetes.io/service-name=w-web")["items"]
    assert len(slices) == 1 and all(e["conditions"]["ready"] for e in slices[0]["endpoints"])
    pvcs = sorted(p["metadata"]["name"] for p in _json(cli, "get", "pvc")["items"])
    assert pvcs == ["data-w-db-0", "data-w-db-1"]
    pod = _json(cli, "get", "pod", "w-db-1")
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-w-db-1"}} in pod["spec"]["volumes"]
    reasons = {e["reason"] for e in _json(cli, "get", "events")["items"]}
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started", "ScalingReplicaSet", "SuccessfulCreate",
            "Completed"} <= reasons
    assert "Started container web" in cli.kubectl("describe", "pod", "-l", "app=w-web").stdout
    # scaled down: the ReplicaSet's status follows, and whenScaled: Delete removes the claim
    cli.kubectl("scale", "deploy/w-web", "--replicas=0")
    cli.kubectl("scale", "sts/w-db", "--replicas=1")
    _wait(lambda: _json(cli, "get", "rs", rs_before[0])["status"].get("replicas", 0) == 0)
    _wait(lambda: [p["metadata"]["name"] for p in _json(cli, "get", "pvc")["items"]] == ["data-w-db-0"])
    _wait(lambda: "subsets" not in _json(cli, "get", "endpoints", "w-web") or
          not _json(cli, "get", "endpoints", "w-web")["subsets"])
    cli.helm("uninstall", "w", "--wait")
    _wait(lambda: _json(cli, "get", "pvc")["items"] == [])  # whenDeleted: Delete


def test_events_k8s_io_and_kubectl_events(cli):
    cli.kubectl("run", "p", "--image=busybox", "--restart=Never", "--", "true")
    _wait(lambda: _json(cli, "get", "pod", "p")["status"]["phase"] == "Succeeded")
    out = cli.kubectl("events", "--for", "pod/p").stdout
    assert "Scheduled" in out and "Started" in out


def test_events_k8s_io_is_a_view_of_core_events(kube_client):
    from kubernetes import client
    ev = client.EventsV1Api(kube_client)
    core = client.CoreV1Api(kube_client)
    ev.create_namespaced_event("default", {"metadata": {"name": "e1"}, "eventTime": "2026-01-01T00:00:00.000000Z",
                                           "reason": "Tested", "note": "hello", "type": "Normal", "action": "Test",
                                           "reportingController": "me", "reportingInstance": "me-1",
                                           "regarding": {"kind": "Pod", "name": "x", "namespace": "default"}})
    got = core.read_namespaced_event("e1", "default")
    assert got.message == "hello" and got.involved_object.name == "x" and got.reporting_component == "me"
    assert ev.read_namespaced_event("e1", "default").note == "hello"
    ev.patch_namespaced_event("e1", "default", {"note": "changed"})
    assert core.read_namespaced_event("e1", "default").message == "changed"
    assert [e.metadata.name for e in ev.list_namespaced_event("default").items if e.metadata.name == "e1"] == ["e1"]


def test_second_identical_client_side_apply_is_unchanged(cli, tmp_path):
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a", "labels": {"x": "y"},
                "annotations": {"note": "n"}}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {
                    "metadata": {"labels": {"app": "a"}}, "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                                                   "containers": [{"name": "c", "image": "i"}]}}}}
    path = tmp_path / "d.json"
    path.write_text(json.dumps(manifest))
    assert "created" in cli.kubectl("apply", "-f", str(path)).stdout
    proc = cli.kubectl("apply", "-f", str(path))
    assert "unchanged" in proc.stdout and "unable to resolve" not in proc.stderr and "Warning" not in proc.stderr


def test_missing_secret_volume_gives_failed_mount_events(cli, tmp_path):
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "m"}, "spec": {"containers": [
        {"name": "c", "image": "i"}], "volumes": [{"name": "v", "secret": {"secretName": "later"}}]}}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(pod))
    cli.kubectl("apply", "-f", str(path))
    _wait(lambda: "FailedMount" in cli.kubectl("get", "events", "--field-selector", "involvedObject.name=m").stdout)
    assert _json(cli, "get", "pod", "m")["status"]["phase"] == "Pending"
    cli.kubectl("create", "secret", "generic", "later", "--from-literal=a=b")
    _wait(lambda: _json(cli, "get", "pod", "m")["status"]["phase"] == "Running")


D = "sha256:" + "d" * 64


@pytest.mark.parametrize("image, expected", [
    (f"registry.example.com:5000/shop/orders@{D}", f"registry.example.com:5000/shop/orders@{D}"),
    (f"nginx:1.25@{D}", f"docker.io/library/nginx@{D}"),
    (f"bitnami/redis@{D}", f"docker.io/bitnami/redis@{D}"),
    (f"index.docker.io/bitnami/redis@{D}", f"docker.io/bitnami/redis@{D}"),
    (f"localhost/app@{D}", f"localhost/app@{D}"),
])
def test_image_id_is_the_repository_at_the_digest_of_the_reference(image, expected):
    from kube_sandbox.controllers import image_id

    assert image_id(image) == expected


def test_image_id_of_a_tag_is_a_digest_fixed_by_the_reference():
    from kube_sandbox.controllers import image_id

    assert image_id("nginx:1.25").startswith("docker.io/library/nginx@sha256:")
    assert image_id("nginx:1.25") == image_id("nginx:1.25") != image_id("nginx:1.26")


def test_running_pods_report_the_image_id_of_what_runs(kube_client):
    import time

    from kubernetes import client
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", {"metadata": {"name": "pinned"}, "spec": {
        "initContainers": [{"name": "init", "image": f"busybox@{D}"}],
        "containers": [{"name": "c", "image": f"registry.example.com/shop/orders@{D}"}]}})
    deadline = time.monotonic() + 20
    while not (core.read_namespaced_pod("pinned", "default").status.container_statuses or []):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = core.read_namespaced_pod("pinned", "default").status
    assert [s.image_id for s in status.container_statuses] == [f"registry.example.com/shop/orders@{D}"]
    assert [s.image_id for s in status.init_container_statuses] == [f"docker.io/library/busybox@{D}"]


def test_a_tag_runs_the_digest_image_digest_says_a_runtime_would_pull():
    import time

    from kubernetes import client, config

    from kube_sandbox import Sandbox

    asked = []

    def pulled(reference):
        asked.append(reference)
        if reference == "broken:1":
            raise OSError("registry down")
        return D if reference == "registry.example.com/shop/orders:1.0.0" else None

    with Sandbox(ready_delay=0.05, image_digest=pulled) as sb:
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(sb.kubeconfig_path)))
        core.create_namespaced_pod("default", {"metadata": {"name": "tagged"}, "spec": {"containers": [
            {"name": "a", "image": "registry.example.com/shop/orders:1.0.0"}, {"name": "b", "image": "nginx:1.25"},
            {"name": "c", "image": "broken:1"}]}})
        deadline = time.monotonic() + 20
        while not (core.read_namespaced_pod("tagged", "default").status.container_statuses or []):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ids = {s.name: s.image_id for s in core.read_namespaced_pod("tagged", "default").status.container_statuses}
    from kube_sandbox.controllers import image_id

    assert ids == {"a": f"registry.example.com/shop/orders@{D}", "b": image_id("nginx:1.25"),
                   "c": image_id("broken:1")}  # no answer or a failing one: the made-up digest
    assert sorted(asked) == ["broken:1", "nginx:1.25", "registry.example.com/shop/orders:1.0.0"]
