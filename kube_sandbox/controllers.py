"""Simulated controllers: the outcomes a cluster would report, without running anything.

Level-triggered like the real ones: every task re-reads the object and moves it one step
towards what its spec asks, so a restart from a snapshot just resumes (``resume``).  What a
container does is decided by ``rules.Rules`` (user rules, the legacy annotation, its command,
the default); the lifecycle steps are the ``POD_STEPS`` table.  Owners' status follows their
pods; Services get Endpoints and EndpointSlices of their ready pods; the steps a user reads in
``kubectl describe`` are recorded as Events.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from datetime import datetime, timezone

from .api import CRD_KEY, NS_KEY, Api, now_str
from .errors import ApiError
from .resources import Registry, crd_types
from .rules import LOGS, OUTCOME, Outcome, Rules
from .selectors import labels_match, parse_label_selector

log = logging.getLogger(__name__)

__all__ = ["Controllers", "OUTCOME", "LOGS", "template_hash", "wants_failure"]

POD_KEY, RS_KEY, DEP_KEY = ("", "pods"), ("apps", "replicasets"), ("apps", "deployments")
STS_KEY, DS_KEY, JOB_KEY = ("apps", "statefulsets"), ("apps", "daemonsets"), ("batch", "jobs")
SVC_KEY, EP_KEY, SLICE_KEY = ("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices")
PVC_KEY, EVENT_KEY = ("", "persistentvolumeclaims"), ("", "events")
OWNER_KINDS = {"ReplicaSet": RS_KEY, "StatefulSet": STS_KEY, "DaemonSet": DS_KEY, "Job": JOB_KEY}
MOUNT_GRACE = 10.0  # at most this long (10 x ready_delay, at least 2 s) a pod waits for a missing volume source
MAX_EVENTS = 10000  # a cluster expires events after an hour; we keep the newest ones
BACKOFF_CAP = 300.0  # kubelet's crash-loop back-off doubles up to 5 minutes (from ready_delay here, not 10 s)
MANAGER = {"fieldValidation": "Ignore"}
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


def wants_failure(obj: dict) -> bool:
    """Legacy: the object (or its pod template) carries ``sandbox.stackyard.io/outcome: fail``."""
    spec = obj.get("spec") or {}
    for m in (obj.get("metadata"), (spec.get("template") or {}).get("metadata"),
              ((((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("metadata"))):
        if ((m or {}).get("annotations") or {}).get(OUTCOME) == "fail":
            return True
    return False


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template) -> str:
    """Stable hash of a pod template (FNV-1a of its canonical JSON, safe-encoded like the controller's)."""
    canon = json.dumps(template or {}, sort_keys=True, separators=(",", ":")).encode()
    return "".join(_ALPHANUMS[int(ch) % len(_ALPHANUMS)] for ch in str(_fnv32a(canon)))


def _owner(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _controller_of(obj: dict) -> dict | None:
    return next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or () if r.get("controller")), None)


