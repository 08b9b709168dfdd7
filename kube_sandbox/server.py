"""HTTP front end: routing, content negotiation, watch and log streaming, fault injection."""

from __future__ import annotations

import json
import logging
import secrets
from collections import deque
import socket
import ssl
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

from . import discovery as D
from . import protobuf
from .api import Api, now_str
from .errors import ApiError
from .faults import Faults
from .logs import container_log
from .rules import Rules
from .resources import Registry, ResourceType
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .store import dumps

log = logging.getLogger(__name__)
BOOKMARK_EVERY = 5.0
RULES_PATH = "/sandbox/v1/rules"  # outside the Kubernetes API paths
TERMINAL = ("Succeeded", "Failed")


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, api: Api, registry: Registry, faults: Faults, verbose: bool = False):
        super().__init__(addr, Handler)
        self.api, self.registry, self.faults, self.verbose = api, registry, faults, verbose
        self.stopping = threading.Event()
        self.stats_lock = threading.Lock()
        self.requests = 0
        self.busy_seconds = 0.0  # time spent serving non-streaming requests
        self.latencies: deque = deque(maxlen=100_000)  # seconds per non-streaming request, newest last
        self.doc_cache: dict = {}  # (path, aggregated, registry generation) -> encoded document
        self.rules = Rules()  # outcome rules, replaced by the Sandbox's
        self.tokens: set[str] | None = None  # bearer tokens accepted; None: no authentication


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms delayed-ACK stalls
    server: SandboxHTTPServer
    server_version = "kube-sandbox"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet unless verbose
        if self.server.verbose:
            log.info("%s " + fmt, self.address_string(), *args)

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, TimeoutError):  # a client that left (or spoke plain HTTP to TLS)
            self.close_connection = True

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ plumbing
    def _send(self, code: int, body: bytes, ctype: str = "application/json", headers: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    _doc_cache_key = None

    def _json(self, code: int, obj) -> None:
        body = obj if isinstance(obj, bytes) else dumps(obj)
        if self._doc_cache_key is not None and code == 200:  # discovery/OpenAPI: same until CRDs change
            self.server.doc_cache[self._doc_cache_key] = body
        self._send(code, body)

    def _error(self, err: ApiError) -> None:
        headers = {"Retry-After": "1"} if err.code == 429 else None
        self._send(err.code, dumps(err.status()), headers=headers)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if not size:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return b""

    def _decode(self, body: bytes):
        ct = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if ct == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(body)
        try:
            if ct in ("application/yaml", "application/x-yaml"):
                return yaml.load(body, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            return json.loads(body or b"{}")
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError.bad_request(f"error decoding request body: {exc}") from exc

    def _manager(self, params: dict) -> str:
        return params.get("fieldManager") or (self.headers.get("User-Agent") or "unknown").split("/")[0][:128]

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        self._doc_cache_key = None  # the handler lives as long as the keep-alive connection
        try:
            url = urlsplit(self.path)
            qs = parse_qs(url.query, keep_blank_values=True)
            params = {k: (v if k == "dryRun" else v[-1]) for k, v in qs.items()}
            body = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            self._authenticate(url.path)
            self._route(method, url.path.rstrip("/") or "/", params, body)
        except ApiError as err:
            self._error(err)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):  # the client went away
            self.close_connection = True
        except _Dropped:
            self.close_connection = True
        except Exception as exc:  # report like an API server would, keep serving
            log.exception("internal error serving %s %s", method, self.path)
            self._error(ApiError(500, f"kube-sandbox internal error: {exc!r}"))
        elapsed = time.monotonic() - started
        if "watch=" not in self.path and "follow=" not in self.path:
            with self.server.stats_lock:
                self.server.requests += 1
                self.server.busy_seconds += elapsed
                self.server.latencies.append(elapsed)
        if self.server.verbose:
            log.info("%s %s %.1fms", method, self.path, elapsed * 1000)

    def _authenticate(self, path: str) -> None:
        tokens = self.server.tokens
        if tokens is None or path in ("/healthz", "/livez", "/readyz"):
            return
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() not in tokens:  # (the python client sends "bearer")
            raise ApiError(401, "Unauthorized")

    # ------------------------------------------------------------------ routing
    def _route(self, method: str, path: str, params: dict, body: bytes) -> None:
        reg = self.server.registry
        accept = self.headers.get("Accept") or ""
        if path == RULES_PATH or path.startswith(RULES_PATH + "/"):
            return self._rules(method, path, params, body)
        if method == "GET":
            if path == "/version":
                return self._json(200, D.VERSION)
            if path == "/debug/kube-sandbox/stats":
                with self.server.stats_lock:
                    lat = sorted(self.server.latencies)
                    if "reset" in params:
                        self.server.latencies.clear()
                    pick = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 3)) if lat else (
                        lambda q: None)
                    return self._json(200, {"requests": self.server.requests,
                                            "latencyMs": {"n": len(lat), "p50": pick(0.5), "p99": pick(0.99),
                                                          "max": pick(1.0)},
                                            "busySeconds": round(self.server.busy_seconds, 6),
                                            "objects": self.server.api.store.count(),
                                            "resourceVersion": self.server.api.store.rv})
            if path in ("/healthz", "/livez", "/readyz"):
                return self._send(200, b"ok", "text/plain; charset=utf-8")
            if path in ("/api", "/apis"):
                if "as=APIGroupDiscoveryList" in accept:
                    body = dumps(D.aggregated(reg, core=path == "/api"))
                    self.server.doc_cache[self._doc_cache_key] = body
                    return self._send(200, body, D.AGG_CT)
                doc = D.api_versions(f"{self.server.server_address[0]}:{self.server.server_address[1]}") \
                    if path == "/api" else D.api_group_list(reg)
                return self._json(200, doc)
            if path.startswith("/openapi/v3") or path in ("/api", "/apis"):
                agg = path in ("/api", "/apis") and "as=APIGroupDiscoveryList" in accept
                ckey = (path, agg, reg.generation)
                if len(self.server.doc_cache) > 200:
                    self.server.doc_cache.clear()
                hit = self.server.doc_cache.get(ckey)
                if hit is not None:
                    return self._send(200, hit, D.AGG_CT if agg else "application/json")
                self._doc_cache_key = ckey
            if path == "/openapi/v2":
                if "protobuf" in accept:
                    return self._send(200, protobuf.openapi_v2_stub("Kubernetes (kube-sandbox)", "v1.35.0"),
                                      "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
                ckey = (path, False, reg.generation)
                hit = self.server.doc_cache.get(ckey)
                if hit is not None:
                    return self._send(200, hit)
                self._doc_cache_key = ckey
                return self._json(200, D.openapi_v2(reg))
            if path == "/openapi/v3":
                return self._json(200, D.openapi_index(reg))
            if path.startswith("/openapi/v3/"):
                key = path[len("/openapi/v3/"):]
                if key == "version":
                    return self._json(200, {"openapi": "3.0.0", "info": {"title": "version"}, "paths": {}})
                parts = key.split("/")
                doc = None
                if parts[0] == "api" and len(parts) == 2:
                    doc = D.openapi_doc(reg, "", parts[1])
                elif parts[0] == "apis" and len(parts) == 3:
                    doc = D.openapi_doc(reg, parts[1], parts[2])
                if doc is None:
                    raise ApiError(404, "the server could not find the requested resource")
                return self._json(200, doc)
        segs = [s for s in path.split("/") if s]
        if len(segs) >= 2 and segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        elif len(segs) == 2 and segs[0] == "apis" and method == "GET":
            doc = D.api_group(reg, segs[1])
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            return self._json(200, doc)
        else:
            raise ApiError(404, "the server could not find the requested resource")
        if not rest:
            doc = D.resource_list(reg, group, version) if method == "GET" else None
            if doc is None:
                raise ApiError(404, "the server could not find the requested resource")
            return self._json(200, doc)
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource")
        rt = reg.get(group, version, rest[0])
        if rt is None:
            raise ApiError(404, "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else ""
        if sub and sub not in rt.subresources:
            raise ApiError(404, "the server could not find the requested resource")
        if rt.namespaced and ns is None and (name is not None or method in ("POST",)):
            raise ApiError(404, "the server could not find the requested resource")
        if not rt.namespaced and ns is not None:
            raise ApiError(404, "the server could not find the requested resource")
        verb = {"GET": "get" if name else ("watch" if _flag(params.get("watch")) else "list"),
                "POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}[method]
        if not sub and verb not in rt.verbs:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        self._faults(verb, rt.plural + (f"/{sub}" if sub else ""), name, ns)
        self._resource(method, verb, rt, ns, name, sub, params, body, accept)

    def _rules(self, method: str, path: str, params: dict, body: bytes) -> None:
        """``/sandbox/v1/rules``: GET lists, POST adds (one rule, a list, or ``{"rules": [...]}``),
        DELETE clears (or removes ``?name=`` / ``/sandbox/v1/rules/<name>``)."""
        rules = self.server.rules
        name = path[len(RULES_PATH) + 1:] or params.get("name")
        if method == "POST":
            doc = self._decode(body)
            items = doc.get("rules", [doc]) if isinstance(doc, dict) else doc
            try:
                added = [rules.add(r) for r in items or []]
            except ValueError as exc:
                raise ApiError.bad_request(str(exc)) from exc
            return self._json(201, {"rules": added})
        if method == "DELETE":
            if name:
                if not rules.remove(name):
                    raise ApiError(404, f'rule "{name}" not found')
            else:
                rules.clear()
            return self._json(200, {"rules": rules.list()})
        if method == "GET":
            return self._json(200, {"rules": rules.list()})
        raise ApiError(405, f"method {method} not allowed")

    def _faults(self, verb, resource, name, ns) -> None:
        for rule in self.server.faults.take(verb, resource, name, ns):
            if rule.action == "latency":
                time.sleep(rule.seconds)
            elif rule.action == "drop":
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                raise _Dropped()
            else:
                msg = rule.message or {403: f'{resource} is forbidden: User "system:anonymous" cannot {verb} '
                                            f'resource "{resource}" (kube-sandbox fault injection)',
                                       409: "Operation cannot be fulfilled: the object has been modified; please "
                                            "apply your changes to the latest version and try again",
                                       429: "Too many requests, please try again later.",
                                       }.get(rule.status, f"kube-sandbox injected fault on {verb} {resource}")
                raise ApiError(rule.status, msg, details={"name": name or "", "kind": resource,
                                                           "retryAfterSeconds": 1} if rule.status == 429 else
                               ({"name": name or "", "kind": resource} if name else None))

    # ------------------------------------------------------------------ resources
    def _resource(self, method, verb, rt: ResourceType, ns, name, sub, params, body, accept) -> None:
        api: Api = self.server.api
        ns_ = ns or ""
        if verb == "list":
            if "as=Table" in accept:
                return self._json(200, self._table_list(rt, ns, params))
            raw = api.list_raw(rt, ns, params)
            if "as=PartialObjectMetadataList" in accept:
                doc = json.loads(raw)
                doc.update(kind="PartialObjectMetadataList", apiVersion="meta.k8s.io/v1", items=[
                    {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": i["metadata"]}
                    for i in doc["items"]])
                return self._json(200, doc)
            return self._json(200, raw)
        if verb == "watch":
            return self._watch(rt, ns, params)
        if verb == "get":
            if sub == "log":
                return self._log(rt, ns_, name, params)
            obj = api.get(rt, ns_, name)
            if sub == "scale":
                return self._json(200, _scale(obj))
            if "as=Table" in accept:
                return self._json(200, D.table(rt, [obj], obj["metadata"]["resourceVersion"],
                                               params.get("includeObject", "Metadata")))
            if "as=PartialObjectMetadata" in accept:
                return self._json(200, {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                        "metadata": obj["metadata"]})
            return self._json(200, obj)
        if verb == "create":
            if sub == "eviction":
                api.delete(rt, ns_, name, {}, params)
                return self._json(201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})
            if sub == "token":
                api.get(rt, ns_, name)
                req = self._decode(body) or {}
                exp = datetime.fromtimestamp(time.time() + 3600, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                token = f"kube-sandbox-token-{ns_}-{name}"
                if self.server.tokens is not None:  # tokens it issues authenticate, as on a cluster
                    token = f"{token}-{secrets.token_urlsafe(16)}"
                    self.server.tokens.add(token)
                return self._json(201, {**req, "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                                        "status": {"token": token,
                                                   "expirationTimestamp": exp}})
            if "get" not in rt.verbs and "protobuf" in (self.headers.get("Content-Type") or ""):
                doc = {}  # a review (kubectl auth can-i): the answer does not depend on what is asked
            else:
                doc = self._decode(body)
            return self._json(201, api.create(rt, ns_, doc, params, self._manager(params)))
        if verb == "update":
            doc = self._decode(body)
            if sub == "scale":
                doc = _unscale(api.get(rt, ns_, name), doc)
                return self._json(200, _scale(api.update(rt, ns_, name, doc, params, self._manager(params),
                                                         "scale")))
            return self._json(200, api.update(rt, ns_, name, doc, params, self._manager(params), sub))
        if verb == "patch":
            ctype = self.headers.get("Content-Type") or ""
            if sub == "scale":
                return self._patch_scale(rt, ns_, name, body, ctype, params)
            code, obj = api.patch(rt, ns_, name, body, ctype, params, self._manager(params), sub)
            return self._json(code, obj)
        if verb == "delete":
            opts = self._decode(body) if body.strip() else {}
            if params.get("propagationPolicy"):
                opts.setdefault("propagationPolicy", params["propagationPolicy"])
            return self._json(200, api.delete(rt, ns_, name, opts or {}, params))
        if verb == "deletecollection":
            opts = self._decode(body) if body.strip() else {}
            return self._json(200, api.delete_collection(rt, ns, params, opts or {}))
        raise ApiError(405, f"method {method} not allowed")

    def _patch_scale(self, rt, ns, name, body, ctype, params) -> None:
        from . import patch as P
        api: Api = self.server.api
        with api.store.lock:
            obj = api.get(rt, ns, name)
            scale = _scale(obj)
            doc = json.loads(body or b"{}") if "yaml" not in ctype else yaml.safe_load(body)
            if "merge-patch" in ctype:
                new = P.merge_patch(scale, doc)
            elif "json-patch" in ctype:
                new = P.json_patch(scale, doc)
            else:
                new = P.strategic_merge(scale, doc)
            out = api.update(rt, ns, name, _unscale(obj, new), params, self._manager(params), "scale")
        return self._json(200, _scale(out))

    def _table_list(self, rt, ns, params) -> dict:
        raw = json.loads(self.server.api.list_raw(rt, ns, params))
        return D.table(rt, raw["items"], raw["metadata"]["resourceVersion"], params.get("includeObject", "Metadata"),
                       raw["metadata"].get("continue"))

    # ------------------------------------------------------------------ streaming
    def _start_stream(self, ctype: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _watch(self, rt: ResourceType, ns: str | None, params: dict) -> None:
        api = self.server.api
        store = api.store
        labels = parse_label_selector(params.get("labelSelector"))
        fields = parse_field_selector(params.get("fieldSelector"))
        timeout = float(params.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        bookmarks = _flag(params.get("allowWatchBookmarks"))
        rv_param = params.get("resourceVersion") or ""
        initial_events = _flag(params.get("sendInitialEvents"))
        scope_ns = ns if rt.namespaced else None

        def wanted(obj) -> bool:
            meta = obj["metadata"]
            if scope_ns is not None and meta.get("namespace") != scope_ns:
                return False
            return (not labels or labels_match(labels, meta.get("labels"))) and \
                (not fields or fields_match(fields, obj))

        as_table = "as=Table" in (self.headers.get("Accept") or "")
        include = params.get("includeObject", "Metadata")

        def encode(type_, entry_or_obj) -> bytes:
            if as_table and type_ != "BOOKMARK" and type_ != "ERROR":
                obj = entry_or_obj if isinstance(entry_or_obj, dict) else entry_or_obj.obj
                raw = dumps(D.table(rt, [obj], obj["metadata"]["resourceVersion"], include))
            elif isinstance(entry_or_obj, dict):
                raw = dumps(api.out(rt, entry_or_obj))
            elif entry_or_obj.obj.get("apiVersion") != rt.api_version:
                raw = dumps(api.out(rt, entry_or_obj.obj))
            else:
                raw = entry_or_obj.raw
            return b'{"type":"' + type_.encode() + b'","object":' + raw + b"}\n"

        def bookmark(rv: int, end: bool = False) -> bytes:
            meta: dict = {"resourceVersion": str(rv)}
            if end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            return encode("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta})

        with store.lock:
            if initial_events or rv_param in ("", "0"):
                first = [encode("ADDED", e) for e in api.select(rt, ns, params)]
                last = store.rv
            else:
                try:
                    last = int(rv_param)
                except ValueError as exc:
                    raise ApiError.bad_request(f"invalid resource version {rv_param!r}") from exc
                first = []
                if last < store.compacted_rv or last > store.rv:  # compacted, or from another incarnation
                    self._start_stream("application/json")
                    gone = ApiError(410, f"too old resource version: {last} ({store.compacted_rv})", "Expired")
                    self._chunk(b'{"type":"ERROR","object":' + dumps(gone.status()) + b"}\n")
                    self._end_stream()
                    return
        self._start_stream("application/json")
        self._chunk(b"".join(first))
        if initial_events:
            self._chunk(bookmark(last, end=True))
        last_sent = time.monotonic()
        key = rt.key
        while not self.server.stopping.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            with store.cond:
                if store.rv <= last:
                    store.cond.wait(min(1.0, deadline - now))
                events = store.events_since(last)
                last = store.rv
            out = []
            for ev in events:
                if ev.key != key:
                    continue
                now_in = wanted(ev.entry.obj)
                was_in = ev.old is not None and (not (labels or fields) or wanted(ev.old))
                if ev.type == "MODIFIED" and (labels or fields) and now_in != was_in:
                    # selector membership changed: report as the cluster does
                    out.append(encode("ADDED" if now_in else "DELETED", ev.entry))
                elif now_in:
                    out.append(encode(ev.type, ev.entry))
            if out:
                self._chunk(b"".join(out))
                last_sent = time.monotonic()
            elif bookmarks and time.monotonic() - last_sent > BOOKMARK_EVERY:
                self._chunk(bookmark(last))
                last_sent = time.monotonic()
        self._end_stream()

    def _log(self, rt, ns: str, name: str, params: dict) -> None:
        api = self.server.api
        pod = api.get(rt, ns, name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = params.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise ApiError.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                       f"[{' '.join(containers)}]")
        if container not in containers:
            raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Pending":
            raise ApiError.bad_request(f'container "{container}" in pod "{name}" is waiting to start: '
                                       "ContainerCreating")
        lines = container_log(pod, container, self.server.rules)
        tail = params.get("tailLines")
        if tail:
            lines = lines[-int(tail):] if int(tail) else []
        if _flag(params.get("timestamps")):
            ts = _log_time(pod)
            lines = [f"{ts} {ln}" for ln in lines]
        data = "".join(ln + "\n" for ln in lines).encode()
        if params.get("limitBytes"):
            data = data[:int(params["limitBytes"])]
        if not _flag(params.get("follow")):
            return self._send(200, data, "text/plain")
        self._start_stream("text/plain")
        self._chunk(data)
        store = api.store
        while not self.server.stopping.is_set():
            with store.cond:
                cur = store.get(rt.key, ns, name)
                if cur is None or (cur.get("status") or {}).get("phase") in TERMINAL:
                    break
                store.cond.wait(1.0)
        self._end_stream()


def _flag(value) -> bool:
    return str(value).lower() in ("true", "1")


class _Dropped(Exception):
    pass


def _log_time(pod: dict) -> str:
    started = (pod.get("status") or {}).get("startTime") or now_str()
    return started[:-1] + ".000000000Z"


def _scale(obj: dict) -> dict:
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    sel = ",".join(f"{k}={v}" for k, v in ((spec.get("selector") or {}).get("matchLabels") or {}).items())
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0), "selector": sel}}


def _unscale(obj: dict, scale: dict) -> dict:
    return {"metadata": {"resourceVersion": (scale.get("metadata") or {}).get("resourceVersion")},
            "spec": {"replicas": (scale.get("spec") or {}).get("replicas", 1)}}
