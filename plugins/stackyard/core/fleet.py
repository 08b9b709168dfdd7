"""What is deployed where: the Stacks view's data, assembled from plain inputs.

Pure: no Airflow, no Kubernetes client, no store, no clock. :mod:`stackyard.steps.fleet` reads the
sources (manifest store, record store, cluster, ``include/stacks.yaml``) and hands them here; the
UI plugin and ``stackyard stacks`` print what these functions return.

The four views:

- :func:`fleet_matrix`: rows are services, columns are stacks (the L3 column first, then
  production, persistent, ephemeral). A cell is the chart version deployed there and its
  :class:`CellState` relative to the latest L3, derived by :func:`cell_state` alone.
- :func:`l3_history`: every manifest version with its one change and gate result, and every
  rejected candidate, newest first.
- :func:`ephemeral_view`: ephemeral stacks, their time left before the reaper takes them, and the
  last reaper run.
- :func:`persistent_view`: persistent and production stacks: owner, cadence, next rollout,
  deployment window, last rollout.

Records arrive as the typed models of :mod:`stackyard.core.records` and only named fields are
copied out of them and of namespaces: an annotation that carries anything else (by mistake, a
secret) is never passed through to the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from stackyard.core.charts import split_chart
from stackyard.core.drift import DriftState, drift_state, release_drift
from stackyard.core.health import (
    Health, ServiceHealth, Status, assess_namespace, counts_by_health, event_summary, resource_tree, stack_health,
)
from stackyard.core.releases import ReleaseRecord, RenderedObject, manifest_objects, subchart_of
from stackyard.core.releases import current as release_current
from stackyard.core.manifest import Manifest
from stackyard.core.records import CanaryInfo, EventKind, GateReport, ReaperReport, RolloutRecord, StackEvent, Stored
from stackyard.core.rollout import window_decision
from stackyard.core.ephemeral import (
    ANNOTATION_CREATED, ANNOTATION_CREATED_BY, ANNOTATION_LAST_ACTIVITY, ANNOTATION_OWNER, ANNOTATION_TTL,
    LABEL_MANAGED_BY, LABEL_MANIFEST_VERSION, LABEL_OWNER, LABEL_PURPOSE, LABEL_STACK_TYPE,
    MANAGED_BY, Action, NamespaceSummary, StackType, decide, format_ttl, timestamp,
)
from stackyard.core.umbrella import UMBRELLA_NAME
from stackyard.core.times import parse_utc
from stackyard.core.versions import compare_semver, is_semver
from stackyard.exceptions import InputError

L3_COLUMN = "L3"
GATE_DAG_ID = "l3_gate"
_COLUMN_ORDER = {"l3": 0, StackType.PRODUCTION.value: 1, StackType.PERSISTENT.value: 2, StackType.EPHEMERAL.value: 3}
#: The umbrella versions stackyard publishes: L3 ``N.0.0``, a gate candidate ``N.0.0-candidate-<id>``
#: (:mod:`stackyard.core.umbrella`), a personal stack with overrides ``N.0.0-overrides-<hash>``
#: (:mod:`stackyard.steps.personal_stacks`).
_UMBRELLA_VERSION = re.compile(r"^([0-9]+)\.0\.0(?:-(candidate|overrides)-([0-9a-f]+))?$")
_RUN_REF = re.compile(r"^([A-Za-z0-9_.-]+)/(.+)$")


class CellState(str, Enum):
    """How a deployed version relates to the latest L3 pin of its service."""

    SAME = "same"
    BEHIND = "behind"  # older than the L3 pin; ``behind`` says by how many L3 versions of it
    AHEAD = "ahead"  # newer than the L3 pin (a candidate or a hand-made deploy)
    NOT_DEPLOYED = "not-deployed"
    FAILED = "failed"  # the last rollout of this service here failed, or helm says failed
    UNKNOWN = "unknown"  # the cluster could not be read: nothing is claimed
    NOT_IN_L3 = "not-in-l3"  # deployed, but L3 does not pin the service at all


# --- inputs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseRow:
    """One helm release as ``helm list`` shows it."""

    name: str
    namespace: str
    status: str
    chart: str  # name-version, as helm prints it
    revision: int = 0


@dataclass(frozen=True)
class NamespaceRow:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    phase: str | None = None


@dataclass(frozen=True)
class ClusterState:
    """The stackyard namespaces and the helm releases in them, read at ``read_at``; with the
    live objects of those namespaces (workloads, ReplicaSets, pods, services, ingresses: plain
    API JSON) and their warning Events when the reader lists them (``objects`` None: not read,
    health is not claimed). ``api_calls`` counts the requests per kind; ``errors`` names the
    kinds that could not be listed."""

    namespaces: tuple[NamespaceRow, ...]
    releases: tuple[ReleaseRow, ...]
    read_at: datetime
    objects: Mapping[str, Sequence[Mapping[str, Any]]] | None = field(default=None, compare=False)
    warnings: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict, compare=False)
    api_calls: Mapping[str, int] = field(default_factory=dict, compare=False)
    errors: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class StackSpec:
    """A persistent or production stack as ``include/stacks.yaml`` declares it."""

    name: str
    type: str = StackType.PERSISTENT.value
    owner: str | None = None
    profile: str | None = None
    cadence: str | None = None  # cron expression, or None for manual only
    window: str | None = None  # the deployment windows in words, e.g. "mon-fri 09:00-17:00 Europe/Berlin"
    namespace: str | None = None  # when it differs from the name
    windows: Any = field(default=None, compare=False)  # the stack registry's Windows (None: always open)
    declared: bool = False  # in the stack registry (else only seen on the cluster or in records)
    pin_images: bool = False  # the registry's switch: pods run the locked image digests


@dataclass(frozen=True)
class Rejection:
    candidate: Manifest
    reason: str
    recorded: datetime
    failed_tests: tuple[str, ...] = ()
    duration_seconds: float | None = None


# --- small shared helpers -------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return timestamp(moment) if moment else None


def run_link(dag_id: str | None, run_id: str | None) -> dict[str, str] | None:
    """A reference to an Airflow DAG run; the UI turns it into ``/dags/<dag>/runs/<run>``."""
    return {"dag_id": dag_id, "run_id": run_id} if dag_id and run_id else None


def parse_run_ref(text: object) -> dict[str, str] | None:
    """``dag_id/run_id`` (the ``created-by`` annotation) as a run link."""
    match = _RUN_REF.match(text) if isinstance(text, str) else None
    return run_link(match[1], match[2]) if match else None


def stack_type_of(ns: NamespaceRow) -> str | None:
    if ns.labels.get(LABEL_MANAGED_BY) != MANAGED_BY:
        return None
    value = ns.labels.get(LABEL_STACK_TYPE)
    return value if value in {t.value for t in StackType} else None


def rollout_summary(stored: Stored[RolloutRecord]) -> dict[str, Any]:
    """The fields of a rollout record the page shows."""
    record = stored.record
    return _compact({
        "service": record.service,
        "from_version": record.from_version,
        "version": record.to_version,
        "outcome": record.status.value,
        "failed": record.failed,
        "manifest_version": record.manifest_version,
        "reason": record.reason or None,
        "at": _iso(stored.recorded),
        "run": run_link(record.dag_id, record.run_id),
        "canary": canary_summary(record.canary),
    })


def canary_summary(info: CanaryInfo | None) -> dict[str, Any] | None:
    """A canary's share now and its weight history (each change and analysis, with the checks'
    values), as the Stacks view and ``stackyard stacks status`` show it; None without a canary."""
    if info is None:
        return None
    return _compact({
        "release": info.release, "provider": info.provider, "weight": info.weight, "state": info.state,
        "history": [{"at": _iso(line.time), "kind": line.kind, "weight": line.weight, "reason": line.reason or None,
                     "checks": [_compact(check.model_dump()) for check in line.checks]}
                    for line in info.history] or None,
    })


def _compact(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if value is not None}


# --- the L3 lineage of each service ---------------------------------------------------------------


@dataclass(frozen=True)
class ServiceLineage:
    """Every version L3 has pinned for one service, oldest first, and who put the current one."""

    versions: tuple[str, ...]
    current: str | None
    introduced_by: dict[str, str] | None  # run link of the manifest that set the current pin

    def behind(self, deployed: str) -> int:
        """How many L3 versions of this service are newer than ``deployed`` (up to the current)."""
        return sum(1 for version in self.versions
                   if compare_semver(version, deployed) > 0 and compare_semver(version, self.current) <= 0)


def lineages(history: Sequence[Manifest]) -> dict[str, ServiceLineage]:
    """Per service of the latest manifest (history in any order)."""
    ordered = sorted(history, key=lambda m: m.version)
    if not ordered:
        return {}
    seen: dict[str, list[str]] = {}
    introduced: dict[str, dict[str, str] | None] = {}
    for manifest in ordered:
        link = run_link(GATE_DAG_ID, manifest.provenance.dag_run_id)
        for service, pin in manifest.services.items():
            versions = seen.setdefault(service, [])
            if pin.chart_version not in versions:
                versions.append(pin.chart_version)
            if manifest.version == 1 or (manifest.change and manifest.change.service == service):
                introduced[service] = link
    latest = ordered[-1]
    return {
        service: ServiceLineage(tuple(seen[service]), pin.chart_version, introduced.get(service))
        for service, pin in latest.services.items()
    }


# --- the fleet matrix -----------------------------------------------------------------------------


def cell_state(deployed: str | None, lineage: ServiceLineage | None, *, failed: bool,
               cluster_known: bool = True) -> tuple[CellState, int | None]:
    """The one rule for a cell's colour, in order: unknown cluster → UNKNOWN; failed last rollout →
    FAILED; nothing deployed → NOT_DEPLOYED; service not in L3 → NOT_IN_L3; same precedence as the
    L3 pin → SAME; older → BEHIND by the number of L3 versions in between; newer → AHEAD."""
    if not cluster_known:
        return CellState.UNKNOWN, None
    if failed:
        return CellState.FAILED, None
    if deployed is None:
        return CellState.NOT_DEPLOYED, None
    if lineage is None or lineage.current is None:
        return CellState.NOT_IN_L3, None
    if not is_semver(deployed):
        return CellState.UNKNOWN, None
    order = compare_semver(deployed, lineage.current)
    if order == 0:
        return CellState.SAME, None
    if order > 0:
        return CellState.AHEAD, None
    return CellState.BEHIND, max(1, lineage.behind(deployed))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    owner: str | None = None
    on_cluster: bool = True
    manifest_version: int | None = None
    namespace: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _compact({"name": self.name, "type": self.type, "owner": self.owner,
                         "on_cluster": None if self.on_cluster else False, "manifest_version": self.manifest_version})


def needs_candidates(cluster: ClusterState | None, manifests: Mapping[int, Manifest]) -> bool:
    """True if some umbrella release runs a candidate that is not a stored manifest (only then
    are rejected candidates worth reading)."""
    for release in (cluster.releases if cluster else ()):
        name, version = split_chart(release.chart)
        parsed = umbrella_manifest_version(version) if name == UMBRELLA_NAME and version else None
        if parsed and parsed.candidate is not None:
            stored = manifests.get(parsed.manifest)
            if stored is None or not stored.candidate_id.startswith(parsed.candidate):
                return True
    return False


@dataclass(frozen=True)
class UmbrellaVersion:
    """What an umbrella chart version says: the manifest it starts from, and either the gate
    candidate (an id prefix) or the hash of a personal stack's overridden pins."""

    manifest: int
    candidate: str | None = None
    overrides: str | None = None


