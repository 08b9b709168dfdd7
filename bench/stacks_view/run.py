#!/usr/bin/env python3
"""Stacks view load time at 300 services x 40 stacks of generated data, with health and drift.

Generated: an L3 history of 300 services and 300 promotions in a local manifest store (plus 50
rejections with gate reports), 40 stacks on a generated cluster (5 persistent/production with
one service release each per service, 35 ephemeral running L3 umbrellas), and 50 rollout records
per persistent stack in a local record store. Every service on every stack runs a Deployment, its
ReplicaSet, a pod and a Service (12,000 of each; every 50th pod crash-looping), and the persistent
stacks' 300 releases each have a release Secret whose manifest the stack page compares with the
live objects (every 30th Deployment changed by hand).

The cluster is a generated API (its answers are JSON bytes, as an API server's): the real
cluster reader (``kube_cluster_reader``, one list per kind, behind the UI's read cache) and the
real namespace reader parse them, so parsing, health and drift are measured; the API server's
own time is not. Everything else is the real code path: the plugin's app (behind Airflow's auth)
answering ``/api/overview`` + ``/api/history`` (what the page fetches on load), then
``/api/stacks/<persistent stack>`` (health, drift, tree of 300 services) and ``/metrics``.

Goal: a warm page load (both requests) under 1 s, and one cluster API call per resource kind per
cluster read. Reported as a ratio to a baseline measured in the same run: serialising the
same-size matrix to JSON (the least any server must do to ship it).
"""

from __future__ import annotations

import base64
import gzip
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins"))

from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose  # noqa: E402
from stackyard.core.records import GateReport, RejectionReport, RolloutRecord  # noqa: E402
from stackyard.steps.fleet import CachedClusterReader, Fleet, kube_cluster_reader, kube_namespace_reader  # noqa: E402
from stackyard.adapters.manifest_store import open_manifest_store  # noqa: E402
from stackyard.adapters.record_store import open_record_store  # noqa: E402

SERVICES, STACKS, PERSISTENT = 300, 40, 5
GOAL_SECONDS = 1.0
RUNS = 5


class FakeApi:
    """The cluster's API as JSON bytes; counts every request by path."""

    def __init__(self, namespaces, objects: dict[str, list[dict]], secrets: dict[str, list[dict]]):
        self.namespaces, self.calls = namespaces, Counter()
        self.lists = {path: json.dumps({"kind": f"{kind}List", "items": items}).encode() for path, kind, items in (
            ("/api/v1/pods", "Pod", objects["Pod"]), ("/apis/apps/v1/deployments", "Deployment", objects["Deployment"]),
            ("/apis/apps/v1/replicasets", "ReplicaSet", objects["ReplicaSet"]), ("/api/v1/services", "Service", objects["Service"]),
            ("/apis/apps/v1/statefulsets", "StatefulSet", []), ("/apis/apps/v1/daemonsets", "DaemonSet", []),
            ("/apis/networking.k8s.io/v1/ingresses", "Ingress", []), ("/api/v1/events", "Event", []))}
        for ns, items in secrets.items():
            self.lists[f"/api/v1/namespaces/{ns}/secrets"] = json.dumps({"kind": "SecretList", "items": items}).encode()
            for kind, plural, group in (("Deployment", "deployments", "/apis/apps/v1"), ("Service", "services", "/api/v1"),
                                        ("ConfigMap", "configmaps", "/api/v1")):
                mine = [o for o in objects.get(kind, []) if o["metadata"]["namespace"] == ns]
                self.lists[f"{group}/namespaces/{ns}/{plural}"] = json.dumps({"kind": f"{kind}List", "items": mine}).encode()
        self.api_client = self

    def list_namespace(self, **_):
        self.calls["namespaces"] += 1
        return SimpleNamespace(items=self.namespaces)

    def call_api(self, path, method, **_):
        self.calls[path] += 1
        return SimpleNamespace(data=self.lists[path])


def manifest_for(service: str, version: str) -> str:
    return (f"---\n# Source: {service}/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n"
            f"metadata: {{name: {service}}}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n"
            f"      - {{name: {service}, image: 'registry.example.com/{service}:{version}'}}\n"
            f"---\n# Source: {service}/templates/service.yaml\napiVersion: v1\nkind: Service\n"
            f"metadata: {{name: {service}}}\nspec:\n  ports: [{{port: 80}}]\n"
            f"---\n# Source: {service}/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\n"
            f"metadata: {{name: {service}}}\ndata: {{LOG_LEVEL: info}}\n")


