"""Reading the Stacks view's sources; the UI plugin and ``stackyard stacks`` both go through here.

:class:`Fleet` reads the manifest store, the record store, ``include/stacks.yaml`` and the
cluster (through a :class:`ClusterReader` the caller supplies: Airflow connections in the UI,
``KUBECONFIG`` in the CLI) and assembles the views with :mod:`stackyard.core.fleet`.

Every response carries ``sources``: for each source whether it was read, when, and the error if
not. A source that fails is reported as unreachable and its data is left out: nothing stale is
shown as if it were fresh. No Airflow import here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from stackyard.core import fleet as views
from stackyard.core.fleet import ClusterState, Rejection, StackSpec
from stackyard.core.gauges import GateState
from stackyard.core.records import (
    REAPER_RUNS, GateReport, ReaperReport, RejectionReport, RolloutRecord, StackEvent, Stored, events_stream,
    rollouts_stream,
)
from stackyard.core.manifest import Manifest
from stackyard.core.releases import ReleaseRecord, manifest_objects, release_records
from stackyard.core.releases import current as current_releases
from stackyard.core.rollout import describe_window
from stackyard.core.stack_registry import dag_id_for, load_registry
from stackyard.core.ephemeral import LABEL_MANAGED_BY, MANAGED_BY, timestamp
from stackyard.core.times import utc_now
from stackyard.adapters.gate_queue_store import GateQueueStore
from stackyard.adapters.manifest_store import ManifestStore
from stackyard.steps import gate_queue

log = logging.getLogger(__name__)

STACK_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
#: How many records per stack the views read: the matrix's "failed last rollout" looks at these.
RECORDS_PER_STACK = 50
HISTORY_LIMIT = 30


class DagStateReader(Protocol):
    def __call__(self, dag_ids: list[str]) -> dict[str, bool]:
        """Whether each of these DAGs is paused (DAGs Airflow does not know are left out)."""


@dataclass
class NamespaceRead:
    """One stack's release records (every revision) and its live objects by (kind, namespace,
    name), for the stack page's drift and helm revisions."""

    releases: list[ReleaseRecord]
    live: dict[tuple[str, str, str], dict[str, Any]]
    api_calls: dict[str, int]
    broken: list[str] = field(default_factory=list)


class ClusterReader(Protocol):
    def __call__(self) -> ClusterState:
        """The stackyard namespaces and the helm releases in them; raises if unreachable."""


@dataclass
class SourceStatus:
    ok: bool
    read_at: str | None = None
    error: str | None = None
    detail: str | None = None
    api_calls: dict[str, int] | None = None  # the cluster: requests per kind of the read shown
    partial: dict[str, str] | None = None  # the cluster: kinds that could not be listed, and why

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _describe(exc: BaseException) -> str:
    # One line, bounded: error text from a client library can be long (and is never a secret we hold).
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


