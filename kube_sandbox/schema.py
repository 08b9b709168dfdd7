"""Structural-schema handling of custom resources, in the API server's order: explicit nulls of
non-nullable fields pruned, defaults applied, unknown fields found (rejected under
``fieldValidation=Strict``, pruned otherwise), then validation with the server's messages.

Supported: ``type`` (object, array, string, integer, number, boolean), ``properties``,
``additionalProperties``, ``items``, ``required``, ``enum``, ``minimum``/``maximum`` (and
``exclusiveMinimum``/``exclusiveMaximum``), ``pattern``, ``minLength``/``maxLength``,
``minItems``/``maxItems``, ``minProperties``/``maxProperties``, ``nullable``, ``default``,
``x-kubernetes-preserve-unknown-fields``, ``x-kubernetes-int-or-string``,
``x-kubernetes-embedded-resource``.  Not evaluated: ``x-kubernetes-validations`` (CEL),
``format``, ``allOf``/``anyOf``/``oneOf``/``not``, ``uniqueItems``.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache

Errors = list[tuple[str, str]]  # (field path, message)
TOP = ("apiVersion", "kind", "metadata")


def _type_name(v) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def _is(t: str, v) -> bool:
    have = _type_name(v)
    return have == t or (t == "number" and have == "integer") or (t == "integer" and have == "number"
                                                                 and float(v).is_integer())


def _show(v) -> str:
    return json.dumps(v) if isinstance(v, str) else (json.dumps(v) if not isinstance(v, (dict, list)) else
                                                      _type_name(v))


@lru_cache(maxsize=512)
def _rx(pattern: str):
    return re.compile(pattern)


def prepare(schema: dict, obj, path: str = "", top: bool = False):
    """Prune non-nullable nulls and apply defaults, returning the new value (``obj`` is not changed)."""
    if not isinstance(schema, dict):
        return obj
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for k, v in obj.items():
            sub = props.get(k) if k in props else (extra if isinstance(extra, dict) else None)
            if top and k in TOP:
                out[k] = v
                continue
            if v is None and not (sub or {}).get("nullable"):
                continue  # pruned, so a default may apply
            out[k] = prepare(sub, v, f"{path}.{k}" if path else k) if sub else v
        for k, sub in props.items():
            if k not in out and isinstance(sub, dict) and "default" in sub and not (top and k in TOP):
                out[k] = prepare(sub, copy.deepcopy(sub["default"]), f"{path}.{k}" if path else k)
        return out
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [prepare(schema["items"], v, f"{path}[{i}]") for i, v in enumerate(obj)]
    return obj


def unknown(schema: dict, obj, path: str = "", top: bool = False, prune: bool = False) -> list[str]:
    """Paths of fields the schema does not declare (removed from ``obj`` in place when ``prune``)."""
    out: list[str] = []
    if not isinstance(schema, dict):
        return out
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        open_ = schema.get("x-kubernetes-preserve-unknown-fields") or extra is True or not (
            props or schema.get("type"))
        for k in list(obj):
            p = f"{path}.{k}" if path else k
            if (top or schema.get("x-kubernetes-embedded-resource")) and k in TOP:
                continue
            if k in props:
                out += unknown(props[k], obj[k], p, prune=prune)
            elif isinstance(extra, dict):
                out += unknown(extra, obj[k], p, prune=prune)
            elif not open_:
                out.append(p)
                if prune:
                    del obj[k]
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            out += unknown(schema["items"], v, f"{path}[{i}]", prune=prune)
    return out


def validate(schema: dict, obj, path: str = "", top: bool = False) -> Errors:
    """The API server's validation errors for ``obj`` under ``schema``."""
    errs: Errors = []
    if not isinstance(schema, dict):
        return errs
    where = path or "<root>"
    if obj is None:
        if not schema.get("nullable") and schema.get("type"):
            errs.append((where, f'Invalid value: "null": {where} in body must be of type {schema["type"]}: "null"'))
        return errs
    t = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(obj, (int, str)) or isinstance(obj, bool):
            errs.append((where, f'Invalid value: "{_type_name(obj)}": {where} in body must be of type '
                                f'integer-or-string: "{_type_name(obj)}"'))
            return errs
    elif t and not _is(t, obj):
        errs.append((where, f'Invalid value: "{_type_name(obj)}": {where} in body must be of type {t}: '
                            f'"{_type_name(obj)}"'))
        return errs
    if "enum" in schema and obj not in schema["enum"]:
        errs.append((where, f"Unsupported value: {_show(obj)}: supported values: "
                            + ", ".join(_show(v) for v in schema["enum"])))
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        lo, hi = schema.get("minimum"), schema.get("maximum")
        if lo is not None and (obj <= lo if schema.get("exclusiveMinimum") else obj < lo):
            errs.append((where, f"Invalid value: {obj}: {where} in body should be greater than "
                                f"{'' if schema.get('exclusiveMinimum') else 'or equal to '}{lo}"))
        if hi is not None and (obj >= hi if schema.get("exclusiveMaximum") else obj > hi):
            errs.append((where, f"Invalid value: {obj}: {where} in body should be less than "
                                f"{'' if schema.get('exclusiveMaximum') else 'or equal to '}{hi}"))
    if isinstance(obj, str):
        if "minLength" in schema and len(obj) < schema["minLength"]:
            errs.append((where, f'Invalid value: "{obj}": {where} in body should be at least {schema["minLength"]} '
                                "chars long"))
        if "maxLength" in schema and len(obj) > schema["maxLength"]:
            errs.append((where, f'Too long: may not be more than {schema["maxLength"]} bytes'))
        if "pattern" in schema and not _rx(schema["pattern"]).search(obj):
            errs.append((where, f'Invalid value: "{obj}": {where} in body should match \'{schema["pattern"]}\''))
    if isinstance(obj, list):
        if "minItems" in schema and len(obj) < schema["minItems"]:
            errs.append((where, f"Invalid value: {len(obj)}: {where} in body should have at least "
                                f"{schema['minItems']} items"))
        if "maxItems" in schema and len(obj) > schema["maxItems"]:
            errs.append((where, f"Too many: {len(obj)}: must have at most {schema['maxItems']} items"))
        if isinstance(schema.get("items"), dict):
            for i, v in enumerate(obj):
                errs += validate(schema["items"], v, f"{path}[{i}]")
    if isinstance(obj, dict):
        props = schema.get("properties") or {}
        for k in schema.get("required") or ():
            if k not in obj and not (top and k in TOP):
                errs.append((f"{path}.{k}" if path else k, "Required value"))
        if "minProperties" in schema and len(obj) < schema["minProperties"]:
            errs.append((where, f"Invalid value: {len(obj)}: {where} in body should have at least "
                                f"{schema['minProperties']} properties"))
        if "maxProperties" in schema and len(obj) > schema["maxProperties"]:
            errs.append((where, f"Too many: {len(obj)}: must have at most {schema['maxProperties']} items"))
        extra = schema.get("additionalProperties")
        for k, v in obj.items():
            if top and k in TOP:
                continue
            sub = props.get(k) if k in props else (extra if isinstance(extra, dict) else None)
            if sub is not None:
                errs += validate(sub, v, f"{path}.{k}" if path else k)
    return errs


