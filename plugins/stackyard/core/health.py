"""Is it running? Health of Kubernetes objects, services and stacks, from live objects.

Pure: objects are the plain JSON dicts the API server returns (``kind``, ``metadata``, ``spec``,
``status``); :mod:`stackyard.steps.fleet` lists them (one call per kind for the whole fleet) and
hands them here. Modelled on Argo CD's health checks: one small function per kind derives a
:class:`Status` and a reason, and statuses roll up by :data:`SEVERITY` (the worst wins).

The closed set, :class:`Health`:

- ``healthy``: every object is as its spec asks (all replicas updated and available, pods ready);
- ``progressing``: not there yet but moving (a rollout under way, a pod starting or unscheduled
  for now, a helm operation pending);
- ``degraded``: it runs but something is broken (a container in CrashLoopBackOff or
  ImagePullBackOff, a rollout past its progress deadline, fewer pods available than asked);
- ``failed``: it stopped and will not recover alone (a helm release ``failed``, a pod ``Failed``);
- ``missing``: expected but not there (a release with no workload, a workload with no pods);
- ``unknown``: the state cannot be read or the kind has no rule.

A service's health is the worst of its helm release's and its objects' (:func:`rollup`); a stack's
the worst of its services'. Pods are attributed to their workload through ``ownerReferences``
(Pod → ReplicaSet → Deployment), so public charts that label pods sparsely still roll up right.

Images (:func:`image_mismatches`): each running container's ``imageID`` (the digest the runtime
pulled) is compared with the digest L3 pinned for its image; a difference is flagged on the service
(``image_mismatch``), not folded into its health: the pods run, but not what L3 tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from stackyard.core.images import parse_image
from stackyard.exceptions import InputError


class Health(str, Enum):
    HEALTHY = "healthy"
    PROGRESSING = "progressing"
    DEGRADED = "degraded"
    FAILED = "failed"
    MISSING = "missing"
    UNKNOWN = "unknown"


#: Roll-up order, least to most severe: a stack with one degraded service is degraded. ``unknown``
#: ranks below ``missing``/``degraded``/``failed`` (a known problem says more than a blind spot)
#: and above ``progressing``/``healthy`` (nothing is claimed healthy that could not be read).
SEVERITY = (Health.HEALTHY, Health.PROGRESSING, Health.UNKNOWN, Health.MISSING, Health.DEGRADED, Health.FAILED)
_RANK = {status: index for index, status in enumerate(SEVERITY)}

#: Container waiting reasons that mean the pod will not start without a change (Argo CD's list).
BROKEN_WAITING = frozenset({
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError",
    "CreateContainerError", "RunContainerError", "ErrImageNeverPull", "PreCreateHookError", "PostStartHookError",
})


@dataclass(frozen=True)
class Status:
    health: Health
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"health": self.health.value, **({"reason": self.reason} if self.reason else {})}


def worst(statuses: Iterable[Status], empty: Status = Status(Health.UNKNOWN, "nothing to assess")) -> Status:
    """The most severe status (the first of equals, so its reason is the first problem found)."""
    found = None
    for status in statuses:
        if found is None or _RANK[status.health] > _RANK[found.health]:
            found = status
    return found or empty


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    items = (obj.get("status") or {}).get("conditions") or []
    return {c.get("type"): c for c in items if isinstance(c, Mapping)}


def _observed(obj: Mapping[str, Any]) -> bool:
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    return generation is None or observed is None or _int(observed) >= _int(generation)


# --- per kind -------------------------------------------------------------------------------------


def replica_counts(obj: Mapping[str, Any]) -> dict[str, int]:
    """desired / ready / updated / available of a Deployment, StatefulSet or DaemonSet."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if obj.get("kind") == "DaemonSet":
        return {"desired": _int(status.get("desiredNumberScheduled")), "ready": _int(status.get("numberReady")),
                "updated": _int(status.get("updatedNumberScheduled")), "available": _int(status.get("numberAvailable"))}
    return {"desired": _int(spec.get("replicas"), 1), "ready": _int(status.get("readyReplicas")),
            "updated": _int(status.get("updatedReplicas")), "available": _int(status.get("availableReplicas"))}