def release_secret(name: str, namespace: str, version: str) -> dict:
    release = {"name": name, "namespace": namespace, "version": 1, "manifest": manifest_for(name, version),
               "info": {"status": "deployed", "last_deployed": "2026-01-01T00:00:00Z", "description": "Install complete"},
               "chart": {"metadata": {"name": name, "version": version}}, "config": {}}
    encoded = base64.b64encode(base64.b64encode(gzip.compress(json.dumps(release).encode()))).decode()
    return {"type": "helm.sh/release.v1", "metadata": {"name": f"sh.helm.release.v1.{name}.v1", "namespace": namespace, "resourceVersion": "1",
                                                        "labels": {"owner": "helm", "name": name}},
            "data": {"release": encoded}}


def live_objects(stack: str, service: str, chart: str, index: int, version: str, drifted: bool) -> dict[str, dict]:
    labels = {"app.kubernetes.io/name": service, "app.kubernetes.io/instance": chart, "helm.sh/chart": f"{service}-{version}"}
    image = f"registry.example.com/{service}:{'hotfix' if drifted else version}"
    crash = index % 50 == 0
    meta = {"namespace": stack, "labels": labels}
    return {
        "Deployment": {"metadata": {**meta, "name": service, "generation": 1},
                       "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": service, "image": image}]}}},
                       "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 0 if crash else 1,
                                  "availableReplicas": 0 if crash else 1}},
        "ReplicaSet": {"metadata": {**meta, "name": f"{service}-abc",
                                    "ownerReferences": [{"kind": "Deployment", "name": service, "controller": True}]}},
        "Pod": {"metadata": {"namespace": stack, "name": f"{service}-abc-1", "labels": {"app.kubernetes.io/name": service},
                             "ownerReferences": [{"kind": "ReplicaSet", "name": f"{service}-abc", "controller": True}]},
                "spec": {"restartPolicy": "Always"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False" if crash else "True"}],
                           "containerStatuses": [{"name": service, "restartCount": 7 if crash else 0, "state":
                                                  {"waiting": {"reason": "CrashLoopBackOff"}} if crash else {"running": {}}}]}},
        "Service": {"metadata": {**meta, "name": service}, "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}},
        "ConfigMap": {"metadata": {**meta, "name": service}, "data": {"LOG_LEVEL": "info"}},
    }


def generate(root: Path):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    store = open_manifest_store(f"file://{root / 'manifests'}")
    names = [f"svc-{i:03d}" for i in range(SERVICES)]
    current = store.seed(Manifest.initial({n: ServicePin("1.0.0") for n in names}, start, Provenance(None, "bench", None)))
    for i, name in enumerate(names):
        candidate = propose(current, name, "1.1.0", None, start + timedelta(minutes=i), Provenance(f"run-{i}", "bench", None))
        current = store.promote(candidate)
        store.record_report(current.version, GateReport(
            outcome="promoted", change=candidate.change.to_dict(), before={"version": candidate.parent},
            after={"version": current.version}, candidate_id=candidate.candidate_id, duration_seconds=90.0,
            run_id=f"run-{i}"))
    for i in range(50):
        rejected = propose(current, names[i], "2.0.0", None, start, Provenance(f"rej-{i}", "bench", None))
        store.record_rejection(rejected, "system tests failed: t", RejectionReport(failed_tests=["t"]))
    records = open_record_store(f"file://{root / 'records'}")
    namespaces, releases = [], []
    objects: dict[str, list[dict]] = {"Deployment": [], "ReplicaSet": [], "Pod": [], "Service": [], "ConfigMap": []}
    secrets: dict[str, list[dict]] = {}
    managed = {"app.kubernetes.io/managed-by": "stackyard"}
    for s in range(STACKS):
        name = f"stack-{s:02d}"
        if s < PERSISTENT:
            kind = "production" if s == 0 else "persistent"
            namespaces.append(_namespace(name, {**managed, "stackyard.io/stack-type": kind}, {}))
            releases += [SimpleNamespace(name=n, namespace=name, status="deployed", chart=f"{n}-1.0.0", revision=1) for n in names]
            secrets[name] = [release_secret(n, name, "1.0.0") for n in names]
            for r in range(50):
                records.write(RolloutRecord(
                    stack=name, type=kind, dag_id=f"rollout_{name}", namespace=name, profile=kind, service=names[r],
                    from_version="1.0.0", to_version="1.1.0", action="upgrade", manifest_version=current.version,
                    run_id=f"r{r}", status="rolled_back" if r % 7 == 0 else "succeeded", started=start, finished=start))
        else:
            version = 1 + (s * 7) % current.version
            namespaces.append(_namespace(name, {**managed, "stackyard.io/stack-type": "ephemeral",
                                                "stackyard.io/manifest-version": str(version)},
                                         {"stackyard.io/ttl": "7d", "stackyard.io/last-activity": "2026-01-02T00:00:00Z"}))
            releases.append(SimpleNamespace(name="l3", namespace=name, status="deployed", chart=f"l3-{version}.0.0", revision=1))
        for i, service in enumerate(names):
            chart = service if s < PERSISTENT else "l3"
            for kind, obj in live_objects(name, service, chart, i, "1.0.0", drifted=i % 30 == 0).items():
                objects[kind].append(obj)
    return store, records, FakeApi(namespaces, objects, secrets), releases


