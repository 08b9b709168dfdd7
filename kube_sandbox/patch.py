"""Patch semantics: JSON merge patch, strategic merge patch, JSON patch, server-side apply.

Strategic merge and apply know the list-merge keys of the built-in kinds by field name
(containers, env, ports, volumes, ...), which is what the Go structs' ``patchMergeKey``
tags say for every field the sandbox's users touch.  Lists of custom resources are atomic.
"""

from __future__ import annotations

import copy
import json

from .errors import ApiError

MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "env": "name",
    "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "hostAliases": "ip", "conditions": "type", "ownerReferences": "uid",
    "resourceClaims": "name", "topologySpreadConstraints": "topologyKey", "secrets": "name",
}
PRIMITIVE_SETS = {"finalizers"}
# fields never owned through apply/update bookkeeping
META_SYSTEM = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
               "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"}


def merge_key(field: str, items: list | None) -> str | None:
    if field == "ports":
        for it in items or []:
            if isinstance(it, dict):
                return "containerPort" if "containerPort" in it else "port"
        return "port"
    return MERGE_KEYS.get(field)


# ---------------------------------------------------------------- JSON merge patch (RFC 7386)
def merge_patch(orig, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# ---------------------------------------------------------------- strategic merge patch
_DELETE = object()


def strategic_merge(orig, patch, keyed: bool = True):
    """Apply a strategic merge patch (directives: $patch, $retainKeys, $deleteFromPrimitiveList,
    $setElementOrder is accepted and ignored)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return _DELETE
    result = dict(orig) if isinstance(orig, dict) else {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            result[f] = [x for x in result.get(f) or [] if x not in v]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict):
            merged = strategic_merge(result.get(k), v, keyed)
            if merged is _DELETE:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list):
            result[k] = _merge_list(k, result.get(k), v, keyed)
        else:
            result[k] = v
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"] or [])
        result = {k: v for k, v in result.items() if k in keep}
    return result


def _merge_list(field: str, orig, patch: list, keyed: bool):
    if not keyed:
        return copy.deepcopy(patch)
    if field in PRIMITIVE_SETS:
        out = list(orig or [])
        out.extend(x for x in patch if x not in out)
        return out
    key = merge_key(field, patch or orig)
    if key is None or not all(isinstance(x, dict) for x in patch) or not isinstance(orig, list):
        return [_strip(x) for x in patch if not (isinstance(x, dict) and x.get("$patch") == "delete")]
    if any(x.get("$patch") == "replace" for x in patch):
        return [_strip(x) for x in patch if x.get("$patch") != "replace"]
    out = [x for x in orig]
    for item in patch:
        k = item.get(key)
        idx = next((i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == k), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip(item))
        else:
            out[idx] = strategic_merge(out[idx], item, keyed)
    return out


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if not k.startswith("$")}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


# ---------------------------------------------------------------- JSON patch (RFC 6902)
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError.bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    for p in parts:
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    return doc


def json_patch(doc, ops: list):
    doc = copy.deepcopy(doc)
    try:
        for op in ops:
            kind, parts = op["op"], _pointer(op["path"])
            if kind == "test":
                if _walk(doc, parts) != op.get("value"):
                    raise ApiError(422, f"testing value {op['path']} failed")
                continue
            if kind in ("move", "copy"):
                src = _pointer(op["from"])
                value = copy.deepcopy(_walk(doc, src))
                if kind == "move":
                    _remove(doc, src)
                doc = _add(doc, parts, value)
            elif kind == "add":
                doc = _add(doc, parts, copy.deepcopy(op["value"]))
            elif kind == "remove":
                _remove(doc, parts)
            elif kind == "replace":
                _walk(doc, parts)  # must exist
                if not parts:
                    doc = copy.deepcopy(op["value"])
                else:
                    parent = _walk(doc, parts[:-1])
                    parent[int(parts[-1]) if isinstance(parent, list) else parts[-1]] = copy.deepcopy(op["value"])
            else:
                raise ApiError.bad_request(f"unknown json patch op {kind!r}")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(422, f"the server rejected our request due to an error in our request: {exc!r}") from exc
    return doc


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value
    return doc


def _remove(doc, parts):
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        parent.pop(int(parts[-1]))
    else:
        del parent[parts[-1]]


# ---------------------------------------------------------------- field sets (managedFields)
def _key_seg(key: str, item: dict) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"), sort_keys=True)


def field_paths(obj: dict, keyed: bool = True, with_status: bool = False) -> set[tuple[str, ...]]:
    """The set of leaf field paths of an object, in managedFields (fieldsV1) notation."""
    out: set[tuple[str, ...]] = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind") or (k == "status" and not with_status):
            continue
        if k == "metadata" and isinstance(v, dict):
            v = {mk: mv for mk, mv in v.items() if mk not in META_SYSTEM}
            if not v:
                continue
        _paths(k, v, ("f:" + k,), out, keyed)
    return out


def _paths(field: str, v, prefix: tuple, out: set, keyed: bool) -> None:
    if isinstance(v, dict) and v:
        for k, sub in v.items():
            _paths(k, sub, prefix + ("f:" + k,), out, keyed)
    elif isinstance(v, list) and keyed and field in PRIMITIVE_SETS:
        for x in v:
            out.add(prefix + ("v:" + json.dumps(x),))
    elif (isinstance(v, list) and keyed and v and all(isinstance(x, dict) for x in v)
          and (key := merge_key(field, v)) and all(key in x for x in v)):
        for item in v:
            ip = prefix + (_key_seg(key, item),)
            out.add(ip + (".",))
            for k, sub in item.items():
                _paths(k, sub, ip + ("f:" + k,), out, keyed)
    else:
        out.add(prefix)


def to_fields_v1(paths: set[tuple[str, ...]]) -> dict:
    tree: dict = {}
    for p in sorted(paths):
        node = tree
        for seg in p:
            node = node.setdefault(seg, {})
    return tree


def from_fields_v1(tree: dict, prefix: tuple = ()) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for seg, sub in (tree or {}).items():
        if sub:
            out |= from_fields_v1(sub, prefix + (seg,))
        else:
            out.add(prefix + (seg,))
    return out


_MISSING = object()


def _step(node, seg: str):
    if seg.startswith("f:"):
        return node.get(seg[2:], _MISSING) if isinstance(node, dict) else _MISSING
    if seg.startswith("k:") and isinstance(node, list):
        ((key, val),) = json.loads(seg[2:]).items()
        return next((x for x in node if isinstance(x, dict) and x.get(key) == val), _MISSING)
    if seg.startswith("v:") and isinstance(node, list):
        val = json.loads(seg[2:])
        return val if val in node else _MISSING
    if seg == ".":
        return node
    return _MISSING


def value_at(obj, path: tuple[str, ...]):
    node = obj
    for seg in path:
        node = _step(node, seg)
        if node is _MISSING:
            return _MISSING
    return node


def remove_path(obj, path: tuple[str, ...]) -> None:
    """Remove the field (or keyed list item, or set member) a path names, in place."""
    if path and path[-1] == ".":
        path = path[:-1]
    if not path:
        return
    parent = value_at(obj, path[:-1])
    seg = path[-1]
    if parent is _MISSING:
        return
    if seg.startswith("f:") and isinstance(parent, dict):
        parent.pop(seg[2:], None)
    elif seg.startswith("k:") and isinstance(parent, list):
        ((key, val),) = json.loads(seg[2:]).items()
        parent[:] = [x for x in parent if not (isinstance(x, dict) and x.get(key) == val)]
    elif seg.startswith("v:") and isinstance(parent, list):
        val = json.loads(seg[2:])
        parent[:] = [x for x in parent if x != val]


def path_str(path: tuple[str, ...]) -> str:
    out = ""
    for seg in path:
        if seg.startswith("f:"):
            out += "." + seg[2:]
        elif seg.startswith("k:"):
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(seg[2:]).items()) + "]"
        elif seg.startswith("v:"):
            out += "[" + seg[2:] + "]"
    return out


def _prune_empty(node):
    """Drop maps emptied by field removal (apply removes the parents it created)."""
    if isinstance(node, dict):
        for k in list(node):
            v = node[k]
            _prune_empty(v)
            if isinstance(v, dict) and not v and k != "metadata":
                del node[k]
    elif isinstance(node, list):
        for x in node:
            _prune_empty(x)


def managers(obj: dict) -> list[dict]:
    return list(((obj.get("metadata") or {}).get("managedFields")) or [])


def _entry(manager: str, operation: str, api_version: str, paths, now: str, subresource: str = "") -> dict:
    e = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now,
         "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
    if subresource:
        e["subresource"] = subresource
    return e


def server_side_apply(live: dict | None, config: dict, manager: str, force: bool, api_version: str,
                      now: str, keyed: bool = True) -> dict:
    """Merge an apply configuration into the live object with field ownership.

    Fields the manager applied before and no longer applies (and nobody else owns) are removed;
    fields owned by another manager with a different value conflict unless ``force``.
    """
    new_paths = field_paths(config, keyed)
    if live is None:
        obj = _strip(copy.deepcopy(config))
        obj.setdefault("metadata", {})["managedFields"] = [_entry(manager, "Apply", api_version, new_paths, now)]
        return obj
    entries = managers(live)
    conflicts: list[tuple[str, tuple]] = []
    others: list[tuple[dict, set]] = []
    old_mine: set = set()
    for e in entries:
        paths = from_fields_v1(e.get("fieldsV1") or {})
        if e.get("manager") == manager and e.get("operation") == "Apply" and not e.get("subresource"):
            old_mine = paths
            continue
        clash = {p for p in paths & new_paths if p[-1] != "."
                 and value_at(live, p) != value_at(config, p)}
        if clash and not force:
            conflicts.extend((e.get("manager", ""), p) for p in sorted(clash))
        others.append((e, paths - clash if force else paths))
    if conflicts:
        by_mgr: dict[str, list] = {}
        for m, p in conflicts:
            by_mgr.setdefault(m, []).append(p)
        n = len(conflicts)
        lines = [f'conflict with "{m}": ' + ", ".join(path_str(p) for p in ps) for m, ps in by_mgr.items()]
        raise ApiError(409, f"Apply failed with {n} conflict{'s' if n > 1 else ''}: " + "; ".join(lines),
                       "Conflict", {"causes": [{"reason": "FieldManagerConflict",
                                                "message": f'conflict with "{m}"', "field": path_str(p)}
                                               for m, p in conflicts]})
    obj = copy.deepcopy(live)
    owned_by_others = set().union(*(p for _, p in others)) if others else set()
    for p in sorted(old_mine - new_paths - owned_by_others, key=len, reverse=True):
        remove_path(obj, p)
    _prune_empty(obj)
    obj = strategic_merge(obj, _strip(config), keyed)
    new_entries = []
    for e, paths in others:
        if paths:
            new_entries.append({**e, "fieldsV1": to_fields_v1(paths)})
    new_entries.append(_entry(manager, "Apply", api_version, new_paths, now))
    obj.setdefault("metadata", {})["managedFields"] = new_entries
    return obj


def record_update(old: dict | None, new: dict, manager: str, api_version: str, now: str,
                  keyed: bool = True, subresource: str = "") -> None:
    """Record an Update-operation manager for the fields a write changed (in place on ``new``)."""
    with_status = subresource == "status"
    new_paths = field_paths(new, keyed, with_status)
    if old is None:
        changed = new_paths
    else:
        changed = {p for p in new_paths if value_at(old, p) != value_at(new, p)}
    if with_status:
        changed = {p for p in changed if p[0] == "f:status"}
    entries = managers(old) if old is not None else []
    if not changed:
        new.setdefault("metadata", {})["managedFields"] = entries
        return
    out, mine = [], set()
    for e in entries:
        paths = from_fields_v1(e.get("fieldsV1") or {})
        if (e.get("manager") == manager and e.get("operation") == "Update"
                and e.get("subresource", "") == subresource):
            mine = paths
            continue
        paths -= changed
        if paths:
            out.append({**e, "fieldsV1": to_fields_v1(paths)})
    out.append(_entry(manager, "Update", api_version, mine | changed, now, subresource))
    new.setdefault("metadata", {})["managedFields"] = out