def deployment_health(obj: Mapping[str, Any]) -> Status:
    """Argo CD's rule: paused → progressing; progress deadline exceeded → degraded; a new spec not
    yet observed, replicas not all updated, old replicas still there or updated ones not available
    → progressing; else healthy."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("paused"):
        return Status(Health.PROGRESSING, "rollout paused")
    progressing = _conditions(obj).get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Status(Health.DEGRADED, f"progress deadline exceeded: {progressing.get('message') or ''}".rstrip(": "))
    if not _observed(obj):
        return Status(Health.PROGRESSING, "waiting for the new spec to be observed")
    counts = replica_counts(obj)
    replicas = _int(status.get("replicas"))
    if counts["updated"] < counts["desired"]:
        return Status(Health.PROGRESSING, f"{counts['updated']} of {counts['desired']} replicas updated")
    if replicas > counts["updated"]:
        return Status(Health.PROGRESSING, f"{replicas - counts['updated']} old replicas pending termination")
    if counts["available"] < counts["updated"]:
        return Status(Health.PROGRESSING, f"{counts['available']} of {counts['updated']} updated replicas available")
    return Status(Health.HEALTHY)


def statefulset_health(obj: Mapping[str, Any]) -> Status:
    """Not observed → progressing; fewer ready than desired → progressing; a rolling update not
    finished (current revision ≠ update revision, partition aside) → progressing; else healthy."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not _observed(obj):
        return Status(Health.PROGRESSING, "waiting for the new spec to be observed")
    counts = replica_counts(obj)
    if counts["ready"] < counts["desired"]:
        return Status(Health.PROGRESSING, f"{counts['ready']} of {counts['desired']} pods ready")
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        partition = _int((strategy.get("rollingUpdate") or {}).get("partition"))
        if partition == 0 and status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return Status(Health.PROGRESSING, "rolling update in progress")
    return Status(Health.HEALTHY)


def daemonset_health(obj: Mapping[str, Any]) -> Status:
    """Not observed → progressing; not every node updated or available → progressing; else healthy."""
    if not _observed(obj):
        return Status(Health.PROGRESSING, "waiting for the new spec to be observed")
    counts = replica_counts(obj)
    if counts["updated"] < counts["desired"]:
        return Status(Health.PROGRESSING, f"{counts['updated']} of {counts['desired']} pods updated")
    if counts["available"] < counts["desired"]:
        return Status(Health.PROGRESSING, f"{counts['available']} of {counts['desired']} pods available")
    return Status(Health.HEALTHY)


def pod_problem(obj: Mapping[str, Any]) -> str | None:
    """Why a pod is failing, from its container statuses and conditions (None: nothing wrong)."""
    status = obj.get("status") or {}
    containers = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    for container in containers:
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in BROKEN_WAITING:
            message = f": {waiting['message']}" if waiting.get("message") else ""
            return f"{container.get('name')}: {waiting['reason']}{message}"[:300]
        terminated = state.get("terminated") or {}
        if terminated and _int(terminated.get("exitCode")) != 0 and (obj.get("spec") or {}).get("restartPolicy", "Always") != "Never":
            return f"{container.get('name')}: exited {terminated.get('exitCode')} ({terminated.get('reason') or 'Error'})"
    return None


def pod_health(obj: Mapping[str, Any]) -> Status:
    """Succeeded → healthy; Failed → failed; a container broken (:data:`BROKEN_WAITING`, or
    exited non-zero and restarting) → degraded; Pending (unscheduled or starting) → progressing;
    Running but not Ready (probes failing or starting) → progressing; else healthy."""
    status = obj.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return Status(Health.HEALTHY, "completed")
    if phase == "Failed":
        return Status(Health.FAILED, status.get("reason") or status.get("message") or "pod failed")
    problem = pod_problem(obj)
    if problem:
        return Status(Health.DEGRADED, problem)
    conditions = _conditions(obj)
    if phase == "Pending" or phase is None:
        scheduled = conditions.get("PodScheduled") or {}
        if scheduled.get("status") == "False":
            return Status(Health.PROGRESSING, f"Pending: {scheduled.get('reason') or 'not scheduled'}"
                                              f"{': ' + scheduled['message'] if scheduled.get('message') else ''}"[:300])
        return Status(Health.PROGRESSING, "Pending")
    if phase == "Running":
        ready = conditions.get("Ready") or {}
        if ready.get("status") != "True":
            return Status(Health.PROGRESSING, f"not ready{': ' + ready['reason'] if ready.get('reason') else ''}")
        return Status(Health.HEALTHY)
    return Status(Health.UNKNOWN, f"pod phase {phase}")