def _cond(type_: str, status: str, reason: str = "", message: str = "") -> dict:
    c = {"type": type_, "status": status, "lastTransitionTime": now_str()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _keep_times(new: list[dict], old: list[dict]) -> list[dict]:
    """Conditions keep their lastTransitionTime while their status does not change."""
    before = {c.get("type"): c for c in old or ()}
    out = []
    for c in new:
        o = before.get(c["type"])
        if o and o.get("status") == c["status"]:
            c = {**c, "lastTransitionTime": o.get("lastTransitionTime", c["lastTransitionTime"])}
            if "lastUpdateTime" in c and o.get("reason") == c.get("reason"):
                c["lastUpdateTime"] = o.get("lastUpdateTime", c["lastUpdateTime"])
        out.append(c)
    return out


def _micro_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ts(s: str | None) -> float:
    try:
        return datetime.strptime(s or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return time.time()


def pod_ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def _terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _max_unavailable(spec: dict, n: int) -> int:
    v = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(v, str) and v.endswith("%"):
        return int(n * int(v[:-1]) / 100)
    return int(v)


class Controllers:
    def __init__(self, api: Api, registry: Registry, ready_delay: float, rules: Rules | None = None,
                 image_digest=None):
        self.api, self.registry, self.ready_delay = api, registry, ready_delay
        self.rules = rules or Rules()
        # reference -> the digest a runtime pulling it would get (a registry mirror), or None
        self.image_digest = image_digest or (lambda reference: None)
        self._heap: list = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._pending: set = set()  # (fn, args) of immediate tasks not yet run: no duplicates
        self._stop = False
        self._next_ip = 2
        self._events: deque = deque()
        self._mount_wait: dict[str, float] = {}  # pod uid -> when it first lacked a volume
        self._selectors: dict[tuple[str, str, str], set[str]] = {}  # (ns, label, value) -> Services selecting it
        self._thread = threading.Thread(target=self._run, name="kube-sandbox-controllers", daemon=True)
        api.store.listeners.append(self.on_event)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(timeout=5)

    def schedule(self, delay: float, fn, *args) -> None:
        with self._cv:
            if delay <= 0:
                try:
                    if (fn, args) in self._pending:
                        return
                    self._pending.add((fn, args))
                except TypeError:  # unhashable arguments: no de-duplication
                    pass
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn, args))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cv.wait(None if not self._heap else max(0.0, self._heap[0][0] - time.monotonic()))
                if self._stop:
                    return
                _, _, fn, args = heapq.heappop(self._heap)
                try:
                    self._pending.discard((fn, args))
                except TypeError:
                    pass
            try:
                fn(*args)
            except ApiError as exc:
                if exc.code in (403, 404, 409):  # namespace terminating, owner gone, raced: a real controller retries
                    log.debug("controller task %s: %s", getattr(fn, "__name__", fn), exc.message)
                else:
                    log.exception("controller task %s failed", getattr(fn, "__name__", fn))
            except Exception:  # a controller bug must not kill the loop
                log.exception("controller task %s failed", getattr(fn, "__name__", fn))

    def _rt(self, key):
        return self.api._rt_for_key(key)

    # ------------------------------------------------------------------ dispatch (store lock held)
    def _pulled(self, image: str) -> str | None:
        try:
            return self.image_digest(image)
        except Exception:  # noqa: BLE001 - a registry that cannot answer: the made-up digest
            log.debug("image_digest(%s) failed", image, exc_info=True)
            return None

    def on_event(self, type_: str, key, obj: dict, old: dict | None) -> None:
        handler = self.HANDLERS.get(key)
        if handler is not None:
            handler(self, type_, key, obj, old)

    def resume(self, key, obj: dict) -> None:
        """After loading a snapshot: pick up every object's unfinished work."""
        self.on_event("RESUME", key, obj, None)

    def _on_pod(self, type_, key, obj, old) -> None:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        ref = _controller_of(obj)
        if ref and ref.get("kind") in OWNER_KINDS:
            self.schedule(0, self.sync_owner, OWNER_KINDS[ref["kind"]], ns, ref.get("name"))
        if old is None or type_ != "MODIFIED" or _endpoint_view(old) != _endpoint_view(obj):
            self.schedule(0, self.sync_endpoints_for_pod, ns, name)
        if type_ == "DELETED":
            if (obj.get("status") or {}).get("phase") == "Running":
                for c in (obj.get("spec") or {}).get("containers") or ():
                    self.schedule(0, self.event, POD_KEY, ns, name, "Normal", "Killing",
                                  f"Stopping container {c.get('name')}", "kubelet", obj)
            return
        if type_ in ("ADDED", "RESUME") and not meta.get("deletionTimestamp"):
            self._plan_pod(obj, first=type_ == "ADDED")

    def _on_workload(self, type_, key, obj, old) -> None:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        if type_ == "DELETED":
            return
        if key == RS_KEY and (ref := _controller_of(obj)) and ref.get("kind") == "Deployment":
            self.schedule(0, self.sync_deployment, ns, ref.get("name"))
        if type_ in ("ADDED", "RESUME") or old is None or old.get("spec") != obj.get("spec") or \
                old["metadata"].get("generation") != meta.get("generation"):
            if key == DEP_KEY:
                self.schedule(0, self.sync_deployment, ns, name)
            else:
                self.schedule(0, self.sync_owner, key, ns, name)

    def _on_service(self, type_, key, obj, old) -> None:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        for prev in (old, obj if type_ == "DELETED" else None):
            for k, v in (((prev or {}).get("spec") or {}).get("selector") or {}).items():
                self._selectors.get((ns, k, v), set()).discard(name)
        if type_ != "DELETED":
            for k, v in ((obj.get("spec") or {}).get("selector") or {}).items():
                self._selectors.setdefault((ns, k, v), set()).add(name)
        self.schedule(0, self.sync_endpoints, ns, name)
        if type_ != "DELETED" and (obj.get("spec") or {}).get("type") == "LoadBalancer":
            if not ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress"):
                self.schedule(self.ready_delay, self.lb_address, ns, name)

    def _on_pvc(self, type_, key, obj, old) -> None:
        if type_ in ("ADDED", "RESUME") and (obj.get("status") or {}).get("phase") != "Bound":
            meta = obj["metadata"]
            self.schedule(self.ready_delay, self.pvc_bind, meta.get("namespace", ""), meta["name"])

    def _on_namespace(self, type_, key, obj, old) -> None:
        if type_ != "DELETED" and obj["metadata"].get("deletionTimestamp"):
            self.schedule(0, self.finalize_namespace, obj["metadata"]["name"])

    def _on_crd(self, type_: str, key, obj: dict, old) -> None:
        name = obj["metadata"]["name"]
        if type_ == "DELETED":
            types = crd_types(obj)
            self.registry.remove_crd(name)
            for t in types[:1]:
                self.schedule(0, self._drop_custom_objects, t.key)
            return
        if obj["metadata"].get("deletionTimestamp"):
            return
        self.registry.add_crd_types(name, crd_types(obj))
        conds = (obj.get("status") or {}).get("conditions") or []
        if not any(c.get("type") == "Established" for c in conds):
            self.schedule(0, self._establish, name)

    def _on_event_object(self, type_, key, obj, old) -> None:
        if type_ == "RESUME":  # events from a snapshot count against the cap too
            self._events.append((obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))

    HANDLERS = {EVENT_KEY: _on_event_object, POD_KEY: _on_pod, DEP_KEY: _on_workload, RS_KEY: _on_workload, STS_KEY: _on_workload,
                DS_KEY: _on_workload, JOB_KEY: _on_workload, SVC_KEY: _on_service, PVC_KEY: _on_pvc,
                NS_KEY: _on_namespace, CRD_KEY: _on_crd}

    # ------------------------------------------------------------------ events
    def event(self, key, ns: str, name: str, type_: str, reason: str, message: str, component: str,
              obj: dict | None = None) -> None:
        """Record a core/v1 Event about an object (repeats bump ``count``, as the recorder aggregates)."""
        store = self.api.store
        ev_rt = self._rt(EVENT_KEY)
        with store.lock:
            obj = obj or store.get(key, ns, name)
            rt = self._rt(key)
            if obj is None or rt is None or (ns and store.get(NS_KEY, "", ns) is None):
                return
            uid = obj["metadata"].get("uid", "")
            ev_name = f"{name}.{_fnv32a(f'{uid}/{reason}/{message}'.encode()):08x}"
            ev_ns = ns or "default"
            t = _micro_now()  # sub-second, so kubectl describe sorts a pod's events in order
            if store.get(EVENT_KEY, ev_ns, ev_name) is not None:
                self.api.set_status(ev_rt, ev_ns, ev_name, lambda o: o.update(
                    count=int(o.get("count", 1)) + 1, lastTimestamp=t))
                return
            nsobj = store.get(NS_KEY, "", ev_ns)
            if nsobj is None or nsobj["metadata"].get("deletionTimestamp"):
                return
            involved = {"kind": rt.kind, "namespace": ns, "name": name, "uid": uid,
                        "apiVersion": rt.api_version, "resourceVersion": obj["metadata"].get("resourceVersion")}
            if not ns:
                involved.pop("namespace")
            self.api.record(ev_rt, ev_ns, {
                "metadata": {"name": ev_name}, "involvedObject": involved, "reason": reason, "message": message,
                "source": {"component": component, **({"host": "sandbox-node"} if component == "kubelet" else {})},
                "firstTimestamp": t, "lastTimestamp": t, "count": 1, "type": type_,
                "eventTime": t, "action": reason, "reportingComponent": component, "reportingInstance": "sandbox-node"
                if component == "kubelet" else component})
            self._events.append((ev_ns, ev_name))
            while len(self._events) > MAX_EVENTS:
                old_ns, old_name = self._events.popleft()
                old = store.get(EVENT_KEY, old_ns, old_name)
                if old is not None:
                    self.api._remove_locked(ev_rt, old)

    # ------------------------------------------------------------------ pods
    def _outcomes(self, pod: dict) -> dict[str, Outcome]:
        spec = pod.get("spec") or {}
        return {c.get("name"): self.rules.resolve(pod, c) for c in spec.get("containers") or ()}

    def _plan_pod(self, pod: dict, first: bool = False) -> None:
        """Schedule the pod's next lifecycle step from what its status says (see POD_STEPS)."""
        meta, st = pod["metadata"], pod.get("status") or {}
        ns, name, uid = meta.get("namespace", ""), meta["name"], meta.get("uid")
        if first:
            self.schedule(0, self.event, POD_KEY, ns, name, "Normal", "Scheduled",
                          f"Successfully assigned {ns}/{name} to sandbox-node", "default-scheduler")
        if _terminal(pod):
            return
        outcomes = self._outcomes(pod)
        for step, applies, delay in POD_STEPS:
            if applies(self, pod, st, outcomes):
                self.schedule(delay(self, pod, st, outcomes), getattr(self, step), ns, name, uid)
                return

    def _pod_mutate(self, ns: str, name: str, uid: str, mutate) -> dict | None:
        rt = self._rt(POD_KEY)
        with self.api.store.lock:
            pod = self.api.store.get(POD_KEY, ns, name)
            if pod is None or pod["metadata"].get("uid") != uid or pod["metadata"].get("deletionTimestamp"):
                return None
            new = self.api.set_status(rt, ns, name, mutate)
        if new is not None:
            self._plan_pod(new)
        return new

    def _missing_volumes(self, pod: dict) -> list[str]:
        store, ns = self.api.store, pod["metadata"].get("namespace", "")
        missing = []
        for v in (pod.get("spec") or {}).get("volumes") or ():
            for src, key, kind in (("configMap", "name", ("", "configmaps")), ("secret", "secretName", ("", "secrets")),
                                   ("persistentVolumeClaim", "claimName", PVC_KEY)):
                ref = v.get(src)
                if isinstance(ref, dict) and not ref.get("optional"):
                    obj = store.get(kind, ns, ref.get(key, ""))
                    if obj is None or (kind == PVC_KEY and (obj.get("status") or {}).get("phase") != "Bound"):
                        missing.append(f'{src} "{ref.get(key, "")}"')
        return missing

    def pod_start(self, ns: str, name: str, uid: str) -> None:
        with self.api.store.lock:
            pod = self.api.store.get(POD_KEY, ns, name)
            if pod is None or pod["metadata"].get("uid") != uid:
                return
            missing = self._missing_volumes(pod)
        if missing:
            self.event(POD_KEY, ns, name, "Warning", "FailedMount",
                       f"MountVolume.SetUp failed: {', '.join(missing)} not found (or not bound)", "kubelet")
            first = self._mount_wait.setdefault(uid, time.monotonic())
            # Secrets that a program would create (cert generators in hook Jobs) never appear here:
            # after a grace period the pod starts anyway instead of hanging the install.
            if time.monotonic() - first < min(MOUNT_GRACE, max(2.0, 10 * self.ready_delay)):
                self.schedule(max(self.ready_delay, 0.5), self.pod_start, ns, name, uid)
                return
        self._mount_wait.pop(uid, None)
        outcomes = self._outcomes(pod)
        t = now_str()
        spec = pod.get("spec") or {}
        init_failed = next((c.get("name") for c in spec.get("initContainers") or ()
                            if (self.rules.resolve(pod, c).finite("Never").exit_code or 0) != 0), None)
        ip = self._alloc_ip()
        events = []
        # asked before the update: image_digest may ask a registry, never under the store's lock
        pulled = {image: image_id(image, None if "@" in image else self._pulled(image))
                  for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]
                  for image in [str(c.get("image") or "")]}

        def mutate(o: dict) -> None:
            st = o.get("status") or {}
            if st.get("phase") != "Pending" or st.get("containerStatuses"):
                return
            o["spec"] = {**o.get("spec", {}), "nodeName": spec.get("nodeName") or "sandbox-node"}
            inits = []
            for c in spec.get("initContainers") or ():
                code = self.rules.resolve(pod, c).finite("Never").exit_code or 0
                inits.append(_cstatus(ns, name, c, pulled[str(c.get("image") or "")], {"terminated": {
                    "exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": t,
                    "finishedAt": t}}, ready=code == 0))
            statuses = []
            for c in spec.get("containers") or ():
                out = outcomes[c.get("name")]
                if init_failed:
                    state = {"waiting": {"reason": "PodInitializing"}}
                elif out.image_pull:
                    state = {"waiting": {"reason": "ErrImagePull", "message": f'failed to pull image "{c.get("image")}"'
                                         ": not found (kube-sandbox rule " + out.rule + ")"}}
                    events.append(("Warning", "Failed", f'Failed to pull image "{c.get("image")}": not found'))
                else:
                    state = {"running": {"startedAt": t}}
                    events.extend([("Normal", "Pulled", f'Container image "{c.get("image")}" already present on '
                                    "machine"), ("Normal", "Created", f"Created container: {c.get('name')}"),
                                   ("Normal", "Started", f"Started container {c.get('name')}")])
                # a container that exits at once under restartPolicy Always crash-loops: never ready
                crashing = out.exit_code is not None and not out.duration and spec.get("restartPolicy") == "Always"
                statuses.append(_cstatus(ns, name, c, pulled[str(c.get("image") or "")], state,
                                         ready="running" in state and out.ready and not crashing))
            status = {**st, "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}], "podIP": ip,
                      "podIPs": [{"ip": ip}], "startTime": t, "containerStatuses": statuses}
            if inits:
                status["initContainerStatuses"] = inits
            running = any("running" in s["state"] for s in statuses)
            status["phase"] = "Running" if running else "Pending"
            if init_failed and spec.get("restartPolicy", "Always") == "Never":
                status["phase"] = "Failed"
            status["conditions"] = _pod_conditions(status, not init_failed)
            o["status"] = status

        if self._pod_mutate(ns, name, uid, mutate) is not None:
            for c in spec.get("containers") or ():
                self.event(POD_KEY, ns, name, "Normal", "Pulling", f'Pulling image "{c.get("image")}"', "kubelet")
            for type_, reason, msg in events:
                self.event(POD_KEY, ns, name, type_, reason, msg, "kubelet")
            if init_failed:
                self.event(POD_KEY, ns, name, "Warning", "BackOff",
                           f"Back-off restarting failed container {init_failed}", "kubelet")

    def pod_exit(self, ns: str, name: str, uid: str) -> None:
        """Running containers with a decided exit terminate; the restart policy says what next."""
        with self.api.store.lock:
            pod = self.api.store.get(POD_KEY, ns, name)
            if pod is None:
                return
            outcomes = self._outcomes(pod)
        t = now_str()
        backoffs = []

        def mutate(o: dict) -> None:
            st = o.get("status") or {}
            policy = (o.get("spec") or {}).get("restartPolicy", "Always")
            statuses = []
            for cs in st.get("containerStatuses") or ():
                out = outcomes.get(cs.get("name")) or Outcome()
                running = (cs.get("state") or {}).get("running")
                if not running or out.exit_code is None:
                    statuses.append(cs)
                    continue
                code = out.exit_code
                term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                        "startedAt": running.get("startedAt", t), "finishedAt": t, "containerID": cs.get("containerID")}
                if policy == "Always" or (policy == "OnFailure" and code != 0):
                    backoffs.append(cs.get("name"))
                    statuses.append({**cs, "ready": False, "started": False, "restartCount": cs.get("restartCount", 0) + 1,
                                     "lastState": {"terminated": term}, "state": {"waiting": {
                                         "reason": "CrashLoopBackOff",
                                         "message": f"back-off restarting failed container {cs.get('name')}"}}})
                else:
                    statuses.append({**cs, "ready": False, "started": False, "state": {"terminated": term}})
            status = {**st, "containerStatuses": statuses}
            if all("terminated" in (s.get("state") or {}) for s in statuses):
                failed = any(s["state"]["terminated"]["exitCode"] != 0 for s in statuses)
                status["phase"] = "Failed" if failed else "Succeeded"
            status["conditions"] = _pod_conditions(status, True, done=status.get("phase") in ("Succeeded", "Failed"))
            o["status"] = status

        if self._pod_mutate(ns, name, uid, mutate) is not None:
            for c in backoffs:
                self.event(POD_KEY, ns, name, "Warning", "BackOff",
                           f"Back-off restarting failed container {c} in pod {name}_{ns}({uid})", "kubelet")

    def pod_restart(self, ns: str, name: str, uid: str) -> None:
        t = now_str()
        with self.api.store.lock:
            pod = self.api.store.get(POD_KEY, ns, name)
            if pod is None:
                return
            outcomes = self._outcomes(pod)

        def mutate(o: dict) -> None:
            st = o.get("status") or {}
            statuses = []
            for cs in st.get("containerStatuses") or ():
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") == "CrashLoopBackOff":
                    out = outcomes.get(cs.get("name")) or Outcome()
                    cs = {**cs, "started": True, "ready": out.ready and bool(out.duration),
                          "state": {"running": {"startedAt": t}}}
                statuses.append(cs)
            o["status"] = {**st, "containerStatuses": statuses}
            o["status"]["conditions"] = _pod_conditions(o["status"], True)

        self._pod_mutate(ns, name, uid, mutate)

    def pod_pull_backoff(self, ns: str, name: str, uid: str) -> None:
        def mutate(o: dict) -> None:
            st = o.get("status") or {}
            o["status"] = {**st, "containerStatuses": [
                {**cs, "state": {"waiting": {**cs["state"]["waiting"], "reason": "ImagePullBackOff"}}}
                if ((cs.get("state") or {}).get("waiting") or {}).get("reason") == "ErrImagePull" else cs
                for cs in st.get("containerStatuses") or ()]}

        if self._pod_mutate(ns, name, uid, mutate) is not None:
            self.event(POD_KEY, ns, name, "Normal", "BackOff", "Back-off pulling image", "kubelet")

    def _alloc_ip(self) -> str:
        n = self._next_ip
        self._next_ip += 1
        return f"10.244.{n // 254 % 256}.{n % 254 + 1}"

    # ------------------------------------------------------------------ owners
    def sync_owner(self, key, ns: str, name: str) -> None:
        {RS_KEY: self.sync_replicaset, STS_KEY: self.sync_statefulset, DS_KEY: self.sync_daemonset,
         JOB_KEY: self.sync_job}[key](ns, name)

    def _owned_pods(self, owner: dict) -> list[dict]:
        store = self.api.store
        ns = owner["metadata"].get("namespace", "")
        pods = [store.get(k, n_ns, n) for k, n_ns, n in store.dependents(owner["metadata"]["uid"]) if k == POD_KEY]
        return sorted((p for p in pods if p is not None and p["metadata"].get("namespace") == ns),
                      key=lambda p: p["metadata"]["name"])

    def _new_pod(self, owner: dict, pod_name: str, extra_labels: dict, spec_patch=None) -> None:
        spec = owner.get("spec") or {}
        template = spec.get("template") or {}
        tmeta = template.get("metadata") or {}
        meta = {"name": pod_name, "labels": {**(tmeta.get("labels") or {}), **extra_labels},
                "ownerReferences": [_owner(owner)]}
        ann = dict(tmeta.get("annotations") or {})
        if wants_failure(owner):  # legacy: the owner's annotation reaches its pods
            ann[OUTCOME] = "fail"
        if ann:
            meta["annotations"] = ann
        pod_spec = copy.deepcopy(template.get("spec") or {})
        if spec_patch:
            spec_patch(pod_spec)
        ns = owner["metadata"]["namespace"]
        if self.api.store.get(POD_KEY, ns, pod_name) is None:
            self.api.create(self._rt(POD_KEY), ns, {"metadata": meta, "spec": pod_spec}, MANAGER,
                            "kube-controller-manager")
            rt_key = OWNER_KINDS[owner["kind"]]
            self.schedule(0, self.event, rt_key, ns, owner["metadata"]["name"], "Normal", "SuccessfulCreate",
                          f"Created pod: {pod_name}", f"{owner['kind'].lower()}-controller")

    def _delete_pod(self, owner: dict, pod: dict) -> None:
        self.api._delete_locked(self._rt(POD_KEY), pod)
        self.schedule(0, self.event, OWNER_KINDS[owner["kind"]], owner["metadata"]["namespace"],
                      owner["metadata"]["name"], "Normal", "SuccessfulDelete",
                      f"Deleted pod: {pod['metadata']['name']}", f"{owner['kind'].lower()}-controller")

    def _live_owner(self, key, ns, name) -> dict | None:
        obj = self.api.store.get(key, ns, name)
        return None if obj is None or obj["metadata"].get("deletionTimestamp") else obj

    def sync_replicaset(self, ns: str, name: str) -> None:
        store = self.api.store
        with store.lock:
            rs = self._live_owner(RS_KEY, ns, name)
            if rs is None:
                return
            want = int((rs.get("spec") or {}).get("replicas", 1))
            pods = [p for p in self._owned_pods(rs) if not _terminal(p)]
            for p in sorted(pods, key=pod_ready)[:max(0, len(pods) - want)]:
                self._delete_pod(rs, p)
            for _ in range(want - len(pods)):
                self._new_pod(rs, f"{name}-" + "".join(random.choice(_ALPHANUMS) for _ in range(5)), {})
            pods = [p for p in self._owned_pods(rs) if not _terminal(p)]
            ready = sum(map(pod_ready, pods))
            self._set_status(RS_KEY, rs, {"replicas": len(pods), "fullyLabeledReplicas": len(pods),
                                          "readyReplicas": ready, "availableReplicas": ready})
            if (ref := _controller_of(rs)) and ref.get("kind") == "Deployment":
                self.schedule(0, self.sync_deployment, ns, ref.get("name"))  # it reads its pods' progress too

    def _set_status(self, key, obj: dict, status: dict, drop_zero: bool = True) -> None:
        gen = obj["metadata"].get("generation", 1)

        def mutate(o: dict) -> None:
            st = {k: v for k, v in {**(o.get("status") or {}), **status}.items()
                  if not (drop_zero and v == 0 and k in ("readyReplicas", "availableReplicas", "unavailableReplicas",
                                                          "numberUnavailable"))}
            st["observedGeneration"] = gen
            if "conditions" in st:
                st["conditions"] = _keep_times(st["conditions"], (o.get("status") or {}).get("conditions"))
            o["status"] = st

        self.api.set_status(self._rt(key), obj["metadata"]["namespace"], obj["metadata"]["name"], mutate)

    def sync_deployment(self, ns: str, name: str) -> None:
        """One ReplicaSet per pod-template hash (older ones scaled to zero); status from the ReplicaSets."""
        api, store = self.api, self.api.store
        rs_rt = self._rt(RS_KEY)
        with store.lock:
            dep = self._live_owner(DEP_KEY, ns, name)
            if dep is None:
                return
            spec = dep.get("spec") or {}
            h = template_hash(spec.get("template"))
            rs_name = f"{name}-{h}"
            n = int(spec.get("replicas", 1))
            owned = [store.get(k, o_ns, o_n) for k, o_ns, o_n in store.dependents(dep["metadata"]["uid"])
                     if k == RS_KEY]
            owned = [r for r in owned if r is not None]
            for r in owned:
                if r["metadata"]["name"] != rs_name and r["spec"].get("replicas", 1):
                    old_n = r["spec"].get("replicas", 1)
                    api.set_status(rs_rt, ns, r["metadata"]["name"], lambda o: o["spec"].update(replicas=0))
                    self.schedule(0, self.event, DEP_KEY, ns, name, "Normal", "ScalingReplicaSet",
                                  f"Scaled down replica set {r['metadata']['name']} from {old_n} to 0",
                                  "deployment-controller")
            new_rs = store.get(RS_KEY, ns, rs_name)
            revision = str(max([int((r["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision", 0)) for r in owned] + [0]) + (0 if new_rs else 1))
            if new_rs is None:
                template = copy.deepcopy(spec.get("template") or {})
                tmeta = template.setdefault("metadata", {})
                tmeta["labels"] = {**(tmeta.get("labels") or {}), "pod-template-hash": h}
                selector = copy.deepcopy(spec.get("selector") or {})
                selector["matchLabels"] = {**(selector.get("matchLabels") or {}), "pod-template-hash": h}
                new_rs = api.create(rs_rt, ns, {"metadata": {
                    "name": rs_name, "labels": tmeta["labels"], "annotations": {
                        "deployment.kubernetes.io/revision": revision,
                        "deployment.kubernetes.io/desired-replicas": str(n),
                        **({OUTCOME: "fail"} if wants_failure(dep) else {})},  # legacy: reaches the pods
                    "ownerReferences": [_owner(dep)]},
                    "spec": {"replicas": n, "selector": selector, "template": template}},
                    MANAGER, "kube-controller-manager")
                self.schedule(0, self.event, DEP_KEY, ns, name, "Normal", "ScalingReplicaSet",
                              f"Scaled up replica set {rs_name} from 0 to {n}", "deployment-controller")
                self.sync_replicaset(ns, rs_name)  # its pods now: one status write fewer for watchers
            elif new_rs["spec"].get("replicas", 1) != n:
                api.set_status(rs_rt, ns, rs_name, lambda o: o["spec"].update(replicas=n))
                self.sync_replicaset(ns, rs_name)
            rss = [r for r in (store.get(RS_KEY, ns, r["metadata"]["name"]) for r in owned + [new_rs]) if r]
            rss = list({r["metadata"]["name"]: r for r in rss}.values())
            new_rs = store.get(RS_KEY, ns, rs_name)
            total = sum((r.get("status") or {}).get("replicas", 0) for r in rss)
            ready = sum((r.get("status") or {}).get("readyReplicas", 0) for r in rss)
            available = sum((r.get("status") or {}).get("availableReplicas", 0) for r in rss)
            updated = (new_rs.get("status") or {}).get("replicas", 0)
            new_ready = (new_rs.get("status") or {}).get("availableReplicas", 0)
            complete = updated == n and total == n and new_ready == n
            deadline = int(spec.get("progressDeadlineSeconds", 600))
            started = _ts(new_rs["metadata"].get("creationTimestamp"))
            stuck = not complete and any(o.fast_deadline and (p.get("status") or {}).get("containerStatuses")
                                         for p in self._owned_pods(new_rs) for o in self._outcomes(p).values())
            if complete:
                prog = _cond("Progressing", "True", "NewReplicaSetAvailable",
                             f'ReplicaSet "{rs_name}" has successfully progressed.')
            elif stuck or time.time() - started > deadline:
                prog = _cond("Progressing", "False", "ProgressDeadlineExceeded",
                             f'ReplicaSet "{rs_name}" has timed out progressing.')
            else:
                prog = _cond("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
                self.schedule(max(0.0, started + deadline - time.time()) + 1, self.sync_deployment, ns, name)
            avail_ok = available >= n - _max_unavailable(spec, n)
            conds = [_cond("Available", "True" if avail_ok else "False",
                           "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
                           "Deployment has minimum availability." if avail_ok else
                           "Deployment does not have minimum availability."), prog]
            for c in conds:
                c["lastUpdateTime"] = c["lastTransitionTime"]
            st = {"replicas": total, "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                  "conditions": conds}
            if n - available > 0:
                st["unavailableReplicas"] = n - available
            self._set_status(DEP_KEY, dep, {"unavailableReplicas": 0, **st})  # zero counts are omitted

    def sync_statefulset(self, ns: str, name: str) -> None:
        store = self.api.store
        with store.lock:
            sts = self._live_owner(STS_KEY, ns, name)
            if sts is None:
                return
            spec = sts.get("spec") or {}
            want = int(spec.get("replicas", 1))
            rev = f"{name}-{template_hash(spec.get('template'))}"
            parallel = spec.get("podManagementPolicy") == "Parallel"
            pods = {p["metadata"]["name"]: p for p in self._owned_pods(sts)}
            policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
            for i in range(want, want + len(pods) + 1):  # scale down: highest ordinals go
                p = pods.pop(f"{name}-{i}", None)
                if p is not None:
                    self._delete_pod(sts, p)
                    if policy.get("whenScaled") == "Delete":
                        self._delete_claims(sts, i)
            for i in range(want):
                pod_name = f"{name}-{i}"
                if pod_name in pods:
                    continue
                if not parallel and not all(pod_ready(pods.get(f"{name}-{j}", {})) for j in range(i)):
                    break  # OrderedReady: the next ordinal waits for the previous ones
                self._claims(sts, i)
                self._new_pod(sts, pod_name, {"statefulset.kubernetes.io/pod-name": pod_name,
                                              "apps.kubernetes.io/pod-index": str(i),
                                              "controller-revision-hash": rev},
                              lambda s, i=i: self._mount_claims(sts, i, s))
                pods[pod_name] = store.get(POD_KEY, ns, pod_name)
            live = [p for p in pods.values() if p]
            outdated = [p for p in live if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != rev]
            strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
            if outdated and strategy == "RollingUpdate" and all(map(pod_ready, live)):
                self._delete_pod(sts, max(outdated, key=lambda p: p["metadata"]["name"]))  # recreated next sync
            ready = sum(map(pod_ready, live))
            updated = len(live) - len(outdated)
            cur = (sts.get("status") or {}).get("currentRevision") or rev
            if not outdated and len(live) == want:
                cur = rev
            self._set_status(STS_KEY, sts, {
                "replicas": len(live), "readyReplicas": ready, "availableReplicas": ready,
                "currentReplicas": updated if cur == rev else len(outdated), "updatedReplicas": updated,
                "currentRevision": cur, "updateRevision": rev, "collisionCount": 0})

    def _claim_name(self, sts: dict, tmpl: dict, i: int) -> str:
        return f"{(tmpl.get('metadata') or {}).get('name')}-{sts['metadata']['name']}-{i}"

    def _claims(self, sts: dict, i: int) -> None:
        """volumeClaimTemplates -> PVCs (owned by the StatefulSet when whenDeleted: Delete)."""
        spec = sts.get("spec") or {}
        ns = sts["metadata"]["namespace"]
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        sel = (spec.get("selector") or {}).get("matchLabels") or {}
        for tmpl in spec.get("volumeClaimTemplates") or ():
            cname = self._claim_name(sts, tmpl, i)
            if self.api.store.get(PVC_KEY, ns, cname) is not None:
                continue
            tmeta = tmpl.get("metadata") or {}
            meta = {"name": cname, "labels": {**(tmeta.get("labels") or {}), **sel}}
            if tmeta.get("annotations"):
                meta["annotations"] = dict(tmeta["annotations"])
            if policy.get("whenDeleted") == "Delete":
                meta["ownerReferences"] = [{**_owner(sts), "controller": True}]
            self.api.create(self._rt(PVC_KEY), ns, {"metadata": meta, "spec": copy.deepcopy(tmpl.get("spec") or {})},
                            MANAGER, "kube-controller-manager")
            self.schedule(0, self.event, STS_KEY, ns, sts["metadata"]["name"], "Normal", "SuccessfulCreate",
                          f"create Claim {cname} Pod {sts['metadata']['name']}-{i} in StatefulSet "
                          f"{sts['metadata']['name']} success", "statefulset-controller")

    def _mount_claims(self, sts: dict, i: int, pod_spec: dict) -> None:
        vols = [v for v in pod_spec.get("volumes") or () if v.get("name") not in
                {(t.get("metadata") or {}).get("name") for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or ()}]
        for tmpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or ():
            vols.append({"name": (tmpl.get("metadata") or {}).get("name"),
                         "persistentVolumeClaim": {"claimName": self._claim_name(sts, tmpl, i)}})
        if vols:
            pod_spec["volumes"] = vols

    def _delete_claims(self, sts: dict, i: int) -> None:
        ns = sts["metadata"]["namespace"]
        for tmpl in (sts.get("spec") or {}).get("volumeClaimTemplates") or ():
            pvc = self.api.store.get(PVC_KEY, ns, self._claim_name(sts, tmpl, i))
            if pvc is not None:
                self.api._delete_locked(self._rt(PVC_KEY), pvc)

    def sync_daemonset(self, ns: str, name: str) -> None:
        store = self.api.store
        with store.lock:
            ds = self._live_owner(DS_KEY, ns, name)
            if ds is None:
                return
            rev = template_hash((ds.get("spec") or {}).get("template"))
            pods = [p for p in self._owned_pods(ds) if not _terminal(p)]
            for p in pods:
                if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != rev:
                    self._delete_pod(ds, p)
            pods = [p for p in self._owned_pods(ds) if not _terminal(p)]
            if not pods:
                self._new_pod(ds, f"{name}-" + "".join(random.choice(_ALPHANUMS) for _ in range(5)),
                              {"controller-revision-hash": rev, "pod-template-generation":
                               str(ds["metadata"].get("generation", 1))},
                              lambda s: s.update(nodeName="sandbox-node"))
                pods = [p for p in self._owned_pods(ds) if not _terminal(p)]
            ready = sum(map(pod_ready, pods))
            self._set_status(DS_KEY, ds, {
                "desiredNumberScheduled": 1, "currentNumberScheduled": len(pods), "numberMisscheduled": 0,
                "updatedNumberScheduled": len(pods), "numberReady": ready, "numberAvailable": ready,
                "numberUnavailable": 1 - ready})

    def sync_job(self, ns: str, name: str) -> None:
        store = self.api.store
        with store.lock:
            job = self._live_owner(JOB_KEY, ns, name)
            if job is None:
                return
            spec, st = job.get("spec") or {}, job.get("status") or {}
            conds = st.get("conditions") or []
            done = next((c["type"] for c in conds if c.get("type") in ("Complete", "Failed")
                         and c.get("status") == "True"), None)
            pods = self._owned_pods(job)
            active = [p for p in pods if not _terminal(p)]
            succeeded = sum(1 for p in pods if p["status"].get("phase") == "Succeeded")
            failed = sum(1 for p in pods if p["status"].get("phase") == "Failed") + sum(
                cs.get("restartCount", 0) for p in active for cs in (p.get("status") or {}).get("containerStatuses") or ())
            completions = int(spec.get("completions") or 1)
            parallelism = int(spec.get("parallelism", 1))
            limit = int(spec.get("backoffLimit", 6))
            t = now_str()
            status = {"startTime": st.get("startTime") or t, "active": len(active), "failed": failed,
                      "succeeded": succeeded, "ready": sum(map(pod_ready, active)), "terminating": 0,
                      "uncountedTerminatedPods": {}}
            deadline = spec.get("activeDeadlineSeconds")
            if done:
                return
            reason = None
            if failed > limit:
                reason, msg = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            elif deadline and time.time() - _ts(status["startTime"]) > int(deadline):
                reason, msg = "DeadlineExceeded", "Job was active longer than specified deadline"
            if reason:
                for p in active:
                    self._delete_pod(job, p)
                status.update(active=0, ready=0, conditions=[_cond("FailureTarget", "True", reason, msg),
                                                             _cond("Failed", "True", reason, msg)])
                self.schedule(0, self.event, JOB_KEY, ns, name, "Warning", reason, msg, "job-controller")
                self._finished(job)
            elif succeeded >= completions:
                msg = "Reached expected number of succeeded pods"
                status.update(completionTime=t, conditions=[_cond("SuccessCriteriaMet", "True", "CompletionsReached", msg),
                                                            _cond("Complete", "True", "CompletionsReached", msg)])
                self.schedule(0, self.event, JOB_KEY, ns, name, "Normal", "Completed", "Job completed",
                              "job-controller")
                self._finished(job)
            elif not spec.get("suspend"):
                for _ in range(min(parallelism, completions - succeeded) - len(active)):
                    self._new_pod(job, f"{name}-" + "".join(random.choice(_ALPHANUMS) for _ in range(5)), {
                        "job-name": name, "batch.kubernetes.io/job-name": name,
                        "controller-uid": job["metadata"]["uid"],
                        "batch.kubernetes.io/controller-uid": job["metadata"]["uid"]},
                        lambda s: s.setdefault("restartPolicy", "Never"))
                status["active"] = len([p for p in self._owned_pods(job) if not _terminal(p)])
                if deadline:
                    self.schedule(int(deadline) + 0.5, self.sync_job, ns, name)
            self._set_status(JOB_KEY, job, status, drop_zero=False)

    def _finished(self, job: dict) -> None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is not None:
            self.schedule(float(ttl), self._expire_job, job["metadata"]["namespace"], job["metadata"]["name"],
                          job["metadata"]["uid"])

    def _expire_job(self, ns: str, name: str, uid: str) -> None:
        with self.api.store.lock:
            job = self.api.store.get(JOB_KEY, ns, name)
            if job is not None and job["metadata"]["uid"] == uid:
                self.api._delete_locked(self._rt(JOB_KEY), job)

    # ------------------------------------------------------------------ services
    def sync_endpoints_for_pod(self, ns: str, pod_name: str) -> None:
        store = self.api.store
        with store.lock:
            pod = store.get(POD_KEY, ns, pod_name)
            if pod is None:  # gone: every Service that selects anything here re-counts
                names = {n for (s_ns, _, _), ns_names in self._selectors.items() if s_ns == ns for n in ns_names}
            else:  # the Services with a selector term this pod's labels satisfy, then the whole selector
                labels = pod["metadata"].get("labels") or {}
                names = set().union(*(self._selectors.get((ns, k, v), ()) for k, v in labels.items()))
            for svc_name in sorted(names):
                svc = store.get(SVC_KEY, ns, svc_name)
                sel = ((svc or {}).get("spec") or {}).get("selector") or {}
                if pod is None or (sel and all((pod["metadata"].get("labels") or {}).get(k) == v
                                               for k, v in sel.items())):
                    self.schedule(0, self.sync_endpoints, ns, svc_name)

    def sync_endpoints(self, ns: str, name: str) -> None:
        """Endpoints and an EndpointSlice for a Service with a selector: its pods that have an IP."""
        api, store = self.api, self.api.store
        with store.lock:
            svc = store.get(SVC_KEY, ns, name)
            spec = (svc or {}).get("spec") or {}
            selector = spec.get("selector")
            if svc is None or not selector or spec.get("type") == "ExternalName":
                if svc is None:
                    for key in (EP_KEY,):
                        old = store.get(key, ns, name)
                        if old is not None:
                            api._delete_locked(self._rt(key), old)
                return
            reqs = parse_label_selector(",".join(f"{k}={v}" for k, v in selector.items()))
            k0, v0 = next(iter(selector.items()))
            pods = [e.obj for e in store.by_label(POD_KEY, k0, v0)
                    if e.obj["metadata"].get("namespace") == ns and labels_match(reqs, e.obj["metadata"].get("labels"))
                    and (e.obj.get("status") or {}).get("podIP") and not _terminal(e.obj)
                    and not e.obj["metadata"].get("deletionTimestamp")]
            pods.sort(key=lambda p: p["metadata"]["name"])
            ports = [{"name": p.get("name"), "port": _target_port(p, pods), "protocol": p.get("protocol", "TCP")}
                     for p in spec.get("ports") or ()]
            ports = [{k: v for k, v in p.items() if v is not None} for p in ports]

            def addr(p):
                return {"ip": p["status"]["podIP"], "nodeName": "sandbox-node", "targetRef": {
                    "kind": "Pod", "namespace": ns, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}}

            ready = [addr(p) for p in pods if pod_ready(p)]
            unready = [addr(p) for p in pods if not pod_ready(p)]
            subset = {k: v for k, v in (("addresses", ready), ("notReadyAddresses", unready), ("ports", ports)) if v}
            labels = {**(svc["metadata"].get("labels") or {}), "endpoints.kubernetes.io/managed-by":
                      "endpoint-controller"}
            self._upsert(EP_KEY, ns, {"metadata": {"name": name, "labels": labels},
                                      "subsets": [subset] if pods else []}, ("subsets",))
            slice_name = f"{name}-{template_hash(svc['metadata']['uid'])[:5]}"
            self._upsert(SLICE_KEY, ns, {
                "metadata": {"name": slice_name, "labels": {
                    **(svc["metadata"].get("labels") or {}), "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                    "ownerReferences": [_owner(svc)]},
                "addressType": "IPv4", "ports": ports,
                "endpoints": [{"addresses": [p["status"]["podIP"]], "nodeName": "sandbox-node",
                               "conditions": {"ready": pod_ready(p), "serving": pod_ready(p), "terminating": False},
                               "targetRef": addr(p)["targetRef"]} for p in pods]}, ("endpoints", "ports"))

    def _upsert(self, key, ns: str, body: dict, fields: tuple[str, ...]) -> None:
        rt = self._rt(key)
        name = body["metadata"]["name"]
        if self.api.store.get(key, ns, name) is None:
            self.api.create(rt, ns, body, MANAGER, "kube-controller-manager")
        else:
            self.api.set_status(rt, ns, name, lambda o: o.update({f: body[f] for f in fields}))

    def lb_address(self, ns: str, name: str) -> None:
        n = _fnv32a(f"{ns}/{name}".encode()) % 250 + 2

        def mutate(o):
            o["status"] = {"loadBalancer": {"ingress": [{"ip": f"172.18.255.{n}", "ipMode": "VIP"}]}}

        self.api.set_status(self._rt(SVC_KEY), ns, name, mutate)

    def pvc_bind(self, ns: str, name: str) -> None:
        def mutate(o):
            spec = o.get("spec") or {}
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            o["spec"] = {**spec, "volumeName": f"pvc-{o['metadata']['uid']}",
                         "storageClassName": spec.get("storageClassName") or "standard",
                         "volumeMode": spec.get("volumeMode", "Filesystem")}
            o["status"] = {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                           "capacity": {"storage": storage}}

        self.api.set_status(self._rt(PVC_KEY), ns, name, mutate)

    # ------------------------------------------------------------------ namespaces, CRDs
    def finalize_namespace(self, name: str) -> None:
        api, store = self.api, self.api.store
        with store.lock:
            ns_obj = store.get(NS_KEY, "", name)
            if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
                return
            for key, entry in store.namespace_contents(name):
                rt = self._rt(key)
                if rt is not None and not entry.obj["metadata"].get("deletionTimestamp"):
                    api._delete_locked(rt, entry.obj)
            if store.namespace_contents(name):
                self.schedule(0.2, self.finalize_namespace, name)
                return
            ns_rt = self._rt(NS_KEY)
            if (ns_obj.get("spec") or {}).get("finalizers"):
                api.set_status(ns_rt, "", name, lambda o: o["spec"].update(finalizers=[]))
                ns_obj = store.get(NS_KEY, "", name)
            if not ns_obj["metadata"].get("finalizers"):
                api._remove_locked(ns_rt, ns_obj)

    def _establish(self, name: str) -> None:
        def mutate(o):
            spec = o.get("spec") or {}
            o["status"] = {"acceptedNames": spec.get("names") or {},
                           "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
                           "conditions": [_cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
                                          _cond("Established", "True", "InitialNamesAccepted",
                                                "the initial names have been accepted")]}

        self.api.set_status(self._rt(CRD_KEY), "", name, mutate)

    def _drop_custom_objects(self, key) -> None:
        store = self.api.store
        with store.lock:
            for e in list(store.entries(key, None)):
                m = e.obj["metadata"]
                final = dict(e.obj)
                final["metadata"] = {**m, "resourceVersion": str(store.next_rv())}
                store.remove(key, m.get("namespace", ""), m["name"], final)


# ---------------------------------------------------------------------------- pod lifecycle as data
def _cstatus(ns: str, name: str, c: dict, image: str, state: dict, ready: bool) -> dict:
    cname = c.get("name")
    cid = f"sandbox://{_fnv32a(f'{ns}/{name}/{cname}'.encode()):08x}"
    return {"name": c.get("name"), "image": c.get("image", ""), "imageID": image,
            "containerID": cid, "ready": ready, "started": "running" in state, "restartCount": 0, "state": state}


def image_id(image: str, pulled: str | None = None) -> str:
    """``status.containerStatuses[].imageID`` as containerd reports it: the normalized repository
    at the digest that runs (``docker.io/library/nginx@sha256:…``). A reference with a digest runs
    that digest; a tag runs ``pulled`` (what the sandbox's ``image_digest`` found, e.g. in a
    registry mirror), else a digest made from the reference (the sandbox pulls nothing)."""
    name, _, digest = image.partition("@")
    digest = digest or pulled
    if name.rfind(":") > name.rfind("/"):
        name = name[:name.rfind(":")]
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        name = f"docker.io/{name if rest else 'library/' + name}"
    elif first == "index.docker.io":
        name = f"docker.io/{rest}"
    return f"{name}@{digest or 'sha256:' + hashlib.sha256(image.encode()).hexdigest()}"


def _pod_conditions(status: dict, initialized: bool, done: bool = False) -> list[dict]:
    cs = status.get("containerStatuses") or []
    ready = bool(cs) and all(c.get("ready") for c in cs) and not done
    reason = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(status.get("phase"), "")
    return [_cond("PodReadyToStartContainers", "True"), _cond("PodScheduled", "True"),
            _cond("Initialized", "True" if initialized else "False", reason if initialized else "ContainersNotInitialized"),
            _cond("ContainersReady", "True" if ready else "False", reason),
            _cond("Ready", "True" if ready else "False", reason)]


def _waiting(st: dict, reason: str) -> bool:
    return any(((cs.get("state") or {}).get("waiting") or {}).get("reason") == reason
               for cs in st.get("containerStatuses") or ())


def _running_finite(st: dict, outcomes: dict) -> bool:
    return any((cs.get("state") or {}).get("running") and (outcomes.get(cs.get("name")) or Outcome()).exit_code
               is not None for cs in st.get("containerStatuses") or ())


def _restarts(st: dict) -> int:
    return max([cs.get("restartCount", 0) for cs in st.get("containerStatuses") or ()] + [0])


# (step, applies to a pod whose status is ..., after how many seconds); first that applies is scheduled.
POD_STEPS = (
    ("pod_start", lambda c, pod, st, out: st.get("phase") == "Pending" and not st.get("containerStatuses"),
     lambda c, pod, st, out: max([o.delay for o in out.values() if o.delay is not None] or [c.ready_delay])),
    ("pod_pull_backoff", lambda c, pod, st, out: _waiting(st, "ErrImagePull"),
     lambda c, pod, st, out: max(c.ready_delay, 1.0)),
    ("pod_exit", lambda c, pod, st, out: _running_finite(st, out),
     lambda c, pod, st, out: c.ready_delay + max([o.duration or 0.0 for o in out.values()] or [0.0])),
    ("pod_restart", lambda c, pod, st, out: _waiting(st, "CrashLoopBackOff"),
     lambda c, pod, st, out: min(BACKOFF_CAP, c.ready_delay * 2 ** min(_restarts(st), 12))),
)


def _endpoint_view(pod: dict) -> tuple:
    """What of a pod its Services' endpoints depend on."""
    meta, st = pod.get("metadata") or {}, pod.get("status") or {}
    return (tuple(sorted((meta.get("labels") or {}).items())), st.get("podIP"), pod_ready(pod), st.get("phase"),
            bool(meta.get("deletionTimestamp")))


def _target_port(port: dict, pods: list[dict]):
    tp = port.get("targetPort", port.get("port"))
    if isinstance(tp, int) or (isinstance(tp, str) and tp.isdigit()):
        return int(tp)
    for p in pods:
        for c in (p.get("spec") or {}).get("containers") or ():
            for cp in c.get("ports") or ():
                if cp.get("name") == tp:
                    return cp.get("containerPort")
    return None