class _ManifestCache:
    """Manifests are immutable once written, so each version is read once per process."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, int], Manifest] = {}
        self._lock = threading.Lock()

    def history(self, store: ManifestStore) -> list[Manifest]:
        where = repr(store)
        out = []
        for version in store.versions():
            key = (where, version)
            manifest = self._items.get(key)
            if manifest is None:
                manifest = store.get(version)
                with self._lock:
                    self._items[key] = manifest
            out.append(manifest)
        return out


MANIFESTS = _ManifestCache()
_REPORTS: dict[tuple[str, int], GateReport] = {}


class CachedClusterReader:
    """A cluster reader whose successful reads are reused for ``ttl`` seconds (their ``read_at``
    says how old they are); a failed read is never papered over with an older one."""

    def __init__(self, reader: ClusterReader, ttl: float = 15.0) -> None:
        self._reader, self._ttl = reader, ttl
        self._cached: tuple[float, ClusterState] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> ClusterState:
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self._ttl:
                return self._cached[1]
            try:
                state = self._reader()
            except Exception:
                self._cached = None
                raise
            self._cached = (time.monotonic(), state)
            return state


@dataclass
class Snapshot:
    """Everything read for one response; ``None`` data means the source was unreachable."""

    now: datetime
    sources: dict[str, SourceStatus] = field(default_factory=dict)
    history: list[Manifest] | None = None
    cluster: ClusterState | None = None
    specs: list[StackSpec] = field(default_factory=list)
    rollouts: dict[str, list[Stored[RolloutRecord]]] = field(default_factory=dict)
    events: dict[str, list[Stored[StackEvent]]] = field(default_factory=dict)
    reaper_runs: list[Stored[ReaperReport]] = field(default_factory=list)
    candidates: list[Manifest] = field(default_factory=list)
    paused: dict[str, bool] | None = None  # per stack: its rollout DAG is paused (None: not read)

    def sources_dict(self) -> dict[str, Any]:
        return {name: status.to_dict() for name, status in self.sources.items()}


class Fleet:
    """The views over one set of sources. ``record_store`` and ``cluster`` may be None (not
    configured); they then show as unreachable with that reason."""

    def __init__(self, *, manifest_store: ManifestStore, record_store: Any | None,
                 cluster: ClusterReader | None, stacks_file: Path | None,
                 clock: Callable[[], datetime] = utc_now, dag_states: DagStateReader | None = None,
                 namespace_reader: Callable[[str], NamespaceRead] | None = None,
                 gate_window: int | None = None) -> None:
        self.manifest_store = manifest_store
        self.gate_window = gate_window  # the gate queue's window (None: the queue is not shown)
        self.dag_states = dag_states
        self.namespace_reader = namespace_reader
        self._lock = threading.Lock()
        self._health_memo: tuple[Any, ClusterState, Any] | None = None
        self.record_store = record_store
        self.cluster = cluster
        self.stacks_file = stacks_file
        self.clock = clock

    # --- reading ---------------------------------------------------------------------------------

    def _read(self, snapshot: Snapshot, name: str, read: Callable[[], Any], detail: str | None = None) -> Any:
        try:
            value = read()
        except Exception as exc:  # a source being down must not take the page down
            log.warning("stacks view: %s unreachable: %s", name, _describe(exc))
            snapshot.sources[name] = SourceStatus(False, error=_describe(exc), detail=detail)
            return None
        status = SourceStatus(True, read_at=timestamp(snapshot.now), detail=detail)
        if isinstance(value, ClusterState):
            status.read_at = timestamp(value.read_at)
            status.api_calls = dict(value.api_calls) or None
            status.partial = dict(value.errors) or None
        snapshot.sources[name] = status
        return value

    def snapshot(self, *, cluster: bool = True, records: bool = True, candidates: bool = False,
                 dags: bool = False) -> Snapshot:
        snap = Snapshot(now=self.clock())
        snap.history = self._read(snap, "manifest_store", lambda: MANIFESTS.history(self.manifest_store),
                                  repr(self.manifest_store))
        specs = self._read(snap, "stacks_file", self._load_specs, str(self.stacks_file) if self.stacks_file else None)
        snap.specs = specs or []
        if cluster:
            if self.cluster is None:
                snap.sources["cluster"] = SourceStatus(False, error="no cluster connection configured")
            else:
                snap.cluster = self._read(snap, "cluster", self.cluster)
        manifests = {m.version: m for m in snap.history or ()}
        if candidates and snap.history is not None and views.needs_candidates(snap.cluster, manifests):
            snap.candidates = self._read(snap, "rejections", lambda: [
                r.candidate for r in self.manifest_store.rejections(limit=HISTORY_LIMIT) if r.candidate]) or []
        if records:
            if self.record_store is None:
                snap.sources["records"] = SourceStatus(False, error="no record store configured")
            else:
                self._read(snap, "records", lambda: self._load_records(snap), repr(self.record_store))
        if dags and self.dag_states is not None:
            snap.paused = self._read(snap, "airflow", lambda: self._paused(snap), "rollout DAGs paused or not")
        return snap

    def _paused(self, snap: Snapshot) -> dict[str, bool]:
        """Per persistent/production stack, whether its rollout DAG is paused (one query)."""
        stacks = {spec.name for spec in snap.specs} | set(snap.rollouts)
        by_dag = {dag_id_for(name): name for name in stacks}
        states = self.dag_states(sorted(by_dag)) if by_dag else {}
        return {by_dag[dag_id]: paused for dag_id, paused in states.items() if dag_id in by_dag}

    def _load_specs(self) -> list[StackSpec]:
        if self.stacks_file is None or not self.stacks_file.exists():
            return []
        registry = load_registry(self.stacks_file.read_text(), str(self.stacks_file))
        for problem in registry.errors.values():
            log.warning("%s: %s (skipped)", self.stacks_file, problem)
        return [StackSpec(name=s.name, type=s.kind.value, owner=s.owner, profile=s.profile, cadence=s.schedule,
                          window=_describe_windows(s.windows), namespace=s.namespace, windows=s.windows, declared=True,
                          pin_images=s.pin_images)
                for s in registry.stacks.values()]

    def _stack_names(self, snap: Snapshot) -> set[str]:
        names = {spec.name for spec in snap.specs}
        names.update(ns.name for ns in (snap.cluster.namespaces if snap.cluster else ()))
        for stream in self.record_store.streams("stacks/"):
            parts = stream.split("/")
            if len(parts) == 3:
                names.add(parts[1])
        return names

    def _load_records(self, snap: Snapshot) -> bool:
        store = self.record_store
        stacks = set(store.streams("stacks/"))
        for name in sorted(self._stack_names(snap)):
            rollouts, events = rollouts_stream(name), events_stream(name)
            if rollouts in stacks:
                snap.rollouts[name] = store.read(rollouts, RolloutRecord, RECORDS_PER_STACK, on_invalid=_skipped)
            if events in stacks:
                snap.events[name] = store.read(events, StackEvent, RECORDS_PER_STACK, on_invalid=_skipped)
        if REAPER_RUNS in set(store.streams("reaper/")):
            snap.reaper_runs = store.read(REAPER_RUNS, ReaperReport, 1, on_invalid=_skipped)
        return True

    # --- views -----------------------------------------------------------------------------------

    def matrix(self) -> dict[str, Any]:
        snap = self.snapshot(candidates=True)
        return {"sources": snap.sources_dict(), **self._matrix(snap)}

    def _matrix(self, snap: Snapshot) -> dict[str, Any]:
        return views.fleet_matrix(history=snap.history or [], cluster=snap.cluster, rollouts=snap.rollouts,
                                  events=snap.events, specs=snap.specs, candidates=snap.candidates,
                                  health=self._health(snap))

    def _health(self, snap: Snapshot) -> dict[str, Any] | None:
        """Health per stack and service, computed once per cluster read (the reader caches a read
        for some seconds: every page load in between reuses it)."""
        if snap.cluster is None or snap.cluster.objects is None:
            return None
        key = (id(snap.cluster), tuple(m.version for m in snap.history or ()),
               tuple(sorted(c.candidate_id for c in snap.candidates)), tuple(sorted(snap.rollouts)))
        with self._lock:
            if self._health_memo is not None and self._health_memo[0] == key and self._health_memo[1] is snap.cluster:
                return self._health_memo[2]
        health = views.fleet_health(history=snap.history or [], cluster=snap.cluster, rollouts=snap.rollouts,
                                    specs=snap.specs, candidates=snap.candidates, events=snap.events)
        with self._lock:
            self._health_memo = (key, snap.cluster, health)
        return health

    def history(self, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
        snap = self.snapshot(cluster=False, records=False)
        entries: list[dict[str, Any]] = []
        if snap.history is not None:
            newest = sorted(snap.history, key=lambda m: m.version, reverse=True)[:limit]
            reports = self._read(snap, "gate_reports", lambda: self._gate_reports(newest)) or {}
            rejections = self._read(snap, "rejections", lambda: self._rejections(limit)) or []
            entries = views.l3_history(newest, reports, rejections)[:limit]
        queue = None
        if self.gate_window is not None:
            queue = self._read(snap, "gate_queue", lambda: gate_queue.queue_view(
                GateQueueStore(self.manifest_store.backend), self.manifest_store, window=self.gate_window))
        return {"sources": snap.sources_dict(), "entries": entries, "queue": queue}

    def _gate_reports(self, manifests: list[Manifest]) -> dict[int, GateReport]:
        out = {}
        where = repr(self.manifest_store)
        for manifest in manifests:
            if manifest.version == 1:
                continue
            # A promoted version's gate report is written once, after promotion: keep it once found.
            cached = _REPORTS.get((where, manifest.version))
            if cached is None:
                records = self.manifest_store.reports(manifest.version, limit=1)
                if not records:
                    continue
                cached = _REPORTS.setdefault((where, manifest.version), records[0].report)
            out[manifest.version] = cached
        return out

    def _rejections(self, limit: int) -> list[Rejection]:
        out = []
        for record in self.manifest_store.rejections(limit=limit):
            if record.candidate is None:
                continue
            failed = record.report.failed_tests if isinstance(record.report, RejectionReport) else []
            summary = self.manifest_store.reports(record.candidate.candidate_id, limit=1)
            duration = summary[0].report.duration_seconds if summary and isinstance(summary[0].report, GateReport) else None
            out.append(Rejection(record.candidate, record.reason or "", record.recorded, tuple(failed), duration))
        return out

    def ephemeral(self) -> dict[str, Any]:
        snap = self.snapshot()
        return {"sources": snap.sources_dict(),
                **views.ephemeral_view(snap.cluster, snap.events, snap.reaper_runs, snap.now)}

    def persistent(self) -> dict[str, Any]:
        snap = self.snapshot(dags=True)
        return {"sources": snap.sources_dict(),
                "stacks": views.persistent_view(snap.specs, snap.cluster, snap.rollouts, snap.now, snap.paused)}

    def overview(self) -> dict[str, Any]:
        """Everything the page shows, from one read of each source."""
        snap = self.snapshot(candidates=True, dags=True)
        return {
            "sources": snap.sources_dict(),
            "now": timestamp(snap.now),
            "matrix": self._matrix(snap),
            "ephemeral": views.ephemeral_view(snap.cluster, snap.events, snap.reaper_runs, snap.now),
            "persistent": views.persistent_view(snap.specs, snap.cluster, snap.rollouts, snap.now, snap.paused),
        }

    def stack(self, name: str) -> dict[str, Any] | None:
        """One stack's page: versions, health, drift, resource tree, events, helm revisions, runs."""
        snap = self.snapshot(candidates=True, dags=True)
        status = views.stack_status(name, self._matrix(snap), snap.rollouts.get(name, ()), snap.events.get(name, ()))
        if status is None:
            return None
        ephemeral = next((s for s in views.ephemeral_view(snap.cluster, snap.events, snap.reaper_runs, snap.now)["stacks"]
                          if s["name"] == name), None)
        persistent = next((s for s in views.persistent_view(snap.specs, snap.cluster, snap.rollouts, snap.now, snap.paused)
                           if s["name"] == name), None)
        found = views.stack_deployed(name, history=snap.history or [], cluster=snap.cluster, rollouts=snap.rollouts,
                                     specs=snap.specs, candidates=snap.candidates, events=snap.events)
        namespace, deployed = found if found else (name, {})
        releases, live = None, None
        if snap.cluster is not None and self.namespace_reader is not None:
            read = self._read(snap, "release_records", lambda: self.namespace_reader(namespace), namespace)
            if read is not None:
                releases, live = read.releases, read.live
                status_of = snap.sources["release_records"]
                status_of.api_calls = dict(read.api_calls)
                status_of.partial = {f"undecodable {i}": text for i, text in enumerate(read.broken)} or None
        cluster = snap.cluster
        detail = views.stack_detail(
            status, namespace=namespace, objects=cluster.objects.get(namespace, ()) if cluster and cluster.objects is not None else None,
            warnings=cluster.warnings.get(namespace, ()) if cluster else (), deployed=deployed,
            releases=releases, live=live, compared_kinds=set(NAMESPACED_KINDS),
            pinned=views.pinned_images(deployed, [*(snap.history or []), *(snap.candidates or [])]))
        return {"sources": snap.sources_dict(), **detail, "namespace": namespace, "details": ephemeral or persistent}

    def drift(self, snap: Snapshot) -> dict[str, dict[str, str]]:
        """Per stack and deployed service: ``synced``/``drifted``/``unknown``; one namespace read per
        stack (release Secrets + the kinds they render). For ``/metrics``, which caches it."""
        out: dict[str, dict[str, str]] = {}
        if snap.cluster is None or self.namespace_reader is None:
            return out
        columns = [c for c in views.fleet_matrix(history=snap.history or [], cluster=snap.cluster, rollouts=snap.rollouts,
                                                 specs=snap.specs, candidates=snap.candidates, events=snap.events,
                                                 health={})["columns"][1:]]
        for column in columns:
            found = views.stack_deployed(column["name"], history=snap.history or [], cluster=snap.cluster,
                                         rollouts=snap.rollouts, specs=snap.specs, candidates=snap.candidates,
                                         events=snap.events)
            if not found or not found[1]:
                continue
            namespace, deployed = found
            try:
                read = self.namespace_reader(namespace)
            except Exception as exc:  # one stack unreadable: its drift is unknown, the others still count
                log.warning("stacks view: drift of %s unknown: %s", column["name"], _describe(exc))
                out[column["name"]] = {service: views.DriftState.UNKNOWN.value for service in deployed}
                continue
            out[column["name"]] = views.service_drift(deployed, namespace=namespace, releases=read.releases,
                                                      live=read.live, compared_kinds=set(NAMESPACED_KINDS))
        return out

    def gate_state(self, queued: Callable[[], int] | None = None) -> GateState:
        """The gate's queue (``queued``: runs queued or running, from Airflow) and its last outcome
        (the newest L3 history entry: promoted or rejected)."""
        entries = self.history(limit=1)["entries"]
        last = next((e for e in entries if e["kind"] in ("promoted", "rejected")), None)
        count = None
        if queued is not None:
            try:
                count = queued()
            except Exception as exc:
                log.warning("stacks view: gate queue unknown: %s", _describe(exc))
        return GateState(count, last["kind"] if last else None, views.parse_time(last.get("at")) if last else None)