def job_health(obj: Mapping[str, Any]) -> Status:
    conditions = _conditions(obj)
    if (conditions.get("Failed") or {}).get("status") == "True":
        return Status(Health.FAILED, conditions["Failed"].get("reason") or "job failed")
    if (conditions.get("Complete") or {}).get("status") == "True":
        return Status(Health.HEALTHY, "completed")
    return Status(Health.PROGRESSING, "running")


def restarts(pod: Mapping[str, Any]) -> int:
    return sum(_int(c.get("restartCount")) for c in (pod.get("status") or {}).get("containerStatuses") or [])


#: helm's release statuses (``helm status``): deployed is the only settled good one.
RELEASE_HEALTH = {
    "deployed": Health.HEALTHY,
    "failed": Health.FAILED,
    "pending-install": Health.PROGRESSING,
    "pending-upgrade": Health.PROGRESSING,
    "pending-rollback": Health.PROGRESSING,
    "uninstalling": Health.PROGRESSING,
    "superseded": Health.UNKNOWN,  # only an old revision is superseded; the current one never is
    "uninstalled": Health.MISSING,
}


def release_health(status: str | None) -> Status:
    """A helm release's status: deployed → healthy, failed → failed, pending-* → progressing."""
    health = RELEASE_HEALTH.get(status or "", Health.UNKNOWN)
    return Status(health, None if health is Health.HEALTHY else f"helm release {status or 'status unknown'}")


CHECKS = {"Deployment": deployment_health, "StatefulSet": statefulset_health, "DaemonSet": daemonset_health,
          "Pod": pod_health, "Job": job_health}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def object_health(obj: Mapping[str, Any]) -> Status:
    check = CHECKS.get(obj.get("kind") or "")
    return check(obj) if check else Status(Health.HEALTHY)  # Services, ConfigMaps...: present is healthy


# --- which service an object belongs to -----------------------------------------------------------

LABEL_CHART = "helm.sh/chart"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"


def chart_name(chart_label: str) -> str:
    """``orders-1.2.0`` → ``orders`` (the version starts at the last ``-<digit>``)."""
    parts = chart_label.split("-")
    for index in range(len(parts) - 1, 0, -1):
        if parts[index][:1].isdigit():
            return "-".join(parts[:index])
    return chart_label


def service_of(labels: Mapping[str, str], services: Iterable[str], releases: Mapping[str, str]) -> str | None:
    """The service an object belongs to, among a namespace's ``services``: the chart of its
    ``helm.sh/chart`` label, else its ``app.kubernetes.io/name``, if that is one of them (an
    umbrella's subcharts are the services); else the service whose own release its
    ``app.kubernetes.io/instance`` names (``releases``: release → service; a service chart's own
    dependencies belong to it). None: not stackyard's to attribute."""
    known = services if isinstance(services, (set, frozenset, dict)) else set(services)
    for candidate in (chart_name(labels[LABEL_CHART]) if labels.get(LABEL_CHART) else None, labels.get(LABEL_NAME)):
        if candidate and candidate in known:
            return candidate
    instance = labels.get(LABEL_INSTANCE)
    return releases.get(instance) if instance else None


# --- assessing a namespace ------------------------------------------------------------------------


@dataclass
class ServiceHealth:
    """One service in one stack: the rolled-up status, and what it is made of."""

    status: Status
    workloads: list[dict[str, Any]] = field(default_factory=list)
    pods: int = 0
    pods_ready: int = 0
    restarts: int = 0
    failing: list[dict[str, str]] = field(default_factory=list)  # pod name + why
    release: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)  # recent warning Events, newest first
    image_mismatch: list[dict[str, str]] = field(default_factory=list)  # containers not at their pinned digest

    def summary(self) -> dict[str, Any]:
        out = {**self.status.to_dict(), "pods": self.pods, "ready": self.pods_ready, "restarts": self.restarts}
        if self.failing:
            out["failing"] = self.failing[:5]
        if self.image_mismatch:
            out["image_mismatch"] = self.image_mismatch[:10]
        if self.events:
            out["warnings"] = len(self.events)
        return out


def _ref(obj: Mapping[str, Any]) -> tuple[str, str]:
    return obj.get("kind") or "", (obj.get("metadata") or {}).get("name") or ""