# ----------------------------------------------------------------------------- printer columns
_STEP = re.compile(r"\.([A-Za-z0-9_$\-/]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]|\[\*\]")


def json_path(obj, expr: str):
    """The simple JSONPath of ``additionalPrinterColumns`` (``.a.b``, ``[0]``, ``[*]``,
    ``[?(@.type=="Ready")]``); a list when a filter or wildcard selects several values."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    cur = [obj]
    pos = 0
    while pos < len(expr):
        m = _STEP.match(expr, pos)
        if not m:
            return None
        pos = m.end()
        nxt = []
        for c in cur:
            if m.group(1) is not None and isinstance(c, dict) and m.group(1) in c:
                nxt.append(c[m.group(1)])
            elif m.group(2) is not None and isinstance(c, list) and int(m.group(2)) < len(c):
                nxt.append(c[int(m.group(2))])
            elif m.group(3) is not None and isinstance(c, list):
                for item in c:
                    v = item
                    for part in m.group(3).split("."):
                        v = v.get(part) if isinstance(v, dict) else None
                    if v is not None and str(v) == m.group(4):
                        nxt.append(item)
            elif m.group(0) == "[*]" and isinstance(c, list):
                nxt.extend(c)
        cur = nxt
    if not cur:
        return None
    return cur[0] if len(cur) == 1 else cur