def _namespace(name, labels, annotations):
    return SimpleNamespace(metadata=SimpleNamespace(name=name, labels=labels, annotations=annotations),
                           status=SimpleNamespace(phase="Active"))


def main() -> int:
    from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory(prefix="bench-stacks-") as tmp:
        t0 = time.perf_counter()
        store, records, api, releases = generate(Path(tmp))
        print(f"generated {SERVICES} services x {STACKS} stacks ({len(api.lists['/api/v1/pods']) / 1e6:.1f} MB of pods JSON) "
              f"in {time.perf_counter() - t0:.1f}s")

        @contextmanager
        def helm():
            yield SimpleNamespace(list=lambda: releases)

        reader = CachedClusterReader(kube_cluster_reader(lambda: api, helm), ttl=3600)
        fleet = Fleet(manifest_store=store, record_store=records, cluster=reader, stacks_file=None,
                      namespace_reader=kube_namespace_reader(lambda: api))

        # The plugin's own app, behind Airflow's auth (a viewer's JWT), over the generated sources.
        from airflow.api_fastapi.app import init_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        from stackyard.ui.app import create_app

        token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
        client = TestClient(create_app(lambda: fleet, gate_queue=lambda: 0, metrics_token=lambda: None),
                            headers={"Authorization": f"Bearer {token}"})

        def load() -> tuple[float, int]:
            start = time.perf_counter()
            a, b = client.get("/api/overview"), client.get("/api/history")
            assert a.status_code == b.status_code == 200
            return time.perf_counter() - start, len(a.content) + len(b.content)

        def timed(path: str) -> tuple[float, Any]:
            start = time.perf_counter()
            answer = client.get(path)
            assert answer.status_code == 200, answer.text[:300]
            return time.perf_counter() - start, answer

        cold, size = load()
        cluster_calls = dict(api.calls)
        warm = [load()[0] for _ in range(RUNS)]
        assert dict(api.calls) == cluster_calls, "a warm load read the cluster again"
        overview = client.get("/api/overview").json()
        matrix = overview["matrix"]
        assert len(matrix["rows"]) == SERVICES and len(matrix["columns"]) == STACKS + 1, (len(matrix["rows"]), len(matrix["columns"]))
        healths = Counter(cell.get("health") for row in matrix["rows"] for cell in row["cells"][1:])
        assert healths["degraded"] == STACKS * SERVICES // 50 and healths["healthy"] == STACKS * SERVICES - healths["degraded"], healths
        before = Counter(api.calls)
        stack_times = [timed("/api/stacks/stack-01") for _ in range(RUNS)]
        page = stack_times[-1][1].json()
        stack_calls = {path: n // RUNS for path, n in (Counter(api.calls) - before).items()}
        drifted = sum(1 for s in page["services"] if s["drift"] == "drifted")
        assert drifted == SERVICES // 30 and all(s["drift"] in ("synced", "drifted") for s in page["services"]), drifted
        metrics_cold, _ = timed("/metrics")
        metrics_warm = statistics.median(timed("/metrics")[0] for _ in range(RUNS))
        base = []
        for _ in range(RUNS):
            start = time.perf_counter()
            json.dumps(matrix)
            base.append(time.perf_counter() - start)
    median, baseline = statistics.median(warm), statistics.median(base)
    stack_median = statistics.median(t for t, _ in stack_times)
    per_kind = {path: n for path, n in cluster_calls.items()}
    print(f"page load (overview + history, health included): cold {cold * 1000:.0f} ms, warm median {median * 1000:.0f} ms "
          f"({size / 1e6:.1f} MB of JSON)")
    print(f"cluster API calls per cluster read: {sum(per_kind.values())} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(per_kind.items()))}); warm loads: 0 (cached read)")
    print(f"stack page (300 services, health + drift of 300 releases): warm median {stack_median * 1000:.0f} ms, "
          f"{sum(stack_calls.values())} API calls per load ({', '.join(f'{k} {v}' for k, v in sorted(stack_calls.items()))}); "
          f"{drifted} services drifted")
    print(f"/metrics: first scrape (drift of every stack) {metrics_cold * 1000:.0f} ms, warm median {metrics_warm * 1000:.0f} ms")
    print(f"baseline (json.dumps of the matrix): {baseline * 1000:.1f} ms; ratio {median / baseline:.1f}x")
    one_per_kind = all(n == 1 for n in per_kind.values())
    ok = median < GOAL_SECONDS and one_per_kind
    print(f"goal: warm load < {GOAL_SECONDS:.0f} s and one API call per kind per read: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
