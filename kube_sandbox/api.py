"""The verbs: create, get, list, update, patch (four kinds), delete, deletecollection.

Semantics follow the API server: resourceVersion preconditions (409), generation bumps on
spec changes, uid/creationTimestamp, managedFields, finalizers, namespace termination,
owner-reference garbage collection.  Every write goes through ``_commit``.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import uuid
from datetime import datetime, timezone

import yaml

from . import patch as P
from . import schema as S
from .errors import ApiError
from .resources import VIEWS, Registry, ResourceType
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import Entry, Store, dumps

NS_KEY = ("", "namespaces")
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _path_segment(name: str) -> list[str]:
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _regex_rule(rx, limit: int, what: str):
    def check(name: str) -> list[str]:
        errs = [] if rx.fullmatch(name) else [what]  # fullmatch: "evil\n" must not pass
        if len(name) > limit:
            errs.append(f"must be no more than {limit} characters")
        return errs
    return check


_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                  "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                  "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
              "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
              "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
_DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
                "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
NAME_RULES = {"subdomain": _regex_rule(_SUBDOMAIN, 253, _SUBDOMAIN_MSG), "label": _regex_rule(_LABEL, 63, _LABEL_MSG),
              "dns1035": _regex_rule(_DNS1035, 63, _DNS1035_MSG), "segment": _path_segment}
# How the API server validates metadata.name per resource (default: DNS subdomain; custom resources: path segment).
NAME_RULE_OF = {"namespaces": "label", "services": "dns1035", "roles": "segment", "rolebindings": "segment",
                "clusterroles": "segment", "clusterrolebindings": "segment",
                "certificatesigningrequests": "segment", "componentstatuses": "segment",
                "flowschemas": "segment", "prioritylevelconfigurations": "segment"}


def name_errors(rt: ResourceType, name: str) -> list[str]:
    rule = NAME_RULE_OF.get(rt.plural, "segment" if rt.crd else "subdomain")
    errs = NAME_RULES[rule](name)
    if rule == "segment" and _CONTROL.search(name):
        errs.append("must not contain control characters")
    return errs


def label_errors(labels: dict) -> list[tuple[str, str]]:
    out = []
    for k, v in labels.items():
        prefix, _, name = k.rpartition("/")
        if not _QUALIFIED.fullmatch(name) or len(name) > 63 or (prefix and not _SUBDOMAIN.fullmatch(prefix)):
            out.append(("metadata.labels", f'Invalid value: "{k}": name part must consist of alphanumeric characters, '
                                           "'-', '_' or '.', and must start and end with an alphanumeric character"))
        if not isinstance(v, str) or len(v) > 63 or not _LABEL_VALUE.fullmatch(v):
            out.append(("metadata.labels", f'Invalid value: "{v}": a valid label must be an empty string or consist '
                                           "of alphanumeric characters, '-', '_' or '.', and must start and end with "
                                           "an alphanumeric character, and be 63 characters or less"))
    return out


def _copy(obj):
    """A deep copy of JSON data (several times faster than copy.deepcopy)."""
    return json.loads(dumps(obj))


def drop_nulls(obj):
    """What decoding into Go types does to explicit nulls: the field is absent."""
    if isinstance(obj, dict):
        return {k: drop_nulls(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [drop_nulls(v) for v in obj]
    return obj
# Create-only kinds answer with a status and are not stored; there is no authentication or
# authorization, so every review allows.
_ALL_RULES = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
              "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": False}
_USER = {"username": "kube-sandbox", "groups": ["system:masters", "system:authenticated"]}
REVIEWS = {"tokenreviews": {"authenticated": True, "user": _USER}, "selfsubjectreviews": {"userInfo": _USER},
           "subjectaccessreviews": {"allowed": True, "reason": "kube-sandbox does not authorize"},
           "localsubjectaccessreviews": {"allowed": True, "reason": "kube-sandbox does not authorize"},
           "selfsubjectaccessreviews": {"allowed": True, "reason": "kube-sandbox does not authorize"},
           "selfsubjectrulesreviews": _ALL_RULES}
_GEN_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def now_str() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Api:
    def __init__(self, store: Store, registry: Registry, validator=None):
        self.store = store
        self.registry = registry
        self.validator = validator
        self._next_ip = 10 * 256 + 1  # 10.96.0.10 onwards
        self._by_key: tuple = (-1, {})  # (registry generation, storage key -> type)

    # ----------------------------------------------------------------- helpers
    def _check_namespace(self, rt: ResourceType, ns: str, creating: bool) -> None:
        if not rt.namespaced:
            return
        nsobj = self.store.get(NS_KEY, "", ns)
        if nsobj is None:
            raise ApiError(404, f'namespaces "{ns}" not found', details={"name": ns, "kind": "namespaces"})
        if creating and nsobj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, f"{rt.plural} \"\" is forbidden: unable to create new content in namespace "
                                f"{ns} because it is being terminated", "Forbidden",
                           {"name": "", "kind": rt.plural,
                            "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                        "message": f"namespace {ns} is being terminated"}]})

    def _validate(self, rt: ResourceType, obj: dict, params: dict) -> None:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            raise ApiError.invalid(rt, "", [("metadata", "Required value")])
        name = meta.get("name") or ""
        if not name:
            raise ApiError.invalid(rt, name, [("metadata.name", "Required value: name or generateName is required")])
        errs = name_errors(rt, name)
        if errs:
            raise ApiError.invalid(rt, name, [("metadata.name", f'Invalid value: "{name}": {e}') for e in errs])
        bad = label_errors(meta.get("labels") or {})
        if bad:
            raise ApiError.invalid(rt, name, bad)
        if rt.crd and rt.schema:
            return self._validate_custom(rt, obj, params)
        if self.validator is not None and params.get("fieldValidation", "Strict") != "Ignore":
            unknown = self.validator.unknown_fields(rt, obj)
            if unknown:
                msg = ", ".join(f'unknown field "{u}"' for u in unknown)
                if params.get("fieldValidation", "Strict") == "Strict":
                    raise ApiError.bad_request(f"strict decoding error: {msg}")

    def _validate_custom(self, rt: ResourceType, obj: dict, params: dict) -> None:
        """Custom resources: prune nulls, default, reject (Strict) or prune unknown fields, validate."""
        prepared = S.prepare(rt.schema, obj, top=True)
        obj.clear()
        obj.update(prepared)
        mode = params.get("fieldValidation", "Strict")
        unknown = S.unknown(rt.schema, obj, top=True, prune=mode != "Strict")
        if self.validator is not None and isinstance(obj.get("metadata"), dict):
            meta_unknown: list[str] = []
            self.validator._walk_model("V1ObjectMeta", obj["metadata"], "metadata", meta_unknown)
            unknown = meta_unknown + unknown
        if unknown and mode == "Strict":
            raise ApiError.bad_request("strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
        errs = S.validate(rt.schema, obj, top=True)
        if errs:
            raise ApiError.invalid(rt, obj["metadata"].get("name", ""), errs)

    def _defaults(self, rt: ResourceType, obj: dict) -> None:
        spec = obj.get("spec")
        p = rt.plural
        if p == "namespaces":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif p == "secrets":
            obj.setdefault("type", "Opaque")
            sd = obj.pop("stringData", None)
            if sd:
                data = obj.setdefault("data", {})
                for k, v in sd.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
        elif p == "services" and isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            if spec.get("clusterIP") != "None" and not spec.get("clusterIP"):
                spec["clusterIP"] = self._alloc_ip()
            if spec["clusterIP"] != "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
            obj.setdefault("status", {"loadBalancer": {}})
        elif p in ("deployments", "statefulsets", "replicasets") and isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            if p == "deployments":
                spec.setdefault("progressDeadlineSeconds", 600)
                spec.setdefault("strategy", {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
            if p == "statefulsets":
                spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
                spec.setdefault("podManagementPolicy", "OrderedReady")
        elif p == "pods":
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_str()}]}
        elif p == "persistentvolumeclaims":
            obj["status"] = {"phase": "Pending"}
        elif p == "jobs" and isinstance(spec, dict):
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("backoffLimit", 6)

    def _alloc_ip(self) -> str:
        n = self._next_ip
        self._next_ip += 1
        return f"10.96.{n // 256 % 256}.{n % 256}"

    def _commit(self, rt: ResourceType, obj: dict, type_: str, dry_run: bool) -> dict:
        obj["metadata"]["resourceVersion"] = str(self.store.rv + 1 if dry_run else self.store.next_rv())
        if dry_run:
            return obj
        self.store.put(rt.key, obj, type_)
        return obj

    def out(self, rt: ResourceType, obj: dict) -> dict:
        """The object as served under ``rt``'s version (versions share storage, unconverted)."""
        if obj.get("apiVersion") != rt.api_version:
            view = VIEWS.get((rt.group, rt.plural))
            obj = view[0](obj) if view else {**obj, "apiVersion": rt.api_version}
        return obj

    def _in(self, rt: ResourceType, body):
        """A request body under ``rt`` as stored (events.k8s.io/v1 Events are core/v1 Events)."""
        view = VIEWS.get((rt.group, rt.plural))
        return view[1](body) if view and isinstance(body, dict) else body

    # ----------------------------------------------------------------- reads
    def get(self, rt: ResourceType, ns: str, name: str) -> dict:
        obj = self.store.get(rt.key, ns if rt.namespaced else "", name)
        if obj is None:
            raise ApiError.not_found(rt, name)
        return self.out(rt, obj)

    def select(self, rt: ResourceType, ns: str | None, params: dict) -> list[Entry]:
        labels = parse_label_selector(params.get("labelSelector"))
        fields = parse_field_selector(params.get("fieldSelector"))
        out = []
        candidates = None
        # an equality requirement narrows the scan to the label index's (smallest) set
        eq = [r for r in labels if r.op == "in" and len(r.values) == 1]
        if eq:
            best = min(eq, key=lambda r: self.store.label_count(rt.key, r.key, next(iter(r.values))))
            candidates = self.store.by_label(rt.key, best.key, next(iter(best.values)))
            if ns is not None and rt.namespaced:
                candidates = [e for e in candidates if e.obj["metadata"].get("namespace") == ns]
        if candidates is None:
            candidates = self.store.entries(rt.key, ns if rt.namespaced else None)
        for e in candidates:
            meta = e.obj["metadata"]
            if labels and not labels_match(labels, meta.get("labels")):
                continue
            if fields and not fields_match(fields, e.obj):
                continue
            out.append(e)
        out.sort(key=lambda e: (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]))
        return out

    def list_raw(self, rt: ResourceType, ns: str | None, params: dict) -> bytes:
        with self.store.lock:
            entries = self.select(rt, ns, params)
            rv = self.store.rv
        limit = int(params.get("limit") or 0)
        meta: dict = {"resourceVersion": str(rv)}
        cont = params.get("continue")
        if cont:
            try:
                start = tuple(json.loads(base64.b64decode(cont)))
            except Exception as exc:
                raise ApiError.bad_request(f"invalid continue token: {exc}") from exc
            entries = [e for e in entries
                       if (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"]) > start]
        if limit and len(entries) > limit:
            last = entries[limit - 1].obj["metadata"]
            meta["continue"] = base64.b64encode(
                json.dumps([last.get("namespace", ""), last["name"]]).encode()).decode()
            meta["remainingItemCount"] = len(entries) - limit
            entries = entries[:limit]
        if any(e.obj.get("apiVersion") != rt.api_version for e in entries):
            items = b",".join(dumps(self.out(rt, e.obj)) for e in entries)
        else:
            items = b",".join(e.raw for e in entries)
        head = dumps({"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": meta})
        return head[:-1] + b',"items":[' + items + b"]}"

    # ----------------------------------------------------------------- create
    def create(self, rt: ResourceType, ns: str, body: dict, params: dict, manager: str) -> dict:
        if (rt.group, rt.plural) in VIEWS:  # stored as another group's object
            return self.out(rt, self.create(self._rt_for_key(rt.key), ns, self._in(rt, body), params, manager))
        obj = _copy(body) if rt.crd else drop_nulls(body)
        if not isinstance(obj, dict):
            raise ApiError.bad_request("request body must be an object")
        meta = obj.setdefault("metadata", {}) if isinstance(obj.get("metadata", {}), dict) else None
        if meta is None:
            raise ApiError.bad_request("metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choice(_GEN_CHARS) for _ in range(5))
        if rt.namespaced:
            if meta.get("namespace") and ns and meta["namespace"] != ns:
                raise ApiError.bad_request("the namespace of the provided object does not match the namespace "
                                           "sent on the request")
            meta["namespace"] = ns or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if "get" not in rt.verbs:  # reviews and bindings: answered, never stored
            return {**obj, "status": {**REVIEWS.get(rt.plural, {}), **(obj.get("status") or {})}}
        self._validate(rt, obj, params)
        with self.store.lock:
            self._check_namespace(rt, meta.get("namespace", ""), creating=True)
            if self.store.get(rt.key, meta.get("namespace", ""), meta["name"]) is not None:
                raise ApiError.already_exists(rt, meta["name"])
            return self._create_locked(rt, obj, params, manager, record=True)

    def _create_locked(self, rt, obj, params, manager, record: bool) -> dict:
        meta = obj["metadata"]
        for k in ("resourceVersion", "deletionTimestamp", "selfLink"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_str()
        meta["generation"] = 1
        if "status" in rt.subresources and not rt.crd:
            obj.pop("status", None)
        if not meta.get("labels"):
            meta.pop("labels", None)
        if not meta.get("annotations"):
            meta.pop("annotations", None)
        self._defaults(rt, obj)
        if record:
            P.record_update(None, obj, manager, rt.api_version, meta["creationTimestamp"], keyed=not rt.crd)
        return self.out(rt, self._commit(rt, obj, "ADDED", _dry(params)))

    # ----------------------------------------------------------------- update
    def update(self, rt: ResourceType, ns: str, name: str, body: dict, params: dict, manager: str,
               subresource: str = "") -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError.bad_request("request body must be an object with metadata")
        if (rt.group, rt.plural) in VIEWS:
            return self.out(rt, self.update(self._rt_for_key(rt.key), ns, name, self._in(rt, body), params, manager,
                                            subresource))
        ns = ns if rt.namespaced else ""
        with self.store.lock:
            old = self.store.get(rt.key, ns, name)
            if old is None:
                raise ApiError.not_found(rt, name)
            want_rv = (body.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise ApiError.conflict(rt, name, "the object has been modified; please apply your changes "
                                                  "to the latest version and try again")
            return self._update_locked(rt, old, _copy(body) if rt.crd else drop_nulls(body), params, manager,
                                       subresource)

    def _update_locked(self, rt, old: dict, new: dict, params: dict, manager: str, subresource: str = "",
                       operation: str = "Update") -> dict:
        name = old["metadata"]["name"]
        new.setdefault("metadata", {})
        if new["metadata"].get("name", name) != name:
            raise ApiError.bad_request(f'the name of the object ({new["metadata"]["name"]}) does not match the '
                                       f"name on the URL ({name})")
        if subresource in ("status", "finalize", "approval"):
            merged = _copy(old)
            if subresource in ("status", "approval"):  # a CSR's approval is its status conditions
                merged["status"] = new.get("status")
            else:
                merged.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
            new = merged
        elif subresource == "scale":
            merged = _copy(old)
            merged.setdefault("spec", {})["replicas"] = (new.get("spec") or {}).get("replicas", 1)
            new = merged
        else:
            if "status" in rt.subresources and not rt.crd or (rt.crd and "status" in rt.subresources):
                if "status" in old:
                    new["status"] = _copy(old["status"])
                else:
                    new.pop("status", None)
            if rt.plural == "namespaces":
                new["status"] = _copy(old.get("status"))
                new.setdefault("spec", {}).setdefault("finalizers", (old.get("spec") or {}).get("finalizers", []))
        om, nm = old["metadata"], new["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "namespace", "generation",
                  "deletionGracePeriodSeconds"):
            if k in om:
                nm[k] = om[k]
            else:
                nm.pop(k, None)
        nm["name"] = name
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        if rt.plural == "services":
            ospec, nspec = old.get("spec") or {}, new.setdefault("spec", {})
            for k in ("clusterIP", "clusterIPs"):
                if k in ospec and not nspec.get(k):
                    nspec[k] = ospec[k]
        if rt.plural == "secrets" and new.get("stringData"):
            self._defaults(rt, new)
        if not subresource:
            self._validate(rt, new, params)
            if old.get("immutable") and (old.get("data") != new.get("data")
                                         or old.get("binaryData") != new.get("binaryData")):
                raise ApiError.invalid(rt, name, [("data", "Forbidden: field is immutable when `immutable` is set")])
        if _spec_of(old) != _spec_of(new):
            nm["generation"] = int(om.get("generation", 1)) + 1
        if operation == "Update":
            P.record_update(old, new, manager, rt.api_version, now_str(), keyed=not rt.crd, subresource=subresource)
        for k in ("labels", "annotations", "finalizers", "ownerReferences"):
            if k in nm and not nm[k]:
                del nm[k]
        if _strip_volatile(old) == _strip_volatile(new):
            return self.out(rt, old)  # no-op writes do not bump resourceVersion
        if nm.get("deletionTimestamp") and not nm.get("finalizers") and rt.plural != "namespaces":
            if not _dry(params):
                self._remove_locked(rt, new)
            return self.out(rt, new)
        return self.out(rt, self._commit(rt, new, "MODIFIED", _dry(params)))

    # ----------------------------------------------------------------- patch
    def patch(self, rt: ResourceType, ns: str, name: str, body: bytes, content_type: str, params: dict,
              manager: str, subresource: str = "") -> tuple[int, dict]:
        ns = ns if rt.namespaced else ""
        ct = content_type.split(";")[0].strip()
        try:
            if ct == "application/apply-patch+yaml":
                doc = _load_yaml_or_json(body) or {}
                if not rt.crd:
                    doc = drop_nulls(doc)
            else:
                doc = json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError.bad_request(f"error decoding patch: {exc}") from exc
        view = VIEWS.get((rt.group, rt.plural))
        with self.store.lock:
            old = self.store.get(rt.key, ns, name)
            if view and ct != "application/apply-patch+yaml" and old is not None:
                # patch the object as this group shows it, store it as its own group's
                stored_rt, old = self._rt_for_key(rt.key), old
                live = self.out(rt, old)
                new = P.json_patch(live, doc) if ct == "application/json-patch+json" else P.merge_patch(live, doc)
                return 200, self.out(rt, self._update_locked(stored_rt, old, self._in(rt, new), params, manager))
            if view:
                raise ApiError(415, "apply is not supported for events.k8s.io events in kube-sandbox; use create")
            if ct == "application/apply-patch+yaml":
                return self._apply_locked(rt, ns, name, old, doc, params, subresource)
            if old is None:
                raise ApiError.not_found(rt, name)
            if ct == "application/merge-patch+json":
                new = P.merge_patch(old, doc)
            elif ct == "application/strategic-merge-patch+json":
                if rt.crd:
                    raise ApiError(415, "strategic merge patch is not supported for custom resources")
                new = P.strategic_merge(old, doc)
            elif ct == "application/json-patch+json":
                if not isinstance(doc, list):
                    raise ApiError.bad_request("json patch must be a list of operations")
                new = P.json_patch(old, doc)
            else:
                raise ApiError(415, f"the body of the request was in an unknown format - accepted media types "
                                    f"include: application/json-patch+json, application/merge-patch+json, "
                                    f"application/apply-patch+yaml (got {ct})")
            if not isinstance(new, dict):
                raise ApiError.bad_request("patch result is not an object")
            new = _copy(new) if rt.crd else drop_nulls(new)
            want_rv = (new.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != old["metadata"]["resourceVersion"]:
                raise ApiError.conflict(rt, name, "the object has been modified; please apply your changes "
                                                  "to the latest version and try again")
            if subresource == "status":
                merged = _copy(old)
                merged["status"] = new.get("status")
                new = merged
                return 200, self._update_locked(rt, old, new, params, manager, "status")
            return 200, self._update_locked(rt, old, new, params, manager, "")

    def _apply_locked(self, rt, ns, name, old, doc, params, subresource) -> tuple[int, dict]:
        manager = params.get("fieldManager")
        if not manager:
            raise ApiError.bad_request("PATCH, application/apply-patch+yaml requires fieldManager")
        if not isinstance(doc, dict):
            raise ApiError.bad_request("apply configuration must be an object")
        meta = doc.setdefault("metadata", {})
        if meta.get("name", name) != name:
            raise ApiError.bad_request(f'the name of the object ({meta["name"]}) does not match the name on '
                                       f"the URL ({name})")
        if doc.get("kind", rt.kind) != rt.kind or not doc.get("apiVersion"):
            raise ApiError.bad_request(f"apply configuration must set apiVersion and kind {rt.kind}")
        meta["name"] = name
        force = str(params.get("force")).lower() in ("true", "1")
        keyed = not rt.crd
        if old is None:
            if subresource:
                raise ApiError.not_found(rt, name)
            if rt.namespaced:
                meta["namespace"] = ns
            obj = P.server_side_apply(None, doc, manager, force, rt.api_version, now_str(), keyed)
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            self._validate(rt, obj, params)
            self._check_namespace(rt, ns, creating=True)
            mf = obj["metadata"].pop("managedFields")
            created = self._create_locked(rt, obj, params, manager, record=False)
            if not _dry(params):
                stored = self.store.get(rt.key, ns, name)
                fixed = _copy(stored)
                for e in mf:
                    e["time"] = stored["metadata"]["creationTimestamp"]
                fixed["metadata"]["managedFields"] = mf
                self.store.entry(rt.key, ns, name).__init__(fixed)  # same rv: bookkeeping only
                created = self.out(rt, fixed)
            return 201, created
        live = old
        if subresource == "status":
            doc = {"apiVersion": doc.get("apiVersion"), "kind": rt.kind, "metadata": {"name": name},
                   "status": doc.get("status")}
        new = P.server_side_apply(live, doc, manager, force, rt.api_version, now_str(), keyed)
        return 200, self._update_locked(rt, old, new, params, manager, subresource, operation="Apply")

    # ----------------------------------------------------------------- delete
    def delete(self, rt: ResourceType, ns: str, name: str, options: dict, params: dict) -> dict:
        ns = ns if rt.namespaced else ""
        with self.store.lock:
            obj = self.store.get(rt.key, ns, name)
            if obj is None:
                raise ApiError.not_found(rt, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise ApiError.conflict(rt, name, "Precondition failed: UID in precondition: "
                                                  f"{pre['uid']}, UID in object meta: {obj['metadata']['uid']}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise ApiError.conflict(rt, name, "Precondition failed: resourceVersion mismatch")
            policy = options.get("propagationPolicy") or params.get("propagationPolicy") or "Background"
            if options.get("orphanDependents") is True:
                policy = "Orphan"
            if _dry(params) or _dry(options):
                return self.out(rt, obj)
            return self._delete_locked(rt, obj, policy)

    def _delete_locked(self, rt: ResourceType, obj: dict, policy: str = "Background") -> dict:
        meta = obj["metadata"]
        if rt.plural == "namespaces" or meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return self.out(rt, obj)
            new = _copy(obj)
            new["metadata"]["deletionTimestamp"] = now_str()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if rt.plural == "namespaces":
                new["status"] = {"phase": "Terminating"}
            self._commit(rt, new, "MODIFIED", False)
            return self.out(rt, new)
        self._remove_locked(rt, obj, policy)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": meta["name"], "group": rt.group, "kind": rt.plural, "uid": meta.get("uid")}}

    def _remove_locked(self, rt: ResourceType, obj: dict, policy: str = "Background") -> None:
        final = _copy(obj)
        meta = final["metadata"]
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.remove(rt.key, meta.get("namespace", ""), meta["name"], final)
        if policy == "Orphan":
            return
        for key, ns, name in self.store.dependents(meta.get("uid", "")):
            dep = self.store.get(key, ns, name)
            dep_rt = self._rt_for_key(key)
            if dep is not None and dep_rt is not None:
                self._delete_locked(dep_rt, dep, policy)

    def _rt_for_key(self, key) -> ResourceType | None:
        """The type objects under a storage key are stored as (its own group's, not a view's)."""
        if self._by_key[0] != self.registry.generation:
            by_key: dict = {}
            for t in self.registry.types():
                if (t.group, t.plural) == t.key or t.key not in by_key:
                    if t.key not in by_key or (t.group, t.plural) == t.key and \
                            (by_key[t.key].group, by_key[t.key].plural) != t.key:
                        by_key[t.key] = t
            self._by_key = (self.registry.generation, by_key)
        return self._by_key[1].get(key)

    def delete_collection(self, rt: ResourceType, ns: str | None, params: dict, options: dict) -> bytes:
        with self.store.lock:
            entries = self.select(rt, ns, params)
            deleted = []
            if not (_dry(params) or _dry(options)):
                for e in entries:
                    self._delete_locked(rt, e.obj, options.get("propagationPolicy") or "Background")
                    deleted.append(e)
            rv = self.store.rv
        head = dumps({"kind": rt.kind + "List", "apiVersion": rt.api_version,
                      "metadata": {"resourceVersion": str(rv)}})
        return head[:-1] + b',"items":[' + b",".join(e.raw for e in deleted) + b"]}"

    # ----------------------------------------------------------------- used by controllers
    def set_status(self, rt: ResourceType, ns: str, name: str, mutate) -> dict | None:
        """Apply ``mutate(obj)`` to a copy of the live object and commit it if it changed."""
        with self.store.lock:
            old = self.store.get(rt.key, ns, name)
            if old is None:
                return None
            new = json.loads(self.store.entry(rt.key, ns, name).raw)  # a deep copy, faster than deepcopy
            mutate(new)
            if new == old:
                return old
            return self._commit(rt, new, "MODIFIED", False)


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml_or_json(body: bytes):
    """Apply configurations are YAML, but clients (helm, kubectl) usually send JSON: try it first."""
    try:
        return json.loads(body)
    except ValueError:
        return yaml.load(body, Loader=_YAML_LOADER)


def _dry(params: dict) -> bool:
    v = params.get("dryRun")
    if isinstance(v, list):
        return "All" in v
    return v == "All"


def _spec_of(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _strip_volatile(obj: dict) -> dict:
    meta = {k: v for k, v in obj["metadata"].items() if k not in ("resourceVersion", "managedFields")}
    meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"}
                             for e in obj["metadata"].get("managedFields") or ()]
    return {**obj, "metadata": meta}