def umbrella_manifest_version(chart_version: str) -> UmbrellaVersion | None:
    """``N.0.0``, ``N.0.0-candidate-<id>``, ``N.0.0-overrides-<hash>``; anything else None."""
    match = _UMBRELLA_VERSION.match(chart_version)
    if not match:
        return None
    number = int(match[1])
    if match[2] == "candidate":
        return UmbrellaVersion(number, candidate=match[3])
    if match[2] == "overrides":
        return UmbrellaVersion(number, overrides=match[3])
    return UmbrellaVersion(number)


def stack_overrides(events: Sequence[Stored[StackEvent]]) -> dict[str, dict[str, str | None]] | None:
    """The overrides of a stack's latest ``created`` event (a re-created stack replaces them), as
    service → ``{"from", "to"}``; None when it has none. The record's model admits only chart
    versions here, so no value is ever passed on."""
    created = max((s for s in events if s.record.event is EventKind.CREATED), key=lambda s: s.recorded, default=None)
    if created is None or not created.record.overrides:
        return None
    return {service: {"from": change.from_version, "to": change.to}
            for service, change in created.record.overrides.items()}


def deployed_services(
    releases: Iterable[ReleaseRow], manifests: Mapping[int, Manifest], candidates: Iterable[Manifest] = (),
    *, by_candidate: Mapping[str, Manifest] | None = None,
    overrides: Mapping[str, Mapping[str, str | None]] | None = None,
) -> dict[str, dict[str, Any]]:
    """What a namespace's releases deploy, per service: version and helm status.

    A service release (chart = service) deploys its own version. The L3 umbrella release deploys
    every pin of the manifest its version names (``N.0.0``), or of the candidate whose id its
    version carries; a candidate that is in neither store is reported with unknown pins. An
    overrides umbrella (``N.0.0-overrides-<hash>``) deploys manifest N's pins with the stack's
    recorded ``overrides`` applied (entries marked ``override``); without that record the
    overridden services cannot be told apart, so every pin is reported ``unknown``.
    """
    out: dict[str, dict[str, Any]] = {}
    if by_candidate is None:  # candidate_id is a hash: callers with many namespaces pass it in
        by_candidate = {c.candidate_id: c for c in candidates}
    for release in releases:
        name, version = split_chart(release.chart)
        if version is None:
            continue
        if name == UMBRELLA_NAME:
            parsed = umbrella_manifest_version(version)
            manifest = None
            if parsed:
                stored = manifests.get(parsed.manifest)
                if parsed.candidate is None:
                    manifest = stored
                elif stored is not None and stored.candidate_id.startswith(parsed.candidate):
                    manifest = stored
                else:
                    manifest = next((c for cid, c in by_candidate.items() if cid.startswith(parsed.candidate)), None)
            base = {"status": release.status, "release": release.name}
            pins = {service: pin.chart_version for service, pin in (manifest.services.items() if manifest else ())}
            if parsed and parsed.overrides is not None:
                if overrides is None:
                    for service in pins:
                        out.setdefault(service, {"version": None, **base, "unknown": "overrides not recorded"})
                    continue
                for service, change in overrides.items():
                    pins[service] = change["to"]
            for service, chart_version in pins.items():
                entry = {"version": chart_version, **base}
                if parsed and parsed.overrides is not None and service in overrides:
                    entry["override"] = dict(overrides[service])
                out.setdefault(service, entry)
        else:
            # A service's own release wins over the umbrella's pin of it.
            out[name] = {"version": version, "status": release.status, "release": release.name}
    return out