def _describe_windows(windows: Any) -> str | None:
    if windows is None:
        return None
    allowed = "; ".join(describe_window(w) for w in windows.allow) or "any time"
    freezes = f", {len(windows.freeze)} freeze(s)" if windows.freeze else ""
    return f"{allowed} {windows.timezone}{freezes}"


def _skipped(key: str, error: Exception) -> None:
    log.warning("stacks view: record %s left out: %s", key, error)


# --- cluster readers ------------------------------------------------------------------------------


#: What the fleet read lists, one request per kind for the whole cluster (workloads in stackyard's
#: namespaces carry no label of stackyard's, so they are listed cluster-wide and filtered by
#: namespace here). A kind that cannot be listed (RBAC, an old cluster) is reported, not fatal.
LISTED_KINDS = {
    "Pod": "/api/v1/pods",
    "Deployment": "/apis/apps/v1/deployments",
    "StatefulSet": "/apis/apps/v1/statefulsets",
    "DaemonSet": "/apis/apps/v1/daemonsets",
    "ReplicaSet": "/apis/apps/v1/replicasets",
    "Service": "/api/v1/services",
    "Ingress": "/apis/networking.k8s.io/v1/ingresses",
}
EVENTS_PATH = "/api/v1/events"
#: Kinds without which no health is claimed (the rest only enrich the resource tree).
HEALTH_KINDS = frozenset({"Pod", "Deployment", "StatefulSet", "DaemonSet"})
WARNINGS_PER_NAMESPACE = 50


