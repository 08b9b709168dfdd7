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
from stackyard.core.records import (
    REAPER_RUNS, GateReport, ReaperReport, RejectionReport, RolloutRecord, StackEvent, Stored, events_stream,
    rollouts_stream,
)
from stackyard.core.manifest import Manifest
from stackyard.core.rollout import describe_window
from stackyard.core.stack_registry import load_registry
from stackyard.core.ephemeral import LABEL_MANAGED_BY, MANAGED_BY, timestamp
from stackyard.core.times import utc_now
from stackyard.adapters.manifest_store import ManifestStore

log = logging.getLogger(__name__)

STACK_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
#: How many records per stack the views read: the matrix's "failed last rollout" looks at these.
RECORDS_PER_STACK = 50
HISTORY_LIMIT = 30


class ClusterReader(Protocol):
    def __call__(self) -> ClusterState:
        """The stackyard namespaces and the helm releases in them; raises if unreachable."""


@dataclass
class SourceStatus:
    ok: bool
    read_at: str | None = None
    error: str | None = None
    detail: str | None = None

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

    def sources_dict(self) -> dict[str, Any]:
        return {name: status.to_dict() for name, status in self.sources.items()}


class Fleet:
    """The views over one set of sources. ``record_store`` and ``cluster`` may be None (not
    configured); they then show as unreachable with that reason."""

    def __init__(self, *, manifest_store: ManifestStore, record_store: Any | None,
                 cluster: ClusterReader | None, stacks_file: Path | None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.manifest_store = manifest_store
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
        read_at = value.read_at if isinstance(value, ClusterState) else snapshot.now
        snapshot.sources[name] = SourceStatus(True, read_at=timestamp(read_at), detail=detail)
        return value

    def snapshot(self, *, cluster: bool = True, records: bool = True, candidates: bool = False) -> Snapshot:
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
        return snap

    def _load_specs(self) -> list[StackSpec]:
        if self.stacks_file is None or not self.stacks_file.exists():
            return []
        registry = load_registry(self.stacks_file.read_text(), str(self.stacks_file))
        for problem in registry.errors.values():
            log.warning("%s: %s (skipped)", self.stacks_file, problem)
        return [StackSpec(name=s.name, type=s.kind.value, owner=s.owner, profile=s.profile, cadence=s.schedule,
                          window=_describe_windows(s.windows), namespace=s.namespace, windows=s.windows, declared=True)
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
                                  specs=snap.specs, candidates=snap.candidates)

    def history(self, limit: int = HISTORY_LIMIT) -> dict[str, Any]:
        snap = self.snapshot(cluster=False, records=False)
        entries: list[dict[str, Any]] = []
        if snap.history is not None:
            newest = sorted(snap.history, key=lambda m: m.version, reverse=True)[:limit]
            reports = self._read(snap, "gate_reports", lambda: self._gate_reports(newest)) or {}
            rejections = self._read(snap, "rejections", lambda: self._rejections(limit)) or []
            entries = views.l3_history(newest, reports, rejections)[:limit]
        return {"sources": snap.sources_dict(), "entries": entries}

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
        snap = self.snapshot()
        return {"sources": snap.sources_dict(),
                "stacks": views.persistent_view(snap.specs, snap.cluster, snap.rollouts, snap.now)}

    def overview(self) -> dict[str, Any]:
        """Everything the page shows, from one read of each source."""
        snap = self.snapshot(candidates=True)
        return {
            "sources": snap.sources_dict(),
            "now": timestamp(snap.now),
            "matrix": self._matrix(snap),
            "ephemeral": views.ephemeral_view(snap.cluster, snap.events, snap.reaper_runs, snap.now),
            "persistent": views.persistent_view(snap.specs, snap.cluster, snap.rollouts, snap.now),
        }

    def stack(self, name: str) -> dict[str, Any] | None:
        snap = self.snapshot(candidates=True)
        status = views.stack_status(name, self._matrix(snap), snap.rollouts.get(name, ()), snap.events.get(name, ()))
        if status is None:
            return None
        ephemeral = next((s for s in views.ephemeral_view(snap.cluster, snap.events, snap.reaper_runs, snap.now)["stacks"]
                          if s["name"] == name), None)
        persistent = next((s for s in views.persistent_view(snap.specs, snap.cluster, snap.rollouts, snap.now)
                           if s["name"] == name), None)
        return {"sources": snap.sources_dict(), **status, "details": ephemeral or persistent}


def _describe_windows(windows: Any) -> str | None:
    if windows is None:
        return None
    allowed = "; ".join(describe_window(w) for w in windows.allow) or "any time"
    freezes = f", {len(windows.freeze)} freeze(s)" if windows.freeze else ""
    return f"{allowed} {windows.timezone}{freezes}"


def _skipped(key: str, error: Exception) -> None:
    log.warning("stacks view: record %s left out: %s", key, error)


# --- cluster readers ------------------------------------------------------------------------------


def kube_cluster_reader(core_v1: Callable[[], Any], helm: Callable[[], Any], *, timeout: float = 10.0) -> ClusterReader:
    """A reader from a CoreV1Api factory and a context manager factory giving a :class:`Helm`."""
    from stackyard.core.fleet import NamespaceRow, ReleaseRow

    def read() -> ClusterState:
        namespaces = core_v1().list_namespace(label_selector=STACK_SELECTOR, _request_timeout=timeout).items
        rows = tuple(
            NamespaceRow(ns.metadata.name, dict(ns.metadata.labels or {}), dict(ns.metadata.annotations or {}),
                         ns.status.phase if ns.status else None)
            for ns in namespaces
        )
        names = {row.name for row in rows}
        with helm() as client:
            releases = tuple(
                ReleaseRow(r.name, r.namespace, r.status, r.chart, r.revision)
                for r in client.list() if r.namespace in names
            )
        return ClusterState(rows, releases, utc_now())

    return read