def _columns(cluster: ClusterState | None, specs: Sequence[StackSpec],
             rollout_stacks: Iterable[str]) -> list[Column]:
    columns: dict[str, Column] = {}
    namespaces = {ns.name: ns for ns in cluster.namespaces} if cluster else {}
    by_namespace = {}
    for spec in specs:
        where = spec.namespace or spec.name
        columns[spec.name] = Column(spec.name, spec.type, spec.owner, on_cluster=where in namespaces if cluster else True,
                                    namespace=where)
        by_namespace[where] = spec.name
    for ns in namespaces.values():
        kind = stack_type_of(ns)
        if kind is None:
            continue
        owner = ns.annotations.get(ANNOTATION_OWNER) or ns.labels.get(LABEL_OWNER)
        version = ns.labels.get(LABEL_MANIFEST_VERSION)
        name = by_namespace.get(ns.name, ns.name)
        previous = columns.get(name)
        columns[name] = Column(
            name, previous.type if previous else kind, (previous.owner if previous else None) or owner,
            manifest_version=int(version) if version and version.isdigit() else None, namespace=ns.name,
        )
    for name in rollout_stacks:
        columns.setdefault(name, Column(name, StackType.PERSISTENT.value, on_cluster=name in namespaces if cluster else True))
    return sorted(columns.values(), key=lambda c: (_COLUMN_ORDER.get(c.type, 9), c.name))