def list_raw(api_client: Any, path: str, *, timeout: float, field_selector: str | None = None) -> list[dict[str, Any]]:
    """One list request, its items as plain JSON dicts (no client model objects: ~10x cheaper for
    thousands of pods)."""
    import json

    query = [("fieldSelector", field_selector)] if field_selector else []
    response = api_client.call_api(path, "GET", query_params=query, header_params={"Accept": "application/json"},
                                   auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout)
    data = response[0] if isinstance(response, tuple) else response
    document = json.loads(data.data)
    kind = (document.get("kind") or "").removesuffix("List")
    items = document.get("items") or []
    for item in items:  # list items carry no kind of their own
        item.setdefault("kind", kind)
    return items


def kube_cluster_reader(core_v1: Callable[[], Any], helm: Callable[[], Any], *, timeout: float = 10.0,
                        objects: bool = True) -> ClusterReader:
    """A reader from a CoreV1Api factory and a context manager factory giving a :class:`Helm`.

    With ``objects``, it also lists every kind of :data:`LISTED_KINDS` and the warning Events,
    once each for the whole cluster, keeping those in stackyard's namespaces."""
    from stackyard.core.fleet import NamespaceRow, ReleaseRow

    def read() -> ClusterState:
        api = core_v1()
        calls: dict[str, int] = {"Namespace": 1}
        namespaces = api.list_namespace(label_selector=STACK_SELECTOR, _request_timeout=timeout).items
        rows = tuple(
            NamespaceRow(ns.metadata.name, dict(ns.metadata.labels or {}), dict(ns.metadata.annotations or {}),
                         ns.status.phase if ns.status else None)
            for ns in namespaces
        )
        names = {row.name for row in rows}
        with helm() as client:
            calls["helm list"] = 1
            releases = tuple(
                ReleaseRow(r.name, r.namespace, r.status, r.chart, r.revision)
                for r in client.list() if r.namespace in names
            )
        if not objects:
            return ClusterState(rows, releases, utc_now(), api_calls=calls)
        found: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        warnings: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        errors: dict[str, str] = {}
        for kind, path in LISTED_KINDS.items():
            calls[kind] = 1
            try:
                items = list_raw(api.api_client, path, timeout=timeout)
            except Exception as exc:  # one kind refused must not hide the others
                errors[kind] = _describe(exc)
                continue
            for item in items:
                where = (item.get("metadata") or {}).get("namespace")
                if where in found:
                    found[where].append(item)
        calls["Event"] = 1
        try:
            for event in list_raw(api.api_client, EVENTS_PATH, timeout=timeout, field_selector="type=Warning"):
                where = (event.get("metadata") or {}).get("namespace")
                if where in warnings:
                    warnings[where].append(event)
        except Exception as exc:
            errors["Event"] = _describe(exc)
        for where, items in warnings.items():
            items.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True)
            del items[WARNINGS_PER_NAMESPACE:]
        if errors.keys() & HEALTH_KINDS:
            log.warning("stacks view: cannot list %s: health is not claimed", ", ".join(sorted(errors)))
        return ClusterState(rows, releases, utc_now(), objects=None if errors.keys() & HEALTH_KINDS else found,
                            warnings=warnings, api_calls=calls, errors=errors)

    return read


