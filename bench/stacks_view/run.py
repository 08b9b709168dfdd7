#!/usr/bin/env python3
"""Stacks view load time at 300 services x 40 stacks of generated data.

Generated: an L3 history of 300 services and 300 promotions in a local manifest store (plus 50
rejections with gate reports), 40 stacks on a generated cluster (5 persistent/production with
one service release each per service, 35 ephemeral running L3 umbrellas), and 50 rollout records
per persistent stack in a local record store. The cluster read is generated (its cost is helm's
and the API server's, not the view's); everything else is the real code path: the plugin's
app (behind Airflow's auth) answering ``/api/overview`` + ``/api/history`` (what the page fetches on load).

Goal: a warm page load (both requests) under 1 s. Reported as a ratio to a baseline measured in
the same run: serialising the same-size matrix to JSON (the least any server must do to ship it).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins"))

from stackyard.core.fleet import ClusterState, NamespaceRow, ReleaseRow  # noqa: E402
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose  # noqa: E402
from stackyard.core.records import GateReport, RejectionReport, RolloutRecord  # noqa: E402
from stackyard.steps.fleet import Fleet  # noqa: E402
from stackyard.adapters.manifest_store import open_manifest_store  # noqa: E402
from stackyard.adapters.record_store import open_record_store  # noqa: E402

SERVICES, STACKS, PERSISTENT = 300, 40, 5
GOAL_SECONDS = 1.0
RUNS = 5


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
    managed = {"app.kubernetes.io/managed-by": "stackyard"}
    for s in range(STACKS):
        name = f"stack-{s:02d}"
        if s < PERSISTENT:
            kind = "production" if s == 0 else "persistent"
            namespaces.append(NamespaceRow(name, {**managed, "stackyard.io/stack-type": kind}, {}))
            releases += [ReleaseRow(n, name, "deployed", f"{n}-1.0.0") for n in names]
            for r in range(50):
                records.write(RolloutRecord(
                    stack=name, type=kind, dag_id=f"rollout_{name}", namespace=name, profile=kind, service=names[r],
                    from_version="1.0.0", to_version="1.1.0", action="upgrade", manifest_version=current.version,
                    run_id=f"r{r}", status="rolled_back" if r % 7 == 0 else "succeeded", started=start, finished=start))
        else:
            version = 1 + (s * 7) % current.version
            namespaces.append(NamespaceRow(name, {**managed, "stackyard.io/stack-type": "ephemeral",
                                                  "stackyard.io/manifest-version": str(version)},
                                           {"stackyard.io/ttl": "7d", "stackyard.io/last-activity": "2026-01-02T00:00:00Z"}))
            releases.append(ReleaseRow("l3", name, "deployed", f"l3-{version}.0.0"))
    cluster = ClusterState(tuple(namespaces), tuple(releases), datetime.now(timezone.utc))
    return store, records, cluster


def main() -> int:
    from fastapi.testclient import TestClient

    with tempfile.TemporaryDirectory(prefix="bench-stacks-") as tmp:
        t0 = time.perf_counter()
        store, records, cluster = generate(Path(tmp))
        print(f"generated {SERVICES} services x {STACKS} stacks in {time.perf_counter() - t0:.1f}s")
        fleet = Fleet(manifest_store=store, record_store=records, cluster=lambda: cluster, stacks_file=None)

        # The plugin's own app, behind Airflow's auth (a viewer's JWT), over the generated sources.
        from airflow.api_fastapi.app import init_auth_manager
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

        from stackyard.ui.app import create_app

        token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
        client = TestClient(create_app(lambda: fleet), headers={"Authorization": f"Bearer {token}"})

        def load() -> tuple[float, int]:
            start = time.perf_counter()
            a, b = client.get("/api/overview"), client.get("/api/history")
            assert a.status_code == b.status_code == 200
            return time.perf_counter() - start, len(a.content) + len(b.content)

        cold, size = load()
        warm = [load()[0] for _ in range(RUNS)]
        matrix = fleet.matrix()
        assert len(matrix["rows"]) == SERVICES and len(matrix["columns"]) == STACKS + 1, (len(matrix["rows"]), len(matrix["columns"]))
        base = []
        for _ in range(RUNS):
            start = time.perf_counter()
            json.dumps(matrix)
            base.append(time.perf_counter() - start)
    median, baseline = statistics.median(warm), statistics.median(base)
    print(f"page load (overview + history): cold {cold * 1000:.0f} ms, warm median {median * 1000:.0f} ms "
          f"({size / 1e6:.1f} MB of JSON)")
    print(f"baseline (json.dumps of the matrix): {baseline * 1000:.1f} ms; ratio {median / baseline:.1f}x")
    ok = median < GOAL_SECONDS
    print(f"goal: warm load < {GOAL_SECONDS:.0f} s: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