def _deployed_per_column(cluster: ClusterState | None, columns: Sequence[Column], manifests: Mapping[int, Manifest],
                         candidates: Iterable[Manifest], events: Mapping[str, Sequence[Stored[StackEvent]]]) -> dict[str, dict]:
    by_namespace: dict[str, list[ReleaseRow]] = {}
    for release in (cluster.releases if cluster else ()):
        by_namespace.setdefault(release.namespace, []).append(release)
    by_candidate = {c.candidate_id: c for c in candidates}
    return {c.name: deployed_services(by_namespace.get(c.namespace or c.name, ()), manifests, by_candidate=by_candidate,
                                      overrides=stack_overrides(events.get(c.name, ())))
            for c in columns}


def stack_deployed(name: str, *, history: Sequence[Manifest], cluster: ClusterState | None,
                   rollouts: Mapping[str, Sequence[Stored[RolloutRecord]]], specs: Sequence[StackSpec] = (),
                   candidates: Iterable[Manifest] = (), events: Mapping[str, Sequence[Stored[StackEvent]]] | None = None,
                   ) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """(namespace, what its releases deploy per service) of one stack; None if no column has it."""
    column = next((c for c in _columns(cluster, specs, rollouts.keys()) if c.name == name), None)
    if column is None:
        return None
    deployed = _deployed_per_column(cluster, [column], {m.version: m for m in history}, candidates, events or {})
    return column.namespace or column.name, deployed[name]


def pinned_images(deployed: Mapping[str, Mapping[str, Any]], manifests: Iterable[Manifest]) -> dict[str, dict[str, str]]:
    """Per deployed service, the image digests L3 pins for the version it runs (reference →
    digest, from the newest manifest or candidate pinning that version; none for charts
    published before image locks)."""
    wanted = {service: entry.get("version") for service, entry in deployed.items() if entry.get("version")}
    found: dict[str, dict[str, str]] = {}
    for manifest in sorted(manifests, key=lambda m: m.version, reverse=True):
        for service, version in wanted.items():
            pin = manifest.services.get(service)
            if service not in found and pin is not None and pin.chart_version == version and pin.images:
                found[service] = dict(pin.images)
        if len(found) == len(wanted):
            break
    return found


def image_rows(pinned: Mapping[str, str] | None) -> list[dict[str, str]] | None:
    """A service's pinned images for the page: reference, full digest, and the short form shown."""
    if not pinned:
        return None
    return [{"reference": ref, "digest": digest, "short": digest.split(":", 1)[1][:12]}
            for ref, digest in sorted(pinned.items())]


def fleet_health(*, history: Sequence[Manifest], cluster: ClusterState | None,
                 rollouts: Mapping[str, Sequence[Stored[RolloutRecord]]], specs: Sequence[StackSpec] = (),
                 candidates: Iterable[Manifest] = (), events: Mapping[str, Sequence[Stored[StackEvent]]] | None = None,
                 ) -> dict[str, dict[str, ServiceHealth]] | None:
    """Per stack (column name), per deployed service, its health from the cluster's live objects
    (:func:`stackyard.core.health.assess_namespace`); None when the objects were not read."""
    if cluster is None or cluster.objects is None:
        return None
    columns = _columns(cluster, specs, rollouts.keys())
    deployed = _deployed_per_column(cluster, columns, {m.version: m for m in history}, candidates, events or {})
    known = [*history, *candidates]
    return {c.name: assess_namespace(cluster.objects.get(c.namespace or c.name, ()), deployed[c.name],
                                     cluster.warnings.get(c.namespace or c.name, ()),
                                     pinned=pinned_images(deployed[c.name], known))
            for c in columns}


