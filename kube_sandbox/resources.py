"""The resource types the sandbox serves: built-in kinds plus kinds of CRDs created through it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

STATUS = "status"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = (STATUS,)
    categories: tuple[str, ...] = ()
    model: str | None = None  # name of the kubernetes-client model, for schemas
    crd: bool = False
    schema: dict | None = field(default=None, compare=False, hash=False)  # CRD openAPIV3Schema

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: every version of a group/resource shares one store."""
        return (self.group, self.plural)

    @property
    def gv_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


def _rt(gv: str, kind: str, plural: str, namespaced: bool = True, short=(), sub=(STATUS,), cat=(), model=None):
    group, _, version = gv.rpartition("/")
    if not model:
        model = ("V1" if version == "v1" else version[0].upper() + version[1:]) + kind
    return ResourceType(group, version, kind, plural, namespaced, tuple(short), tuple(sub), tuple(cat), model)


ALL = ("all",)
BUILTIN: tuple[ResourceType, ...] = (
    _rt("v1", "Namespace", "namespaces", False, ["ns"], ("status", "finalize")),
    _rt("v1", "ConfigMap", "configmaps", short=["cm"], sub=()),
    _rt("v1", "Secret", "secrets", sub=()),
    _rt("v1", "Service", "services", short=["svc"], sub=("status", "proxy"), cat=ALL),
    _rt("v1", "ServiceAccount", "serviceaccounts", short=["sa"], sub=("token",)),
    _rt("v1", "Pod", "pods", short=["po"], sub=("status", "log", "exec", "attach", "eviction", "portforward",
                                               "ephemeralcontainers"), cat=ALL),
    _rt("v1", "Event", "events", short=["ev"], sub=(), model="CoreV1Event"),
    _rt("v1", "Endpoints", "endpoints", short=["ep"], sub=()),
    _rt("v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=["pvc"]),
    _rt("v1", "PersistentVolume", "persistentvolumes", False, ["pv"]),
    _rt("v1", "Node", "nodes", False, ["no"]),
    _rt("v1", "LimitRange", "limitranges", short=["limits"], sub=()),
    _rt("v1", "ResourceQuota", "resourcequotas", short=["quota"]),
    _rt("apps/v1", "Deployment", "deployments", short=["deploy"], sub=("status", "scale"), cat=ALL),
    _rt("apps/v1", "ReplicaSet", "replicasets", short=["rs"], sub=("status", "scale"), cat=ALL),
    _rt("apps/v1", "StatefulSet", "statefulsets", short=["sts"], sub=("status", "scale"), cat=ALL),
    _rt("apps/v1", "DaemonSet", "daemonsets", short=["ds"], cat=ALL),
    _rt("apps/v1", "ControllerRevision", "controllerrevisions", sub=()),
    _rt("batch/v1", "Job", "jobs", cat=ALL),
    _rt("batch/v1", "CronJob", "cronjobs", short=["cj"], cat=ALL),
    _rt("networking.k8s.io/v1", "Ingress", "ingresses", short=["ing"]),
    _rt("networking.k8s.io/v1", "IngressClass", "ingressclasses", False, sub=()),
    _rt("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", short=["netpol"], sub=()),
    _rt("rbac.authorization.k8s.io/v1", "Role", "roles", sub=()),
    _rt("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", sub=()),
    _rt("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False, sub=()),
    _rt("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False, sub=()),
    _rt("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=["hpa"], cat=ALL),
    _rt("autoscaling/v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=["hpa"], cat=ALL),
    _rt("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", short=["pdb"]),
    _rt("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions", False,
        ["crd", "crds"]),
    _rt("storage.k8s.io/v1", "StorageClass", "storageclasses", False, ["sc"], sub=()),
    _rt("coordination.k8s.io/v1", "Lease", "leases", sub=()),
)

# Preferred version per group (first listed wins), as the API server advertises them.
PREFERRED_FIRST = {"autoscaling": "v2"}


class Registry:
    """Thread-safe catalogue of served resource types, keyed several ways for fast routing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: list[ResourceType] = []
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self.generation = 0
        for rt in BUILTIN:
            self._add(rt)

    def _add(self, rt: ResourceType) -> None:
        self._types = [t for t in self._types if (t.group, t.version, t.plural) != (rt.group, rt.version, rt.plural)]
        self._types.append(rt)
        self._by_path[(rt.group, rt.version, rt.plural)] = rt
        self.generation += 1

    def add_crd_types(self, crd_name: str, types: list[ResourceType]) -> None:
        with self._lock:
            self._remove_crd(crd_name)
            for rt in types:
                self._add(rt)

    def _remove_crd(self, crd_name: str) -> None:
        group = crd_name.partition(".")[2]
        plural = crd_name.partition(".")[0]
        gone = [t for t in self._types if t.crd and t.group == group and t.plural == plural]
        for t in gone:
            self._types.remove(t)
            self._by_path.pop((t.group, t.version, t.plural), None)
        if gone:
            self.generation += 1

    def remove_crd(self, crd_name: str) -> None:
        with self._lock:
            self._remove_crd(crd_name)

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def types(self) -> list[ResourceType]:
        return list(self._types)

    def group_versions(self) -> dict[str, list[str]]:
        """``{group: [versions, preferred first]}`` in registration order; core group is ``""``."""
        out: dict[str, list[str]] = {}
        for t in self._types:
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        for group, pref in PREFERRED_FIRST.items():
            if pref in out.get(group, []):
                out[group].remove(pref)
                out[group].insert(0, pref)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types if t.group == group and t.version == version]

    def for_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for t in self._types:
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None


def crd_types(crd: dict) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition object declares (served versions)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for v in spec.get("versions") or []:
        if not v.get("served", True):
            continue
        subs = tuple(k for k in (v.get("subresources") or {}) if k in ("status", "scale"))
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        out.append(ResourceType(
            group=spec.get("group", ""), version=v.get("name", "v1"), kind=names.get("kind", ""),
            plural=names.get("plural", ""), namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames") or ()), subresources=subs,
            categories=tuple(names.get("categories") or ()), model=None, crd=True, schema=schema))
    return out
