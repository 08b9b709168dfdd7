"""Discovery documents (legacy and aggregated v2), OpenAPI v3, server-side unknown-field
validation and the Table rendering kubectl asks for."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

from .patch import MERGE_KEYS, PRIMITIVE_SETS
from .schema import json_path
from .resources import Registry, ResourceType, data

log = logging.getLogger(__name__)
AGG_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
VERSION = {"major": "1", "minor": "35", "emulationMajor": "1", "emulationMinor": "35",
           "minCompatibilityMajor": "1", "minCompatibilityMinor": "34", "gitVersion": "v1.35.0-kube-sandbox",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25", "compiler": "gc",
           "platform": "linux/amd64"}


@lru_cache(maxsize=1)
def models() -> dict[str, dict[str, str]]:
    """Field types of every API model; empty (generic schemas, no strict checks) if the data file
    was not installed with the package."""
    try:
        return data()["models"]
    except FileNotFoundError:
        log.warning("kube_sandbox/data/models.json missing: serving schema-less OpenAPI documents")
        return {}


# ----------------------------------------------------------------------------- discovery
def api_versions(host: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]}


def _group_doc(group: str, versions: list[str]) -> dict:
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(reg: Registry) -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group_doc(g, vs) for g, vs in reg.group_versions().items() if g]}


def api_group(reg: Registry, group: str) -> dict | None:
    vs = reg.group_versions().get(group)
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, vs)} if vs else None


def resource_list(reg: Registry, group: str, version: str) -> dict | None:
    types = reg.in_group_version(group, version)
    if not types:
        return None
    res = []
    for t in types:
        r = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
             "verbs": list(t.verbs), "storageVersionHash": hashlib.sha256(t.plural.encode()).hexdigest()[:12]}
        if t.short_names:
            r["shortNames"] = list(t.short_names)
        if t.categories:
            r["categories"] = list(t.categories)
        res.append(r)
        for s in t.subresources:
            kind = "Scale" if s == "scale" else t.kind
            res.append({"name": f"{t.plural}/{s}", "singularName": "", "namespaced": t.namespaced,
                        "kind": kind, "verbs": list(t.verbs_of(s))})
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}


def aggregated(reg: Registry, core: bool) -> dict:
    items = []
    for group, versions in reg.group_versions().items():
        if (group == "") != core:
            continue
        vdocs = []
        for v in versions:
            resources = []
            for t in reg.in_group_version(group, v):
                r = {"resource": t.plural, "responseKind": {"group": group, "version": v, "kind": t.kind},
                     "scope": "Namespaced" if t.namespaced else "Cluster", "singularResource": t.singular,
                     "verbs": list(t.verbs)}
                if t.short_names:
                    r["shortNames"] = list(t.short_names)
                if t.categories:
                    r["categories"] = list(t.categories)
                if t.subresources:
                    r["subresources"] = [
                        {"subresource": s, "verbs": list(t.verbs_of(s)),
                         "responseKind": {"group": "autoscaling" if s == "scale" else group,
                                          "version": "v1" if s == "scale" else v,
                                          "kind": "Scale" if s == "scale" else t.kind}}
                        for s in t.subresources]
                resources.append(r)
            vdocs.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vdocs})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": items}


# ----------------------------------------------------------------------------- OpenAPI v3
def gv_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_index(reg: Registry) -> dict:
    paths = {}
    for group, versions in reg.group_versions().items():
        for v in versions:
            key = gv_key(group, v)
            h = hashlib.sha256(f"{key}:{reg.generation}".encode()).hexdigest()[:32].upper()
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={h}"}
    paths["version"] = {"serverRelativeURL": "/openapi/v3/version?hash=0"}
    return {"paths": paths}


def _schema_name(model: str) -> str:
    return f"io.k8s.sandbox.{model}"


def _type_schema(t: str, field: str, need: set[str]) -> dict:
    if t.startswith("list["):
        inner = t[5:-1]
        s: dict = {"type": "array", "items": _type_schema(inner, "", need)}
        if field in PRIMITIVE_SETS:
            s["x-kubernetes-patch-strategy"] = "merge"
            s["x-kubernetes-list-type"] = "set"
        elif (key := MERGE_KEYS.get(field)) or field == "ports":
            key = key or ("containerPort" if inner == "V1ContainerPort" else "port")
            s.update({"x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": "merge",
                      "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": [key]})
        return s
    if t.startswith(("dict(", "dict[")):  # the client spells maps dict[str, T]
        inner = t[5:-1].split(",", 1)[1].strip()
        return {"type": "object", "additionalProperties": _type_schema(inner, "", need)}
    prim = {"str": {"type": "string"}, "int": {"type": "integer", "format": "int64"},
            "bool": {"type": "boolean"}, "float": {"type": "number", "format": "double"},
            "datetime": {"type": "string", "format": "date-time"}, "date": {"type": "string", "format": "date"},
            "object": {"x-kubernetes-preserve-unknown-fields": True}}
    if t in prim:
        return dict(prim[t])
    need.add(t)
    return {"allOf": [{"$ref": f"#/components/schemas/{_schema_name(t)}"}]}


def _model_schema(model: str, need: set[str]) -> dict:
    props = {f: _type_schema(t, f, need) for f, t in models().get(model, {}).items()}
    return {"type": "object", "properties": props}


def openapi_doc(reg: Registry, group: str, version: str) -> dict | None:
    types = reg.in_group_version(group, version)
    if not types:
        return None
    paths: dict = {}
    schemas: dict = {}
    need: set[str] = set()
    for t in types:
        gvk = {"group": group, "version": version, "kind": t.kind}
        base = t.gv_path + ("/namespaces/{namespace}" if t.namespaced else "") + f"/{t.plural}"
        ref = {"$ref": f"#/components/schemas/{_schema_name(t.model or t.kind)}"}
        body = {"content": {ct: {"schema": ref} for ct in ("application/json", "application/yaml")}}
        # custom resources take no strategic merge patch: kubectl reads this to choose merge patch instead
        patch_body = {"content": {ct: {"schema": {"type": "object"}} for ct in (
            "application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
            *(() if t.crd else ("application/strategic-merge-patch+json",)))}}
        q = [{"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
             for n in ("dryRun", "fieldManager", "fieldValidation")]
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}

        def op(action: str, **extra):
            return {"operationId": f"{action}{t.kind}", "responses": ok, "x-kubernetes-action": action,
                    "x-kubernetes-group-version-kind": gvk, **extra}

        paths[base] = {"get": op("list"), "post": op("post", parameters=q, requestBody=body),
                       "delete": op("deletecollection")}
        paths[base + "/{name}"] = {
            "get": op("get"), "put": op("put", parameters=q, requestBody=body),
            "patch": op("patch", parameters=q + [{"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                        requestBody=patch_body),
            "delete": op("delete", parameters=q[:1])}
        for s in t.subresources:
            if s in ("status", "scale"):
                paths[base + "/{name}/" + s] = {"get": op("get"), "put": op("put", parameters=q, requestBody=body),
                                                "patch": op("patch", parameters=q, requestBody=patch_body)}
        if t.crd:
            sch = dict(t.schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
            props = dict(sch.get("properties") or {})
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            props["metadata"] = {"allOf": [{"$ref": f"#/components/schemas/{_schema_name('V1ObjectMeta')}"}]}
            need.add("V1ObjectMeta")
            sch["properties"] = props
        else:
            sch = _model_schema(t.model, need)
        sch["x-kubernetes-group-version-kind"] = [gvk]
        schemas[_schema_name(t.model or t.kind)] = sch
    done = set(schemas)
    while need:
        m = need.pop()
        name = _schema_name(m)
        if name in done:
            continue
        done.add(name)
        schemas[name] = _model_schema(m, need)
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (kube-sandbox)", "version": "v1.35.0"},
            "paths": paths, "components": {"schemas": schemas}}


def openapi_v2(reg: Registry) -> dict:
    """Swagger 2.0 JSON: the v3 documents' schemas under ``definitions`` (what ``Accept: application/json``
    readers of ``/openapi/v2`` get; client-go's protobuf request gets ``protobuf.openapi_v2_stub``)."""
    paths: dict = {}
    defs: dict = {}
    for group, versions in reg.group_versions().items():
        for v in versions:
            doc = openapi_doc(reg, group, v)
            if doc:
                paths.update(doc["paths"])
                defs.update(doc["components"]["schemas"])
    text = json.dumps({"swagger": "2.0", "info": {"title": "Kubernetes (kube-sandbox)", "version": "v1.35.0"},
                       "paths": {}, "definitions": defs})
    out = json.loads(text.replace('"#/components/schemas/', '"#/definitions/'))
    out["paths"] = {p: {m: {k: v for k, v in op.items() if k not in ("requestBody", "responses")}
                        for m, op in item.items()} for p, item in paths.items()}
    return out