def fleet_matrix(
    *, history: Sequence[Manifest], cluster: ClusterState | None, rollouts: Mapping[str, Sequence[Stored[RolloutRecord]]],
    specs: Sequence[StackSpec] = (), candidates: Iterable[Manifest] = (),
    events: Mapping[str, Sequence[Stored[StackEvent]]] | None = None,
    health: Mapping[str, Mapping[str, ServiceHealth]] | None = None,
) -> dict[str, Any]:
    """Rows = services (L3's and any deployed), columns = L3 then stacks; see :func:`cell_state`.

    ``events`` (per stack, its lifecycle records) tell what a personal stack's overrides umbrella
    deploys; an overridden cell carries ``override`` (``{"from", "to"}``).

    ``cluster`` None means it could not be read: stack cells are UNKNOWN (the last rollout
    record is still shown as what it is: a record, with its time).

    Each deployed cell carries ``health`` (and ``health_reason`` unless healthy) and each stack
    column its rolled-up ``health`` when the live objects were read (``health``: precomputed
    :func:`fleet_health`, else computed here); without them cells say ``unknown``.
    """
    manifests = {m.version: m for m in history}
    latest = max(history, key=lambda m: m.version) if history else None
    lineage = lineages(history)
    columns = _columns(cluster, specs, rollouts.keys())
    events = events or {}
    deployed = _deployed_per_column(cluster, columns, manifests, candidates, events)
    if health is None:
        health = fleet_health(history=history, cluster=cluster, rollouts=rollouts, specs=specs,
                              candidates=candidates, events=events)
    namespace_rows = {ns.name: ns for ns in (cluster.namespaces if cluster else ())}
    last_rollout = {stack: _last_rollout_per_service(records) for stack, records in rollouts.items()}
    services = sorted(set(lineage) | {s for d in deployed.values() for s in d} |
                      {s for d in last_rollout.values() for s in d})
    rows = []
    for service in services:
        line = lineage.get(service)
        l3_cell = _compact({"version": line.current, "state": CellState.SAME.value, "run": line.introduced_by}) \
            if line else {"state": CellState.NOT_DEPLOYED.value}
        cells = [l3_cell]
        states: dict[tuple[str | None, bool, bool], tuple[CellState, int | None]] = {}
        for column in columns:
            here = deployed[column.name].get(service)
            record = last_rollout.get(column.name, {}).get(service)
            failed = bool(record and record.get("failed")) or bool(here and here["status"] == "failed")
            key = (here["version"] if here else None, failed, cluster is not None and not (here and here.get("unknown")))
            if key not in states:  # a service has few distinct versions across 40 stacks: decide each once
                states[key] = cell_state(key[0], line, failed=key[1], cluster_known=key[2])
            state, behind = states[key]
            status = _cell_health(health, column.name, service) if here else None
            cells.append(_compact({
                "version": here["version"] if here else None,
                "state": state.value,
                "behind": behind,
                "override": here.get("override") if here else None,
                "note": here.get("unknown") if here else None,
                "health": status.health.value if status else None,
                "health_reason": status.reason if status and status.health is not Health.HEALTHY else None,
                "image_mismatch": _cell_image_mismatch(health, column.name, service) if here else None,
                "status": here["status"] if here and here["status"] != "deployed" else None,
                "run": _cell_run(column, here, record, namespace_rows),
                "last_rollout": record,
            }))
        rows.append({"service": service, "cells": cells})
    l3_column = Column(L3_COLUMN, "l3", manifest_version=latest.version if latest else None)
    column_docs = [l3_column.to_dict()]
    for column in columns:
        doc = column.to_dict()
        if health is not None and health.get(column.name):
            overall = stack_health(health[column.name])
            doc["health"] = overall.health.value
            doc["health_counts"] = counts_by_health(h.status for h in health[column.name].values())
        column_docs.append(doc)
    return {
        "l3_version": latest.version if latest else None,
        "columns": column_docs,
        "rows": rows,
        "counts": _state_counts(rows),
    }


def _cell_health(health: Mapping[str, Mapping[str, ServiceHealth]] | None, stack: str, service: str) -> Status:
    if health is None:
        return Status(Health.UNKNOWN, "live objects not read")
    found = health.get(stack, {}).get(service)
    return found.status if found else Status(Health.UNKNOWN, "not assessed")


def _cell_image_mismatch(health: Mapping[str, Mapping[str, ServiceHealth]] | None, stack: str, service: str) -> int | None:
    """How many of the service's containers run another digest than L3 pinned (None: none)."""
    found = (health or {}).get(stack, {}).get(service)
    return len(found.image_mismatch) if found and found.image_mismatch else None