#: The namespaced kinds the stack page compares with their release manifest, each listed once per
#: stack page (only the kinds its releases render). Other kinds are reported as not compared.
NAMESPACED_KINDS = {
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets",
    "DaemonSet": "/apis/apps/v1/namespaces/{ns}/daemonsets",
    "Job": "/apis/batch/v1/namespaces/{ns}/jobs",
    "CronJob": "/apis/batch/v1/namespaces/{ns}/cronjobs",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
    "HorizontalPodAutoscaler": "/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}


def kube_namespace_reader(core_v1: Callable[[], Any], *, timeout: float = 10.0) -> Callable[[str], NamespaceRead]:
    """Reads one stack's release Secrets and the live objects of every kind its current
    releases render (one list per kind; the Secrets list serves both)."""

    decoded: dict = {}  # release records by (namespace, name, resourceVersion): decoded once

    def read(namespace: str) -> NamespaceRead:
        api = core_v1().api_client
        calls = {"Secret": 1}
        secrets = list_raw(api, NAMESPACED_KINDS["Secret"].format(ns=namespace), timeout=timeout)
        releases, broken = release_records(secrets, decoded)
        kinds = {item.obj.get("kind") for r in current_releases(releases).values() for item in manifest_objects(r.manifest)}
        live: dict[tuple[str, str, str], dict[str, Any]] = {}
        for kind in sorted(k for k in kinds if k in NAMESPACED_KINDS):
            items = secrets if kind == "Secret" else list_raw(api, NAMESPACED_KINDS[kind].format(ns=namespace), timeout=timeout)
            if kind != "Secret":
                calls[kind] = 1
            for item in items:
                meta = item.get("metadata") or {}
                live[(kind, meta.get("namespace") or namespace, meta.get("name") or "")] = item
        return NamespaceRead(releases, live, calls, broken)

    return read
