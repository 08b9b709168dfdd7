"""Just enough Kubernetes protobuf to decode what helm and ``kubectl create`` write: Secrets,
ConfigMaps, Namespaces, DeleteOptions.  Other kinds answer 415 (send them as JSON / apply them).

A protobuf body is ``k8s\\x00`` followed by a ``runtime.Unknown`` message
(1: TypeMeta{1: apiVersion, 2: kind}, 2: raw bytes of the object, 3: contentEncoding,
4: contentType).  The object messages follow ``k8s.io/api/core/v1/generated.proto``.
Decoding only: responses are always JSON, which clients accept.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone

from .errors import ApiError

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    """Yield (field number, wire type, value) for each field of a message."""
    i, n = 0, len(buf)
    while i < n:
        tag, i = _varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            ln, i = _varint(buf, i)
            val, i = buf[i:i + ln], i + ln
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield num, wt, val


def _s(b: bytes) -> str:
    return b.decode("utf-8")


def _map_entry(buf: bytes) -> tuple[str, bytes]:
    key, val = "", b""
    for num, _, v in _fields(buf):
        if num == 1:
            key = _s(v)
        elif num == 2:
            val = v
    return key, val


def _time(buf: bytes) -> str:
    secs = 0
    for num, _, v in _fields(buf):
        if num == 1:
            secs = v
    return datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _owner_ref(buf: bytes) -> dict:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    out: dict = {}
    for num, _, v in _fields(buf):
        if num in names:
            out[names[num]] = _s(v)
        elif num == 6:
            out["controller"] = bool(v)
        elif num == 7:
            out["blockOwnerDeletion"] = bool(v)
    return out


def _object_meta(buf: bytes) -> dict:
    strings = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    meta: dict = {}
    for num, _, v in _fields(buf):
        if num in strings:
            meta[strings[num]] = _s(v)
        elif num == 7:
            meta["generation"] = v
        elif num in (8, 9):
            meta["creationTimestamp" if num == 8 else "deletionTimestamp"] = _time(v)
        elif num in (11, 12):
            k, val = _map_entry(v)
            meta.setdefault("labels" if num == 11 else "annotations", {})[k] = _s(val)
        elif num == 13:
            meta.setdefault("ownerReferences", []).append(_owner_ref(v))
        elif num == 14:
            meta.setdefault("finalizers", []).append(_s(v))
    return meta


def _secret(buf: bytes) -> dict:
    obj: dict = {"apiVersion": "v1", "kind": "Secret"}
    for num, _, v in _fields(buf):
        if num == 1:
            obj["metadata"] = _object_meta(v)
        elif num == 2:
            k, val = _map_entry(v)
            obj.setdefault("data", {})[k] = base64.b64encode(val).decode()
        elif num == 3:
            obj["type"] = _s(v)
        elif num == 4:
            k, val = _map_entry(v)
            obj.setdefault("stringData", {})[k] = _s(val)
        elif num == 5:
            obj["immutable"] = bool(v)
    return obj


def _configmap(buf: bytes) -> dict:
    obj: dict = {"apiVersion": "v1", "kind": "ConfigMap"}
    for num, _, v in _fields(buf):
        if num == 1:
            obj["metadata"] = _object_meta(v)
        elif num == 2:
            k, val = _map_entry(v)
            obj.setdefault("data", {})[k] = _s(val)
        elif num == 3:
            k, val = _map_entry(v)
            obj.setdefault("binaryData", {})[k] = base64.b64encode(val).decode()
        elif num == 4:
            obj["immutable"] = bool(v)
    return obj


def _delete_options(buf: bytes) -> dict:
    obj: dict = {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
    for num, _, v in _fields(buf):
        if num == 1:
            obj["gracePeriodSeconds"] = v
        elif num == 2:
            pre = {}
            for n2, _, v2 in _fields(v):
                pre[{1: "uid", 2: "resourceVersion"}.get(n2, "")] = _s(v2)
            obj["preconditions"] = pre
        elif num == 3:
            obj["orphanDependents"] = bool(v)
        elif num == 4:
            obj["propagationPolicy"] = _s(v)
        elif num == 5:
            obj.setdefault("dryRun", []).append(_s(v))
    return obj


def _namespace(buf: bytes) -> dict:
    obj: dict = {"apiVersion": "v1", "kind": "Namespace"}
    for num, _, v in _fields(buf):
        if num == 1:
            obj["metadata"] = _object_meta(v)
        elif num == 2:
            obj["spec"] = {"finalizers": [_s(f) for n2, _, f in _fields(v) if n2 == 1]}
    return obj


DECODERS = {("v1", "Secret"): _secret, ("v1", "ConfigMap"): _configmap, ("v1", "Namespace"): _namespace}


def decode(body: bytes) -> dict:
    """Decode a protobuf request body to the JSON-shaped object; 415 for kinds we cannot read."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "protobuf body without the k8s magic prefix")
    api_version = kind = ""
    raw = b""
    try:
        for num, _, v in _fields(body[len(MAGIC):]):
            if num == 1:
                for n2, _, v2 in _fields(v):
                    if n2 == 1:
                        api_version = _s(v2)
                    elif n2 == 2:
                        kind = _s(v2)
            elif num == 2:
                raw = v
        decoder = _delete_options if kind == "DeleteOptions" else DECODERS.get((api_version, kind))
        if decoder is None:
            raise ApiError(415, f"kube-sandbox decodes protobuf only for Secret, ConfigMap and Namespace, not "
                                f"{kind}; send JSON (e.g. kubectl apply)")
        return decoder(raw)
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed protobuf body: {exc}") from exc


# ----------------------------------------------------------------------------- encoding (OpenAPI v2 only)
def _len_field(num: int, payload: bytes) -> bytes:
    out, n = bytearray([num << 3 | 2]), len(payload)
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out) + payload


def openapi_v2_stub(title: str, version: str) -> bytes:
    """A gnostic ``openapi_v2.Document`` with no definitions (swagger=1, info{title=1, version=2}, paths=8).

    client-go asks for OpenAPI v2 in protobuf only for client-side validation; a document without
    the kind makes that validation a no-op, so the server's strict field validation decides, as it
    does on a cluster that advertises ``fieldValidation``."""
    info = _len_field(1, title.encode()) + _len_field(2, version.encode())
    return _len_field(1, b"2.0") + _len_field(2, info) + _len_field(8, b"")