def _last_rollout_per_service(records: Sequence[Stored[RolloutRecord]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for stored in sorted(records, key=lambda r: r.recorded, reverse=True):
        if stored.record.service not in latest:
            latest[stored.record.service] = rollout_summary(stored)
    return latest


def _cell_run(column: Column, here: dict[str, Any] | None, record: dict[str, Any] | None,
              namespaces: Mapping[str, NamespaceRow]) -> dict[str, str] | None:
    """The run that put the cell's version there: the rollout that deployed it, else the stack's
    creator (gate and personal stacks), else nothing claimed."""
    if here is None:
        return record.get("run") if record else None
    if record and record.get("version") == here["version"]:
        return record.get("run")
    ns = namespaces.get(column.namespace or column.name)
    return parse_run_ref(ns.annotations.get(ANNOTATION_CREATED_BY)) if ns else None


def _state_counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        for cell in row["cells"][1:]:
            counts[cell["state"]] = counts.get(cell["state"], 0) + 1
    return counts


# --- L3 history -----------------------------------------------------------------------------------


def rejection_text(reason: str | None, failed_tests: Sequence[str] = ()) -> str:
    """A rejection in one line: the reason, then the failed tests it does not name already (the
    gate writes ``system tests failed: <names>`` as its reason, so naming them again doubles them)."""
    text = reason or "rejected"
    missing = [name for name in dict.fromkeys(failed_tests) if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)]
    return f"{text} ({', '.join(missing)})" if missing else text



def l3_history(history: Sequence[Manifest], reports: Mapping[int, GateReport],
               rejections: Sequence[Rejection]) -> list[dict[str, Any]]:
    """Every manifest (promoted or seeded) and every rejected candidate, newest first."""
    entries: list[tuple[datetime, dict[str, Any]]] = []
    for manifest in history:
        report = reports.get(manifest.version)
        entries.append((manifest.created, _compact({
            "kind": "seeded" if manifest.version == 1 else "promoted",
            "version": manifest.version,
            "change": manifest.change.to_dict() if manifest.change else None,
            "requested_by": manifest.provenance.requested_by,
            "ci_url": manifest.provenance.ci_url,
            "at": _iso(manifest.created),
            "result": "seeded" if manifest.version == 1 else (report.outcome.value if report else "promoted"),
            "duration_seconds": report.duration_seconds if report else None,
            "run": run_link(GATE_DAG_ID, (report.run_id if report else None) or manifest.provenance.dag_run_id),
            "services": len(manifest.services),
        })))
    for rejection in rejections:
        candidate = rejection.candidate
        entries.append((rejection.recorded, _compact({
            "kind": "rejected",
            "candidate_id": candidate.candidate_id,
            "version": candidate.version,
            "parent": candidate.parent,
            "change": candidate.change.to_dict() if candidate.change else None,
            "requested_by": candidate.provenance.requested_by,
            "ci_url": candidate.provenance.ci_url,
            "at": _iso(rejection.recorded),
            "result": "rejected",
            "reason": rejection.reason,
            "summary": rejection_text(rejection.reason, rejection.failed_tests),
            "failed_tests": list(rejection.failed_tests),
            "duration_seconds": rejection.duration_seconds,
            "run": run_link(GATE_DAG_ID, candidate.provenance.dag_run_id),
        })))
    return [entry for _, entry in sorted(entries, key=lambda pair: pair[0], reverse=True)]


# --- ephemeral stacks -----------------------------------------------------------------------------


def time_left(ns: NamespaceRow, now: datetime, created: datetime | None = None) -> tuple[str | None, int | None, str | None]:
    """(TTL text, seconds left before the reaper may take the stack, a note if it will not or
    is unsure), by the reaper's own rule (:func:`stackyard.core.ephemeral.decide`)."""
    verdict = decide(NamespaceSummary(ns.name, ns.labels, ns.annotations, created=created, phase=ns.phase), now)
    ttl = format_ttl(verdict.ttl) if verdict.ttl else ns.annotations.get(ANNOTATION_TTL)
    if verdict.action is Action.KEEP and verdict.time_left is not None:
        return ttl, int(verdict.time_left.total_seconds()), None
    if verdict.action is Action.DELETE:
        return ttl, 0, verdict.reason
    return ttl, None, verdict.reason


def parse_time(text: object) -> datetime | None:
    """An ISO time with a zone (``Z`` too) as UTC; None if it is not one."""
    return _parse_time(text)


def _parse_time(text: object) -> datetime | None:
    try:
        return parse_utc(text)
    except InputError:
        return None  # a view shows what it can read


def ephemeral_view(cluster: ClusterState | None, events: Mapping[str, Sequence[Stored[StackEvent]]],
                   reaper_runs: Sequence[Stored[ReaperReport]], now: datetime) -> dict[str, Any]:
    stacks = []
    for ns in (cluster.namespaces if cluster else ()):
        if stack_type_of(ns) != StackType.EPHEMERAL.value:
            continue
        last_event = max(events.get(ns.name, ()), key=lambda r: r.recorded, default=None)
        created = _parse_time(ns.annotations.get(ANNOTATION_CREATED))
        ttl, left, note = time_left(ns, now, created)
        version = ns.labels.get(LABEL_MANIFEST_VERSION)
        stacks.append(_compact({
            "name": ns.name,
            "owner": ns.annotations.get(ANNOTATION_OWNER) or ns.labels.get(LABEL_OWNER),
            "purpose": ns.labels.get(LABEL_PURPOSE),
            "manifest_version": int(version) if version and version.isdigit() else None,
            "overrides": _override_versions(stack_overrides(events.get(ns.name, ()))),
            "created": _iso(created),
            "created_by": parse_run_ref(ns.annotations.get(ANNOTATION_CREATED_BY)),
            "last_activity": _iso(_parse_time(ns.annotations.get(ANNOTATION_LAST_ACTIVITY))),
            "last_event": _event_summary(last_event) if last_event else None,
            "ttl": ttl,
            "seconds_left": left,
            "note": note,
            "terminating": ns.phase == "Terminating" or None,
        }))
    stacks.sort(key=lambda s: (s.get("seconds_left") is None, s.get("seconds_left") or 0, s["name"]))
    return {"stacks": stacks, "last_reaper_run": reaper_summary(reaper_runs[0]) if reaper_runs else None}


def _override_versions(overrides: Mapping[str, Mapping[str, str | None]] | None) -> dict[str, str] | None:
    return {service: change["to"] for service, change in overrides.items()} if overrides else None


def _event_summary(stored: Stored[StackEvent]) -> dict[str, Any]:
    event = stored.record
    return _compact({"event": event.event.value, "who": event.owner, "at": _iso(stored.recorded),
                     "run": run_link(event.dag_id, event.run_id)})


def reaper_summary(stored: Stored[ReaperReport]) -> dict[str, Any]:
    """What a reaper run deleted and why (and what it failed to delete), linked to its own run."""
    report = stored.record

    def entries(items) -> list[dict[str, Any]]:
        return [_compact({"name": i.name, "reason": i.reason, "detail": i.detail}) for i in items]

    return _compact({
        "at": _iso(stored.recorded),
        "run": run_link(report.dag_id, report.run_id),
        "dry_run": report.dry_run,
        "deleted": entries(report.deleted),
        "would_delete": entries(report.would_delete) or None,
        "failed": entries(report.failed) or None,
        "error": report.error,
    })


# --- persistent stacks ----------------------------------------------------------------------------


def next_run(cadence: str | None, now: datetime) -> datetime | None:
    """The next time a cron ``cadence`` fires after ``now`` (None: manual, or not a cron)."""
    if not cadence:
        return None
    try:
        from croniter import croniter

        return croniter(cadence, now).get_next(datetime).astimezone(timezone.utc)
    except (ValueError, KeyError, ImportError):
        return None


def persistent_view(specs: Sequence[StackSpec], cluster: ClusterState | None,
                    rollouts: Mapping[str, Sequence[Stored[RolloutRecord]]], now: datetime,
                    paused: Mapping[str, bool] | None = None) -> list[dict[str, Any]]:
    """Persistent and production stacks: the registry's, plus any the cluster or the records know.

    ``paused`` is, per stack, whether its rollout DAG is paused in Airflow: a paused DAG has no
    next rollout (the cadence would not fire), so none is shown and the stack says ``paused``.
    A stack missing from ``paused`` (or ``paused`` None: Airflow not asked) shows the cadence's
    next time, with ``paused`` left out: nothing is claimed about it.

    The deployment window is decided by the rollout's own rule (:func:`window_decision`), so the
    view says exactly what a rollout started now would do; a stack the registry does not declare
    has an ``unknown`` window."""
    by_name = {spec.name: spec for spec in specs}
    for ns in (cluster.namespaces if cluster else ()):
        kind = stack_type_of(ns)
        if kind in (StackType.PERSISTENT.value, StackType.PRODUCTION.value) and ns.name not in by_name:
            by_name[ns.name] = StackSpec(ns.name, kind, ns.annotations.get(ANNOTATION_OWNER) or ns.labels.get(LABEL_OWNER))
    for name in rollouts:
        by_name.setdefault(name, StackSpec(name))
    namespaces = {ns.name for ns in cluster.namespaces} if cluster else None
    out = []
    for spec in sorted(by_name.values(), key=lambda s: (_COLUMN_ORDER.get(s.type, 9), s.name)):
        records = sorted(rollouts.get(spec.name, ()), key=lambda r: r.recorded, reverse=True)
        is_paused = (paused or {}).get(spec.name)
        upcoming = None if is_paused else next_run(spec.cadence, now)
        state, reason = "unknown", None
        if spec.declared:
            decision = window_decision(spec.windows, now)
            state, reason = ("open" if decision.open else "closed"), decision.reason
        out.append(_compact({
            "name": spec.name,
            "type": spec.type,
            "owner": spec.owner,
            "profile": spec.profile,
            "pin_images": spec.pin_images if spec.declared else None,
            "cadence": spec.cadence or "manual",
            "next_rollout": _iso(upcoming),
            "paused": is_paused,
            "window": spec.window or "always",
            "window_state": state,
            "window_reason": reason,
            "on_cluster": ((spec.namespace or spec.name) in namespaces) if namespaces is not None else None,
            "last_rollout": rollout_summary(records[0]) if records else None,
            "recent_failures": sum(1 for r in records[:20] if r.record.failed),
        }))
    return out


# --- one stack ------------------------------------------------------------------------------------


def stack_status(name: str, matrix: Mapping[str, Any], rollouts: Sequence[Stored[RolloutRecord]],
                 events: Sequence[Stored[StackEvent]]) -> dict[str, Any] | None:
    """One column of the matrix as a list of services, with the stack's recent records."""
    names = [c["name"] for c in matrix["columns"]]
    if name not in names[1:]:
        return None
    index = names.index(name)
    services = []
    for row in matrix["rows"]:
        cell = row["cells"][index]
        l3 = row["cells"][0].get("version")
        if cell["state"] == CellState.NOT_DEPLOYED.value and "last_rollout" not in cell:
            continue
        services.append({"service": row["service"], "l3": l3, **cell})
    return {
        "stack": matrix["columns"][index],
        "l3_version": matrix["l3_version"],
        "services": services,
        "rollouts": [rollout_summary(r) for r in sorted(rollouts, key=lambda r: r.recorded, reverse=True)],
        "events": [_event_summary(r) for r in sorted(events, key=lambda r: r.recorded, reverse=True)],
    }


def release_services(release: ReleaseRecord, deployed: Mapping[str, Mapping[str, Any]]) -> dict[str, list[RenderedObject]]:
    """A release's rendered objects per service: a service's own release renders only that
    service; an umbrella's objects belong to the subchart whose template rendered them."""
    objects = manifest_objects(release.manifest)
    own = [s for s, entry in deployed.items() if entry.get("release") == release.name]
    if len(own) == 1 and own[0] == release.name:
        return {release.name: objects}
    out: dict[str, list[RenderedObject]] = {}
    for item in objects:
        out.setdefault(subchart_of(item.source) or release.name, []).append(item)
    return out


def service_drift(deployed: Mapping[str, Mapping[str, Any]], *, namespace: str, releases: Sequence[ReleaseRecord],
                  live: Mapping[tuple[str, str, str], Mapping[str, Any]], compared_kinds: frozenset[str] | set[str],
                  ) -> dict[str, str]:
    """Per deployed service, its :class:`DriftState` value (the stack page's rule, states only)."""
    diffs: dict[str, list[dict[str, Any]]] = {}
    for release in release_current(releases).values():
        for service, rendered in release_services(release, deployed).items():
            diffs.setdefault(service, []).extend(release_drift(rendered, live, namespace, compared_kinds))
    return {service: drift_state(diffs.get(service)).value for service in deployed}


def stack_detail(status: Mapping[str, Any], *, namespace: str, objects: Sequence[Mapping[str, Any]] | None,
                 warnings: Sequence[Mapping[str, Any]], deployed: Mapping[str, Mapping[str, Any]],
                 releases: Sequence[ReleaseRecord] | None, live: Mapping[tuple[str, str, str], Mapping[str, Any]] | None,
                 compared_kinds: frozenset[str] | set[str],
                 pinned: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """One stack's page: :func:`stack_status` plus, per service, ``name``, ``version``, ``health``
    (with its pods, restarts, failing pods) and ``drift`` (``synced``/``drifted``/``unknown``, with
    the objects and fields that differ); the resource tree, recent warning events and the helm
    revisions of every release. ``releases`` None: the release records could not be read
    (drift unknown); ``objects`` None: the live objects were not read (health unknown).
    ``pinned`` (:func:`pinned_images`): each service's ``images`` (reference, digest) and, in its
    health, the containers running another digest (``image_mismatch``)."""
    health = assess_namespace(objects, deployed, warnings, pinned=pinned) if objects is not None else None
    live_releases = release_current(releases) if releases is not None else None
    drift: dict[str, list[dict[str, Any]]] = {}
    if live_releases is not None and live is not None:
        for release in live_releases.values():
            for service, rendered in release_services(release, deployed).items():
                drift.setdefault(service, []).extend(release_drift(rendered, live, namespace, compared_kinds))
    services = []
    for entry in status["services"]:
        name = entry["service"]
        here = health.get(name) if health else None
        diffs = drift.get(name) if live_releases is not None and live is not None and name in deployed else None
        services.append({
            **entry, "name": name,
            # Not deployed (only a rollout record names it) is missing, if the cluster said so.
            "health": here.status.health.value if here else (
                Health.MISSING.value if objects is not None and name not in deployed else Health.UNKNOWN.value),
            "health_detail": here.summary() if here else None,
            "drift": drift_state(diffs).value if name in deployed else DriftState.UNKNOWN.value,
            "drift_detail": [d for d in diffs or () if "not_compared" not in d] or None,
            "not_compared": sorted({k for d in diffs or () for k in d.get("not_compared", ())}) or None,
            "images": image_rows((pinned or {}).get(name)),
            "image_mismatch": (here.image_mismatch or None) if here else None,
        })
    overall = stack_health({s["name"]: Status(Health(s["health"])) for s in services})
    return {
        **status,
        "services": [_compact(s) for s in services],
        "health": overall.health.value if services else Health.UNKNOWN.value,
        "drift": (DriftState.DRIFTED.value if any(s["drift"] == DriftState.DRIFTED.value for s in services)
                  else DriftState.UNKNOWN.value if any(s["drift"] == DriftState.UNKNOWN.value for s in services) or not services
                  else DriftState.SYNCED.value),
        "resources": resource_tree(objects, deployed) if objects is not None else None,
        "warnings": [event_summary(e) for e in warnings][:20],
        "revisions": [r.summary() for r in releases] if releases is not None else None,
    }


def seconds_text(seconds: int | None) -> str:
    """``3d4h`` / ``2h15m`` / ``overdue``, for terminals and the page."""
    if seconds is None:
        return "-"
    if seconds <= 0:
        return "overdue"
    delta = timedelta(seconds=seconds)
    days, rest = delta.days, delta.seconds
    return f"{days}d{rest // 3600}h" if days else f"{rest // 3600}h{rest % 3600 // 60}m"
