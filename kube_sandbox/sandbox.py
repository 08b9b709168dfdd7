"""The ``Sandbox`` object: wires store, API, controllers and HTTP server; writes a kubeconfig;
loads and saves the optional snapshot."""

from __future__ import annotations

import base64
import json
import logging
import secrets
import os
import tempfile
import threading
from pathlib import Path

from .api import NS_KEY, Api, now_str
from .controllers import Controllers
from .discovery import Validator
from .faults import Faults
from .resources import Registry
from .rules import Rules
from .server import SandboxHTTPServer
from .store import Store

log = logging.getLogger(__name__)
CONTEXT = "kube-sandbox"
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SNAPSHOT_EVERY = 1.0  # seconds between checks for changes to save (a SIGKILL loses at most this)


def kubeconfig_text(url: str, namespace: str = "default", ca_data: str | None = None,
                    token: str = "kube-sandbox") -> str:
    ca = f"    certificate-authority-data: {ca_data}\n" if ca_data else ""
    return (
        "apiVersion: v1\nkind: Config\npreferences: {}\n"
        f"clusters:\n- name: {CONTEXT}\n  cluster:\n    server: {url}\n{ca}"
        f"users:\n- name: {CONTEXT}\n  user:\n    token: {token}\n"
        f"contexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {CONTEXT}\n"
        f"    namespace: {namespace}\n"
        f"current-context: {CONTEXT}\n")


