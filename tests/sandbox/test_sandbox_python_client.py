"""The kubernetes Python client (what the cncf-kubernetes provider uses) against the sandbox."""

from __future__ import annotations

import threading
import time

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


def _ns(core, name, **labels):
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels or None)))


@pytest.mark.parametrize("selector,expected", [
    ("env=prod", {"a"}), ("env==prod", {"a"}), ("env!=prod", {"b", "c"}), ("env in (prod, qa)", {"a", "b"}),
    ("env notin (prod)", {"b", "c"}), ("env", {"a", "b"}), ("!env", {"c"}), ("env,team=x", {"a"}),
])
def test_list_namespaces_with_label_selectors(kube_client, selector, expected):
    core = client.CoreV1Api(kube_client)
    _ns(core, "a", env="prod", team="x", scope="t")
    _ns(core, "b", env="qa", scope="t")
    _ns(core, "c", scope="t")
    got = {n.metadata.name for n in core.list_namespace(label_selector=f"scope=t,{selector}").items}
    assert got == expected


def test_field_selectors_and_pagination(kube_client):
    core = client.CoreV1Api(kube_client)
    for i in range(5):
        core.create_namespaced_config_map("default", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"cm{i}"), data={"i": str(i)}))
    page = core.list_namespaced_config_map("default", limit=2)
    assert [c.metadata.name for c in page.items] == ["cm0", "cm1"] and page.metadata._continue
    rest = core.list_namespaced_config_map("default", limit=10, _continue=page.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cm2", "cm3", "cm4"]
    one = core.list_config_map_for_all_namespaces(field_selector="metadata.name=cm3,metadata.namespace=default")
    assert [c.data["i"] for c in one.items] == ["3"]


def test_optimistic_concurrency_and_generation(kube_client):
    apps = client.AppsV1Api(kube_client)
    dep = client.V1Deployment(metadata=client.V1ObjectMeta(name="web"), spec=client.V1DeploymentSpec(
        selector=client.V1LabelSelector(match_labels={"app": "web"}),
        template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "web"}), spec=client.V1PodSpec(
            containers=[client.V1Container(name="web", image="nginx")]))))
    created = apps.create_namespaced_deployment("default", dep)
    assert created.metadata.uid and created.metadata.generation == 1 and created.metadata.creation_timestamp
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 2}})
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    now = apps.read_namespaced_deployment("web", "default")
    assert now.spec.replicas == 2 and now.metadata.generation == 2  # metadata changes do not bump it
    core = client.CoreV1Api(kube_client)  # no controller touches ConfigMaps: deterministic versions
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
    fresh = core.read_namespaced_config_map("c", "default")
    stale = core.read_namespaced_config_map("c", "default")
    fresh.data = {"a": "1"}
    core.replace_namespaced_config_map("c", "default", fresh)
    stale.data = {"a": "2"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("c", "default", stale)
    assert exc.value.status == 409
    assert core.read_namespaced_config_map("c", "default").data == {"a": "1"}
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", dep)
    assert exc.value.status == 409 and "already exists" in exc.value.body


def test_patch_kinds(kube_client):
    apps = client.AppsV1Api(kube_client)
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [{"name": "web", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                            "ports": [{"containerPort": 80}]}]}}}}
    apps.create_namespaced_deployment("default", body)
    # strategic merge: env and containers merge by name
    apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "busybox"}]}}}})
    c = apps.read_namespaced_deployment("web", "default").spec.template.spec.containers
    assert [x.name for x in c] == ["web", "sidecar"]
    assert [(e.name, e.value) for e in c[0].env] == [("A", "1"), ("B", "2")]
    assert c[0].image == "nginx" and c[0].ports[0].container_port == 80
    # JSON patch (the client sends a list body as application/json-patch+json)
    apps.patch_namespaced_deployment("web", "default", [
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/labels", "value": {"j": "p"}}])
    d = apps.read_namespaced_deployment("web", "default")
    assert d.spec.replicas == 5 and d.metadata.labels == {"j": "p"}
    # JSON merge patch: null deletes
    apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"j": None, "m": "1"}}},
                                     _content_type="application/merge-patch+json")
    assert apps.read_namespaced_deployment("web", "default").metadata.labels == {"m": "1"}


def test_watch_sees_changes_and_resumes_from_resource_version(kube_client):
    core = client.CoreV1Api(kube_client)
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []

    def watch_it():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=start_rv,
                           label_selector="w=1", timeout_seconds=10):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=watch_it)
    t.start()
    time.sleep(0.3)
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name="x", labels={"w": "1"})))
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="ignored")))
    core.patch_namespaced_config_map("x", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("x", "default")
    t.join(15)
    assert seen == [("ADDED", "x"), ("MODIFIED", "x"), ("DELETED", "x")]
    # resuming from the first resourceVersion replays the same history
    replay = [ev["type"] for ev in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=start_rv, label_selector="w=1",
        timeout_seconds=1)]
    assert replay == ["ADDED", "MODIFIED", "DELETED"]


