"""Did someone change it by hand? Live objects compared with what their helm release rendered.

Pure. The rule, in one place (:func:`field_diffs`): every field the rendered object *sets* must
have the same value in the live object; fields the manifest does not set (defaults, status,
controllers' annotations) are not compared, as ``kubectl diff`` under server-side apply would not
own them either. Equal means: the same after the API server's usual normalisations: an
int-or-string port ``"80"`` equals ``80``, a quantity ``"0.5"`` equals ``"500m"`` and ``1Gi``
equals ``1073741824``, an empty map or list equals an absent one. Lists of maps with ``name`` are
matched by name (containers, ports, env), others by position.

Secrets: their ``data``/``stringData`` are compared as decoded bytes, and a difference is
reported as ``data`` with no key and no value (contents are never shown, only that they differ).
Only field *paths* are reported for any object (an env var may hold a value that must not be
printed either).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from stackyard.core.releases import RenderedObject


class DriftState(str, Enum):
    SYNCED = "synced"  # every object of the release is live as rendered
    DRIFTED = "drifted"  # some object differs from, or is missing against, its manifest
    UNKNOWN = "unknown"  # the manifest or the live objects could not be read


_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$")
_SUFFIX = {None: 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
MAX_FIELDS = 20  # per object: enough to see what changed, bounded for a page


def _quantity(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    match = _QUANTITY.match(value) if isinstance(value, str) else None
    if not match:
        return None
    try:
        number = Decimal(match[1])
    except InvalidOperation:
        return None
    suffix = match[2]
    if suffix and suffix.startswith("e"):
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * Decimal(_SUFFIX[suffix])


def scalars_equal(desired: object, live: object) -> bool:
    if desired == live:
        return True
    if isinstance(desired, (str, int, float)) and isinstance(live, (str, int, float)) and str(desired) == str(live):
        return True
    a, b = _quantity(desired), _quantity(live)
    return a is not None and a == b


def _empty(value: object) -> bool:
    return value is None or value == {} or value == []


def field_diffs(desired: object, live: object, path: str = "") -> list[str]:
    """The paths (``spec.template.spec.containers[orders].image``) where ``live`` differs from
    what ``desired`` sets; see the module docstring for what equal means."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [] if _empty(desired) and _empty(live) else [path or "."]
        out = []
        for key, value in desired.items():
            child = f"{path}.{key}" if path else str(key)
            if value is None:
                continue  # helm drops nulls: not a field the manifest sets
            if key not in live:
                if not _empty(value):
                    out.append(child)
                continue
            out += field_diffs(value, live[key], child)
        return out
    if isinstance(desired, list):
        if not isinstance(live, list):
            return [] if _empty(desired) and _empty(live) else [path]
        named = all(isinstance(i, Mapping) and "name" in i for i in desired + live) and desired
        if named:
            by_name = {i["name"]: i for i in live}
            out = [f"{path}[{i['name']}]" for i in desired if i["name"] not in by_name]
            for item in desired:
                if item["name"] in by_name:
                    out += field_diffs(item, by_name[item["name"]], f"{path}[{item['name']}]")
            return out
        if len(desired) != len(live):
            return [path]
        out = []
        for index, (a, b) in enumerate(zip(desired, live)):
            out += field_diffs(a, b, f"{path}[{index}]")
        return out
    return [] if scalars_equal(desired, live) else [path]


def _secret_bytes(obj: Mapping[str, Any]) -> dict[str, bytes] | None:
    out: dict[str, bytes] = {}
    try:
        for key, value in (obj.get("data") or {}).items():
            out[key] = base64.b64decode(value or "")
    except (binascii.Error, TypeError, ValueError):
        return None
    for key, value in (obj.get("stringData") or {}).items():
        out[key] = str(value).encode()
    return out


def object_diffs(desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """What differs between a rendered object and its live one (paths only; Secret data as ``data``)."""
    if desired.get("kind") == "Secret":
        plain = {k: v for k, v in desired.items() if k not in ("data", "stringData")}
        out = field_diffs(plain, {k: v for k, v in live.items() if k != "data"})
        if _secret_bytes(desired) != _secret_bytes(live):
            out.append("data (contents differ; not shown)")
        return out[:MAX_FIELDS]
    return field_diffs({k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "status")}, live)[:MAX_FIELDS]


def object_key(obj: Mapping[str, Any], namespace: str) -> tuple[str, str, str]:
    """(kind, namespace, name): how a rendered object finds its live one (the release's
    namespace when the manifest names none)."""
    meta = obj.get("metadata") or {}
    return obj.get("kind") or "", meta.get("namespace") or namespace, meta.get("name") or ""


def release_drift(rendered: Sequence[RenderedObject], live: Mapping[tuple[str, str, str], Mapping[str, Any]],
                  namespace: str, compared_kinds: frozenset[str] | set[str]) -> list[dict[str, Any]]:
    """Per rendered object that differs: ``{"object": "Kind/name", "fields": [...]}``, or
    ``"missing": True`` when it is gone. Helm hooks and tests (annotation ``helm.sh/hook``) are
    not part of the running release and are skipped; so are kinds the reader did not list
    (``compared_kinds``), reported once as ``not_compared``."""
    out, skipped = [], set()
    for item in rendered:
        obj = item.obj
        if ((obj.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook"):
            continue
        kind, where, name = object_key(obj, namespace)
        if kind not in compared_kinds:
            skipped.add(kind)
            continue
        found = live.get((kind, where, name))
        if found is None:
            out.append({"object": f"{kind}/{name}", "missing": True})
            continue
        fields = object_diffs(obj, found)
        if fields:
            out.append({"object": f"{kind}/{name}", "fields": fields})
    if skipped:
        out.append({"not_compared": sorted(skipped)})
    return out


def drift_state(entries: Sequence[Mapping[str, Any]] | None) -> DriftState:
    if entries is None:
        return DriftState.UNKNOWN
    return DriftState.DRIFTED if any("fields" in e or e.get("missing") for e in entries) else DriftState.SYNCED