class Sandbox:
    """A Kubernetes API emulator on 127.0.0.1, served from a background thread.

    >>> with Sandbox(ready_delay=0.2) as sb:
    ...     os.environ["KUBECONFIG"] = str(sb.kubeconfig_path)
    """

    def __init__(self, ready_delay: float = 0.5, snapshot: str | os.PathLike | None = None,
                 host: str = "127.0.0.1", port: int = 0, kubeconfig: str | os.PathLike | None = None,
                 verbose: bool = False, rules=None, tls: bool = False, require_token: bool = False,
                 image_digest=None):
        self.ready_delay = ready_delay
        #: reference -> the digest a runtime pulling that tag would run (e.g. asked of a registry
        #: mirror), or None; what pods' ``imageID`` reports. Settable until pods start.
        self.image_digest = image_digest
        self.snapshot = Path(snapshot) if snapshot else None
        self.host, self.port = host, port
        self._kubeconfig_arg = Path(kubeconfig) if kubeconfig else None
        self.kubeconfig_path: Path | None = None
        self.verbose = verbose
        self.tls, self.require_token = tls, require_token
        # the bearer token clients send (checked only with require_token): a fresh secret then
        self.token = secrets.token_urlsafe(32) if require_token else "kube-sandbox"
        self.ca_path: Path | None = None  # the CA of the serving certificate (tls=True)
        self.faults = Faults()
        self.rules = rules if isinstance(rules, Rules) else Rules(rules)  # outcome rules (see rules.py)
        self.registry = Registry()
        self.store = Store()
        self.api = Api(self.store, self.registry, Validator())
        self.controllers: Controllers | None = None
        self._server: SandboxHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def in_cluster_env(self) -> dict[str, str]:
        """What ``KUBERNETES_SERVICE_HOST``/``PORT`` are for a client that thinks it runs in a pod."""
        host, port = self._server.server_address[:2]
        return {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
                "KUBERNETES_SERVICE_PORT_HTTPS": str(port)}

    def write_service_account(self, directory: str | os.PathLike, namespace: str = "default") -> Path:
        """A fake ``/var/run/secrets/kubernetes.io/serviceaccount``: ``token``, ``ca.crt``, ``namespace``
        (needs ``tls=True``: in-cluster clients always speak HTTPS)."""
        if self.ca_path is None:
            raise RuntimeError("write_service_account needs Sandbox(tls=True)")
        from .tls import write_service_account
        return write_service_account(Path(directory), self.token, self.ca_path, namespace)

    def _workdir(self) -> Path:
        if self._kubeconfig_arg is not None:
            return self._kubeconfig_arg.parent
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="kube-sandbox-")
        return Path(self._tmpdir.name)

    def start(self) -> "Sandbox":
        self.controllers = Controllers(self.api, self.registry, self.ready_delay, self.rules,
                                       image_digest=lambda ref: self.image_digest(ref) if self.image_digest else None)
        if self.snapshot and self.snapshot.exists():
            self.store.load(json.loads(self.snapshot.read_text()))
            with self.store.lock:  # let controllers resume unfinished work (CRDs, pods, namespaces)
                for item in self.store.dump()["objects"]:
                    key = (item["group"], item["plural"])
                    self.controllers.resume(key, item["object"])
        self._seed()
        self._server = SandboxHTTPServer((self.host, self.port), self.api, self.registry, self.faults, self.verbose)
        self._server.rules = self.rules
        if self.require_token:
            self._server.tokens = {self.token}
        if self.tls:
            from .tls import make_certificates, server_context
            self.ca_path, cert, key = make_certificates(self._workdir() / "kube-sandbox-pki", self.host)
            self._server.socket = server_context(cert, key).wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False)  # handshake in the handler
        self._seed_kubernetes_service()
        self.controllers.start()
        t = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="kube-sandbox-http", daemon=True)
        t.start()
        self._threads.append(t)
        if self.snapshot:
            s = threading.Thread(target=self._autosave, name="kube-sandbox-snapshot", daemon=True)
            s.start()
            self._threads.append(s)
        self._write_kubeconfig()
        log.info("kube sandbox serving on %s (kubeconfig %s)", self.url, self.kubeconfig_path)
        return self

    def stop(self) -> None:
        if self._server is None or self._stopped.is_set():
            return
        self._stopped.set()
        self._server.stopping.set()
        with self.store.cond:
            self.store.cond.notify_all()
        self._server.shutdown()
        self._server.server_close()
        if self.controllers:
            self.controllers.stop()
        self.save_snapshot()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers
    def _seed(self) -> None:
        with self.store.lock:
            ns_rt = self.registry.get("", "v1", "namespaces")
            for name in SYSTEM_NAMESPACES:
                if self.store.get(NS_KEY, "", name) is None:
                    self.api.create(ns_rt, "", {"metadata": {"name": name}}, {}, "kube-apiserver")
            node_rt = self.registry.get("", "v1", "nodes")
            if self.store.get(node_rt.key, "", "sandbox-node") is None:
                self.api.create(node_rt, "", {"metadata": {"name": "sandbox-node", "labels": {
                    "kubernetes.io/hostname": "sandbox-node", "kubernetes.io/os": "linux"}}}, {}, "kubelet")
                self.api.set_status(node_rt, "", "sandbox-node", lambda o: o.update(status={
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                    "lastHeartbeatTime": now_str(), "lastTransitionTime": now_str()}],
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "1100"},
                    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "1100"},
                    "nodeInfo": {"kubeletVersion": "v1.35.0-kube-sandbox", "containerRuntimeVersion": "none://",
                                 "operatingSystem": "linux", "architecture": "amd64"}}))

    def _seed_kubernetes_service(self) -> None:
        """``default/kubernetes``: the API server as in-cluster clients find it (ClusterIP 10.96.0.1:443,
        endpoints at the address the sandbox listens on)."""
        host, port = self._server.server_address[:2]
        with self.store.lock:
            svc_rt = self.registry.get("", "v1", "services")
            ep_rt = self.registry.get("", "v1", "endpoints")
            slice_rt = self.registry.get("discovery.k8s.io", "v1", "endpointslices")
            ports = [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
            if self.store.get(svc_rt.key, "default", "kubernetes") is None:
                self.api.create(svc_rt, "default", {"metadata": {"name": "kubernetes", "labels": {
                    "component": "apiserver", "provider": "kubernetes"}}, "spec": {
                    "type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": ports}}, {}, "kube-apiserver")
            ep = {"metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                  "subsets": [{"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port,
                                                                       "protocol": "TCP"}]}]}
            sl = {"metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
                  "addressType": "IPv4", "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
                  "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
            for rt, body in ((ep_rt, ep), (slice_rt, sl)):
                old = self.store.get(rt.key, "default", "kubernetes")
                if old is None:
                    self.api.create(rt, "default", body, {}, "kube-apiserver")
                else:  # a restart may listen on another port
                    self.api.set_status(rt, "default", "kubernetes", lambda o, b=body: o.update(
                        {k: v for k, v in b.items() if k != "metadata"}))

    def _write_kubeconfig(self) -> None:
        path = self._kubeconfig_arg or self._workdir() / "kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        ca = base64.b64encode(self.ca_path.read_bytes()).decode() if self.ca_path else None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(kubeconfig_text(self.url, ca_data=ca, token=self.token))
        self.kubeconfig_path = path

    def save_snapshot(self) -> None:
        if not self.snapshot:
            return
        data = self.store.dump()
        self.store.dirty = False
        self.snapshot.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.snapshot.with_suffix(self.snapshot.suffix + ".tmp")
        tmp.write_text(json.dumps(data, separators=(",", ":")))
        os.replace(tmp, self.snapshot)

    def _autosave(self) -> None:
        while not self._stopped.wait(SNAPSHOT_EVERY):
            if self.store.dirty:
                try:
                    self.save_snapshot()
                except OSError:
                    log.exception("could not write snapshot %s", self.snapshot)