# ----------------------------------------------------------------------------- validation
class Validator:
    """Finds fields a schema does not declare (what ``fieldValidation=Strict`` rejects)."""

    def unknown_fields(self, rt: ResourceType, obj: dict) -> list[str]:
        out: list[str] = []
        if rt.crd:
            if rt.schema:
                self._walk_schema(rt.schema, obj, "", out, top=True)
        elif rt.model in models():
            self._walk_model(rt.model, obj, "", out)
        return out

    def _walk_model(self, model: str, obj, path: str, out: list) -> None:
        fields = models().get(model)
        if fields is None or not isinstance(obj, dict):
            return
        for k, v in obj.items():
            t = fields.get(k)
            p = f"{path}.{k}" if path else k
            if t is None:
                out.append(p)
            else:
                self._walk_type(t, v, p, out)

    def _walk_type(self, t: str, v, path: str, out: list) -> None:
        if t.startswith("list[") and isinstance(v, list):
            for i, item in enumerate(v):
                self._walk_type(t[5:-1], item, f"{path}[{i}]", out)
        elif t.startswith(("dict(", "dict[")) and isinstance(v, dict):
            inner = t[5:-1].split(",", 1)[1].strip()
            for k, item in v.items():
                self._walk_type(inner, item, f"{path}.{k}", out)
        elif t in models():
            self._walk_model(t, v, path, out)

    def _walk_schema(self, sch: dict, obj, path: str, out: list, top: bool = False) -> None:
        if not isinstance(sch, dict) or sch.get("x-kubernetes-preserve-unknown-fields"):
            return
        if isinstance(obj, dict):
            props = sch.get("properties")
            if top:
                if isinstance(obj.get("metadata"), dict):
                    self._walk_model("V1ObjectMeta", obj["metadata"], "metadata", out)
                obj = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
            if props is None:
                if isinstance(sch.get("additionalProperties"), dict):
                    for k, v in obj.items():
                        self._walk_schema(sch["additionalProperties"], v, f"{path}.{k}" if path else k, out)
                return
            for k, v in obj.items():
                p = f"{path}.{k}" if path else k
                if k not in props:
                    out.append(p)
                else:
                    self._walk_schema(props[k], v, p, out)
        elif isinstance(obj, list) and isinstance(sch.get("items"), dict):
            for i, item in enumerate(obj):
                self._walk_schema(sch["items"], item, f"{path}[{i}]", out)


