"""The resource types the sandbox serves: built-in kinds plus kinds of CRDs created through it."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

STATUS = "status"
# Resources that are another group's objects under other field names, as on a cluster.
SHARED_STORAGE = {("events.k8s.io", "events"): ("", "events")}
STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


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
    verbs: tuple[str, ...] = STANDARD_VERBS
    sub_verbs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    printer_columns: tuple = field(default=(), compare=False, hash=False)  # CRD additionalPrinterColumns

    def verbs_of(self, sub: str) -> tuple[str, ...]:
        return dict(self.sub_verbs).get(sub, ("get", "patch", "update"))

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: every version of a group/resource shares one store (events.k8s.io's with core's)."""
        return SHARED_STORAGE.get((self.group, self.plural), (self.group, self.plural))

    @property
    def gv_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"


DATA = Path(__file__).with_name("data") / "models.json"


@lru_cache(maxsize=1)
def data() -> dict:
    """``data/models.json``: the models (schemas) and the resource catalogue of the API (see gen_models)."""
    return json.loads(DATA.read_text())


# What the catalogue cannot know: short names and categories, as a cluster advertises them.
SHORT_NAMES = {
    "componentstatuses": ("cs",), "configmaps": ("cm",), "endpoints": ("ep",), "events": ("ev",),
    "limitranges": ("limits",), "namespaces": ("ns",), "nodes": ("no",), "persistentvolumeclaims": ("pvc",),
    "persistentvolumes": ("pv",), "pods": ("po",), "replicationcontrollers": ("rc",), "resourcequotas": ("quota",),
    "serviceaccounts": ("sa",), "services": ("svc",), "customresourcedefinitions": ("crd", "crds"),
    "daemonsets": ("ds",), "deployments": ("deploy",), "replicasets": ("rs",), "statefulsets": ("sts",),
    "horizontalpodautoscalers": ("hpa",), "cronjobs": ("cj",), "certificatesigningrequests": ("csr",),
    "ingresses": ("ing",), "networkpolicies": ("netpol",), "poddisruptionbudgets": ("pdb",),
    "priorityclasses": ("pc",), "storageclasses": ("sc",),
}
ALL = ("all",)
CATEGORIES = {p: ALL for p in ("pods", "services", "replicationcontrollers", "daemonsets", "deployments",
                               "replicasets", "statefulsets", "horizontalpodautoscalers", "cronjobs", "jobs")}
CATEGORIES.update({p: ("api-extensions",) for p in (
    "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies",
    "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
    "customresourcedefinitions", "apiservices")})


def _from_catalogue(r: dict) -> ResourceType:
    group, _, version = r["gv"].rpartition("/")
    subs = r.get("subresources") or {}
    return ResourceType(group, version, r["kind"], r["plural"], r["namespaced"],
                        SHORT_NAMES.get(r["plural"], ()), tuple(subs), CATEGORIES.get(r["plural"], ()),
                        r["model"], verbs=tuple(r["verbs"]),
                        sub_verbs=tuple((k, tuple(v)) for k, v in subs.items()))


def builtin_types() -> tuple[ResourceType, ...]:
    return tuple(_from_catalogue(r) for r in data()["resources"])


# Preferred version per group (first listed wins), as the API server advertises them.
PREFERRED_FIRST = {"autoscaling": "v2"}


class Registry:
    """Thread-safe catalogue of served resource types, keyed several ways for fast routing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._types: list[ResourceType] = []
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self.generation = 0
        for rt in builtin_types():
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
            categories=tuple(names.get("categories") or ()), model=None, crd=True, schema=schema,
            printer_columns=tuple(v.get("additionalPrinterColumns") or ())))
    return out


# ----------------------------------------------------------------------------- views of shared storage
# events.k8s.io/v1 Event field <- core/v1 Event field
_EVENT_FIELDS = (("regarding", "involvedObject"), ("note", "message"), ("reportingController", "reportingComponent"),
                 ("deprecatedSource", "source"), ("deprecatedFirstTimestamp", "firstTimestamp"),
                 ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"))
_EVENT_SAME = ("metadata", "reason", "type", "action", "related", "series", "eventTime", "reportingInstance")


def event_to_view(core: dict) -> dict:
    """A core/v1 Event as events.k8s.io/v1 serves it."""
    out = {k: core[k] for k in _EVENT_SAME if k in core}
    out.update({new: core[old] for new, old in _EVENT_FIELDS if old in core})
    out.setdefault("eventTime", core.get("firstTimestamp"))
    out.setdefault("reportingController", (core.get("source") or {}).get("component"))
    return {"kind": "Event", "apiVersion": "events.k8s.io/v1", **{k: v for k, v in out.items() if v is not None}}


def event_from_view(ev: dict) -> dict:
    out = {k: ev[k] for k in _EVENT_SAME if k in ev}
    out.update({old: ev[new] for new, old in _EVENT_FIELDS if new in ev})
    return {"kind": "Event", "apiVersion": "v1", **out}


VIEWS = {("events.k8s.io", "events"): (event_to_view, event_from_view)}