def _owner(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller", True):
            return owner.get("kind") or "", owner.get("name") or ""
    return None


class Attribution:
    """Which deployed service each live object of a namespace belongs to: by its labels
    (:func:`service_of`), else by its controller's (``ownerReferences``, up to three levels)."""

    def __init__(self, objects: Sequence[Mapping[str, Any]], deployed: Mapping[str, Mapping[str, Any]]) -> None:
        self.services = set(deployed)
        self.releases = {entry.get("release"): service for service, entry in deployed.items()
                         if entry.get("release") == service}
        self.by_ref = {_ref(obj): obj for obj in objects}
        self._memo: dict[tuple[str, str], str | None] = {}

    def service_of(self, obj: Mapping[str, Any], depth: int = 0) -> str | None:
        ref = _ref(obj)
        if ref in self._memo:
            return self._memo[ref]
        found = service_of((obj.get("metadata") or {}).get("labels") or {}, self.services, self.releases)
        if found is None and depth < 3:
            owner = _owner(obj)
            parent = self.by_ref.get(owner) if owner else None
            found = self.service_of(parent, depth + 1) if parent is not None else None
        self._memo[ref] = found
        return found

    def controller(self, pod: Mapping[str, Any]) -> tuple[str, str] | None:
        """A pod's workload (Deployment through its ReplicaSet, StatefulSet, DaemonSet, Job)."""
        owner = _owner(pod)
        if owner and owner[0] == "ReplicaSet" and owner in self.by_ref:
            return _owner(self.by_ref[owner]) or owner
        return owner


def resource_tree(objects: Sequence[Mapping[str, Any]], deployed: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Per service: its workloads with their pods, its Services and Ingresses (named fields only);
    objects no deployed service claims are listed under ``unattributed``."""
    attribute = Attribution(objects, deployed)
    tree: dict[str, dict[str, list]] = {}

    def node(service: str | None) -> dict[str, list]:
        return tree.setdefault(service or "unattributed", {"workloads": [], "services": [], "ingresses": []})

    workloads: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in objects:
        kind, name = _ref(obj)
        if kind in WORKLOAD_KINDS:
            entry = {"kind": kind, "name": name, **replica_counts(obj), **object_health(obj).to_dict(), "pods": []}
            workloads[(kind, name)] = entry
            node(attribute.service_of(obj))["workloads"].append(entry)
        elif kind == "Service":
            spec = obj.get("spec") or {}
            node(attribute.service_of(obj))["services"].append({
                "name": name, "type": spec.get("type", "ClusterIP"),
                "ports": [f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []]})
        elif kind == "Ingress":
            rules = (obj.get("spec") or {}).get("rules") or []
            node(attribute.service_of(obj))["ingresses"].append({"name": name, "hosts": [r.get("host") for r in rules if r.get("host")]})
    for obj in objects:
        if obj.get("kind") != "Pod":
            continue
        status = pod_health(obj)
        pod = {"name": _ref(obj)[1], "phase": (obj.get("status") or {}).get("phase"), "restarts": restarts(obj),
               **status.to_dict()}
        parent = workloads.get(attribute.controller(obj) or ("", ""))
        if parent is not None:
            parent["pods"].append(pod)
        else:
            node(attribute.service_of(obj)).setdefault("pods", []).append(pod)
    return tree


def event_summary(event: Mapping[str, Any]) -> dict[str, Any]:
    """The named fields of an Event the page shows."""
    involved = event.get("involvedObject") or event.get("regarding") or {}
    return {"reason": event.get("reason"), "message": (event.get("message") or event.get("note") or "")[:300],
            "object": f"{involved.get('kind')}/{involved.get('name')}", "count": _int(event.get("count"), 1),
            "at": event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp")}


def _probe_failed(events: Sequence[Mapping[str, Any]]) -> str | None:
    for event in events:
        message = event.get("message") or ""
        if event.get("reason") == "Unhealthy" and "probe failed" in message:
            return message[:300]
    return None


def assess_namespace(objects: Sequence[Mapping[str, Any]], deployed: Mapping[str, Mapping[str, Any]],
                     events: Sequence[Mapping[str, Any]] = (),
                     pinned: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, ServiceHealth]:
    """Per deployed service of one namespace (``deployed``: service → ``{"status", "release"}``, as
    :func:`stackyard.core.fleet.deployed_services` returns), its health from the namespace's
    live ``objects`` (workloads, ReplicaSets, pods; any order) and warning ``events``: a pod
    running but not ready whose probe a warning Event says failed is degraded, not progressing.
    ``pinned``: per service, the image digests L3 pins for its deployed version; its pods'
    containers that run another digest are listed in ``image_mismatch``."""
    attribute = Attribution(objects, deployed)
    by_ref, service_for = attribute.by_ref, attribute.service_of
    out = {service: ServiceHealth(Status(Health.HEALTHY), release=entry.get("release"))
           for service, entry in deployed.items()}
    statuses: dict[str, list[Status]] = {service: [release_health(entry.get("status"))]
                                         for service, entry in deployed.items()}

    warnings: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for event in sorted(events, key=lambda e: str(event_summary(e)["at"] or ""), reverse=True):
        involved = event.get("involvedObject") or event.get("regarding") or {}
        warnings.setdefault((involved.get("kind") or "", involved.get("name") or ""), []).append(event)
    for ref, found in warnings.items():
        obj = by_ref.get(ref)
        service = service_for(obj) if obj is not None else None
        if service is not None:
            out[service].events.extend(event_summary(e) for e in found)
    for obj in objects:
        if obj.get("kind") != "Pod":
            continue
        service = service_for(obj)
        if service is None:
            continue
        entry, status = out[service], pod_health(obj)
        if pinned and pinned.get(service):
            entry.image_mismatch.extend(image_mismatches(obj, pinned[service]))
        if status.health is Health.PROGRESSING and (status.reason or "").startswith("not ready"):
            probe = _probe_failed(warnings.get(_ref(obj), ()))
            if probe:
                status = Status(Health.DEGRADED, probe)
        entry.pods += 1
        entry.restarts += restarts(obj)
        if status.health is Health.HEALTHY:
            entry.pods_ready += 1
        elif status.health in (Health.DEGRADED, Health.FAILED) or (status.reason or "").startswith("Pending:"):
            entry.failing.append({"pod": _ref(obj)[1], "reason": status.reason or status.health.value})
        statuses[service].append(status)
    for obj in objects:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        service = service_for(obj)
        if service is None:
            continue
        status, counts = object_health(obj), replica_counts(obj)
        out[service].workloads.append({"kind": obj["kind"], "name": _ref(obj)[1], **counts, **status.to_dict()})
        statuses[service].append(status)
    for service, entry in out.items():
        if not entry.workloads and not entry.pods and deployed[service].get("status") == "deployed":
            statuses[service].append(Status(Health.MISSING, "the release runs no workload or pod"))
        entry.status = worst(statuses[service])
        entry.events.sort(key=lambda e: str(e["at"] or ""), reverse=True)
    return out


def running_digest(image_id: str | None) -> str | None:
    """The digest in a container status's ``imageID`` (``docker-pullable://repo@sha256:…`` from
    dockershim, ``repo@sha256:…`` from containerd); None when it names none (not pulled yet, or a
    bare local image ID, which is not a registry digest)."""
    if not image_id or "@" not in image_id:
        return None
    digest = image_id.rsplit("@", 1)[1]
    return digest if digest.startswith(("sha256:", "sha512:")) else None


def _repository(reference: str) -> str | None:
    try:
        return parse_image(reference).name
    except InputError:
        return None


def image_mismatches(pod: Mapping[str, Any], pinned: Mapping[str, str]) -> list[dict[str, str]]:
    """The containers (init containers included) of ``pod`` whose running digest is not the one
    ``pinned`` (image reference → digest, as L3 pins them) has for their image. A container runs
    either the pinned reference itself (a tag) or its repository at a digest (``pin_images``); one
    whose repository L3 does not pin, or whose digest is not known yet, is not judged."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    images = {c.get("name"): c.get("image") for key in ("initContainers", "containers")
              for c in spec.get(key) or () if isinstance(c, Mapping)}
    by_repository: dict[str, set[str]] = {}
    for reference, digest in pinned.items():
        repository = _repository(reference)
        if repository:
            by_repository.setdefault(repository, set()).add(digest)
    found = []
    for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
        running = running_digest(cs.get("imageID"))
        image = images.get(cs.get("name")) or cs.get("image")
        if running is None or not isinstance(image, str):
            continue
        if image in pinned:
            expected = {pinned[image]}
        else:
            expected = by_repository.get(_repository(image) or "", set())
        if expected and running not in expected:
            found.append({"pod": _ref(pod)[1], "container": str(cs.get("name")), "image": image,
                          "running": running, "pinned": ", ".join(sorted(expected))})
    return found


def stack_health(services: Mapping[str, ServiceHealth | Status]) -> Status:
    """A stack's health: its worst service's (no service: unknown)."""
    return worst((s.status if isinstance(s, ServiceHealth) else s) for s in services.values())


def counts_by_health(statuses: Iterable[Status]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status.health.value] = counts.get(status.health.value, 0) + 1
    return counts