def test_namespace_deletion_terminates_then_honours_finalizers(kube_client):
    core = client.CoreV1Api(kube_client)
    _ns(core, "doomed")
    core.create_namespaced_config_map("doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name="held", finalizers=["example.io/hold"])))
    core.create_namespaced_secret("doomed", client.V1Secret(metadata=client.V1ObjectMeta(name="s"),
                                                            string_data={"a": "b"}))
    core.delete_namespace("doomed")
    assert core.read_namespace("doomed").status.phase == "Terminating"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="new")))
    assert exc.value.status == 403
    time.sleep(0.5)
    assert core.read_namespaced_config_map("held", "doomed").metadata.deletion_timestamp
    assert core.list_namespaced_secret("doomed").items == []
    core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    deadline = time.time() + 5
    while time.time() < deadline:
        if "doomed" not in {n.metadata.name for n in core.list_namespace().items}:
            break
        time.sleep(0.1)
    else:
        pytest.fail("namespace not removed after its finalizer was cleared")


def test_controllers_simulate_outcomes(kube_client):
    core, batch = client.CoreV1Api(kube_client), client.BatchV1Api(kube_client)
    core.create_namespaced_persistent_volume_claim("default", {"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    svc = core.create_namespaced_service("default", {"metadata": {"name": "s"}, "spec": {
        "type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"a": "b"}}})
    assert svc.spec.cluster_ip.startswith("10.96.")
    for name, ann in [("ok", {}), ("bad", {"sandbox.stackyard.io/outcome": "fail"})]:
        batch.create_namespaced_job("default", {"metadata": {"name": name, "annotations": ann}, "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}})
    deadline = time.time() + 10  # the failing job is retried backoffLimit (6) times first
    while time.time() < deadline:
        # (status is empty until the job controller has seen the job)
        conds = {n: {c.type for c in getattr(batch.read_namespaced_job(n, "default").status, "conditions", None) or ()}
                 for n in ("ok", "bad")}
        if "Complete" in conds["ok"] and "Failed" in conds["bad"]:
            break
        time.sleep(0.2)
    assert core.read_namespaced_persistent_volume_claim("data", "default").status.phase == "Bound"
    assert core.read_namespaced_service("s", "default").status.load_balancer.ingress[0].ip
    assert "Complete" in conds["ok"] and "Failed" in conds["bad"]
    assert batch.read_namespaced_job("bad", "default").status.failed == 7


def test_pod_runs_to_completion_with_deterministic_logs(kube_client):
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo hello; echo bye"]}]}})
    w = watch.Watch()
    phases = []
    for ev in w.stream(core.list_namespaced_pod, "default", field_selector="metadata.name=p", timeout_seconds=10):
        phases.append(ev["object"].status.phase)
        if ev["object"].status.phase in ("Succeeded", "Failed"):
            w.stop()
    assert phases[0] == "Pending" and phases[-1] == "Succeeded" and "Running" in phases
    # (kubernetes 36.0.3 returns str(bytes) for logs; read the raw body instead)
    logs = core.read_namespaced_pod_log("p", "default", _preload_content=False).data.decode()
    assert "hello\nbye\n" in logs and "exit code 0" in logs
    assert logs == core.read_namespaced_pod_log("p", "default", _preload_content=False).data.decode()


def test_workload_pods_are_simulated_and_garbage_collected(kube_client):
    apps, core = client.AppsV1Api(kube_client), client.CoreV1Api(kube_client)
    tmpl = {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres"}]}}
    apps.create_namespaced_stateful_set("default", {"metadata": {"name": "db"}, "spec": {
        "replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": tmpl}})
    deadline = time.time() + 5
    while time.time() < deadline:
        pods = core.list_namespaced_pod("default", label_selector="app=db").items
        if len(pods) == 2 and all(p.status.phase == "Running" for p in pods):
            break
        time.sleep(0.1)
    assert sorted(p.metadata.name for p in pods) == ["db-0", "db-1"]
    assert all(p.status.container_statuses[0].ready for p in pods)
    apps.delete_namespaced_stateful_set("db", "default")
    assert core.list_namespaced_pod("default", label_selector="app=db").items == []


def test_watch_reports_objects_leaving_and_entering_its_selector(kube_client):
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "m", "labels": {"sel": "yes"}}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("m", "default", {"metadata": {"labels": {"sel": "no"}}})
    core.patch_namespaced_config_map("m", "default", {"metadata": {"labels": {"sel": "yes"}}})
    events = [ev["type"] for ev in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=rv, label_selector="sel=yes",
        timeout_seconds=1)]
    assert events == ["DELETED", "ADDED"]


def test_deletecollection_with_label_selector(kube_client):
    core = client.CoreV1Api(kube_client)
    for name, team in [("a", "x"), ("b", "x"), ("c", "y")]:
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map("default", label_selector="team in (x)")
    left = [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="team").items]
    assert left == ["c"]


def _raw_watch(sandbox, query: str, lines: int) -> list[dict]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{sandbox.url}/api/v1/namespaces/default/configmaps?watch=true&{query}",
                                timeout=10) as resp:
        return [json.loads(resp.readline()) for _ in range(lines)]


def test_watch_list_initial_events_end_with_bookmark(sandbox, kube_client):
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_config_map("default", {"metadata": {"name": "one"}})
    events = _raw_watch(sandbox, "sendInitialEvents=true&allowWatchBookmarks=true&"
                                 "resourceVersionMatch=NotOlderThan&timeoutSeconds=2", 2)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_from_a_compacted_resource_version_is_expired(sandbox, kube_client):
    sandbox.store.compacted_rv = sandbox.store.rv  # as if the event log had been trimmed
    (event,) = _raw_watch(sandbox, "resourceVersion=1&timeoutSeconds=1", 1)
    assert event["type"] == "ERROR" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"