# ----------------------------------------------------------------------------- tables
def _age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    try:
        t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return "<unknown>"
    s = max(0, int(time.time() - t))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _g(obj, *path, default=None):
    for p in path:
        obj = obj.get(p) if isinstance(obj, dict) else None
    return default if obj is None else obj


def _pod_cells(o):
    cs = _g(o, "status", "containerStatuses", default=[])
    n = len(_g(o, "spec", "containers", default=[]))
    ready = sum(1 for c in cs if c.get("ready"))
    return [f"{ready}/{n}", _g(o, "status", "phase", default="Pending"),
            sum(c.get("restartCount", 0) for c in cs)]


COLUMNS = {
    "namespaces": (["Status"], lambda o: [_g(o, "status", "phase", default="Active")]),
    "pods": (["Ready", "Status", "Restarts"], _pod_cells),
    "deployments": (["Ready", "Up-to-date", "Available"], lambda o: [
        f"{_g(o, 'status', 'readyReplicas', default=0)}/{_g(o, 'spec', 'replicas', default=1)}",
        _g(o, "status", "updatedReplicas", default=0), _g(o, "status", "availableReplicas", default=0)]),
    "statefulsets": (["Ready"], lambda o: [
        f"{_g(o, 'status', 'readyReplicas', default=0)}/{_g(o, 'spec', 'replicas', default=1)}"]),
    "replicasets": (["Desired", "Current", "Ready"], lambda o: [
        _g(o, "spec", "replicas", default=1), _g(o, "status", "replicas", default=0),
        _g(o, "status", "readyReplicas", default=0)]),
    "daemonsets": (["Desired", "Current", "Ready"], lambda o: [
        _g(o, "status", "desiredNumberScheduled", default=0), _g(o, "status", "currentNumberScheduled", default=0),
        _g(o, "status", "numberReady", default=0)]),
    "services": (["Type", "Cluster-IP", "Port(s)"], lambda o: [
        _g(o, "spec", "type", default="ClusterIP"), _g(o, "spec", "clusterIP", default="<none>"),
        ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in _g(o, "spec", "ports", default=[]))
        or "<none>"]),
    "jobs": (["Status", "Completions"], lambda o: [
        next((c["type"] for c in _g(o, "status", "conditions", default=[])
              if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"), "Running"),
        f"{_g(o, 'status', 'succeeded', default=0)}/{_g(o, 'spec', 'completions', default=1)}"]),
    "configmaps": (["Data"], lambda o: [len(_g(o, "data", default={})) + len(_g(o, "binaryData", default={}))]),
    "secrets": (["Type", "Data"], lambda o: [o.get("type", "Opaque"), len(_g(o, "data", default={}))]),
    "persistentvolumeclaims": (["Status", "Volume"], lambda o: [
        _g(o, "status", "phase", default="Pending"), _g(o, "spec", "volumeName", default="")]),
}


def _printer_cell(col: dict, o: dict):
    v = json_path(o, col.get("jsonPath", ""))
    if v is None:
        return None
    if col.get("type") == "date" and isinstance(v, str):
        return _age(v)
    if isinstance(v, (list, dict)):
        return ",".join(json.dumps(x) if isinstance(x, (dict, list)) else str(x)
                        for x in (v if isinstance(v, list) else [v]))
    return v


def _columns(rt: ResourceType):
    """(column definitions after Name, cells function): a CRD's additionalPrinterColumns, else ours + Age."""
    if rt.crd and rt.printer_columns:
        cols = [{"name": c.get("name", ""), "type": "string" if c.get("type") == "date" else c.get("type", "string"),
                 "format": c.get("format", ""), "description": c.get("description", ""),
                 "priority": c.get("priority", 0)} for c in rt.printer_columns]
        return cols, lambda o: [_printer_cell(c, o) for c in rt.printer_columns]
    extra_names, fn = COLUMNS.get(rt.plural, ([], lambda o: []))
    cols = [{"name": n, "type": "string", "format": "", "description": n, "priority": 0} for n in extra_names]
    cols.append({"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0})
    return cols, lambda o: [*fn(o), _age((o.get("metadata") or {}).get("creationTimestamp"))]


def _event_cells(o: dict) -> list:
    inv = o.get("involvedObject") or o.get("regarding") or {}
    last = o.get("lastTimestamp") or o.get("deprecatedLastTimestamp") or o.get("eventTime")
    return [_age(last[:19] + "Z" if last else None), o.get("type", ""), o.get("reason", ""),
            f"{(inv.get('kind') or '').lower()}/{inv.get('name', '')}", o.get("message") or o.get("note") or "",
            (o.get("metadata") or {}).get("name")]


# kubectl get events: the server's columns (Name last, priority 1, as a cluster has it)
EVENT_COLUMNS = [{"name": n, "type": "string", "format": "name" if n == "Name" else "", "description": n,
                  "priority": 1 if n == "Name" else 0}
                 for n in ("Last Seen", "Type", "Reason", "Object", "Message", "Name")]


def table(rt: ResourceType, objs: list[dict], rv: str, include: str = "Metadata", cont: str | None = None) -> dict:
    if rt.plural == "events":
        cols, fn = EVENT_COLUMNS, _event_cells
    else:
        extra, cells = _columns(rt)
        cols = [{"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}, *extra]
        fn = (lambda o, cells=cells: [(o.get("metadata") or {}).get("name"), *cells(o)])
    rows = []
    for o in objs:
        meta = o.get("metadata") or {}
        row: dict = {"cells": fn(o)}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
        rows.append(row)
    md: dict = {"resourceVersion": rv}
    if cont:
        md["continue"] = cont
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": md, "columnDefinitions": cols,
            "rows": rows}
