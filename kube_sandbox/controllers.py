"""Simulated controllers: the outcomes a cluster would report, without running anything.

Workloads become ready ``ready_delay`` seconds after each spec change; pods run and, unless
``restartPolicy: Always``, terminate; jobs complete; PVCs bind; LoadBalancer services get an
address; namespaces finalize; CRDs become established and serve their kinds.  The annotation
``sandbox.stackyard.io/outcome: fail`` (on the object or its pod template) makes the
simulation report failure instead.
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import itertools
import logging
import random
import threading
import time

from .api import CRD_KEY, NS_KEY, Api, now_str
from .errors import ApiError
from .resources import Registry, crd_types

log = logging.getLogger(__name__)

OUTCOME = "sandbox.stackyard.io/outcome"
LOGS = "sandbox.stackyard.io/logs"
OWNER_KINDS = {"ReplicaSet": ("apps", "replicasets"), "StatefulSet": ("apps", "statefulsets"),
               "DaemonSet": ("apps", "daemonsets")}
WORKLOADS = {("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"), ("apps", "replicasets")}


def wants_failure(obj: dict) -> bool:
    ann = (obj.get("metadata") or {}).get("annotations") or {}
    tmpl = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    jt = ((((obj.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template") or {})
    return "fail" in (ann.get(OUTCOME), tmpl.get(OUTCOME), ((jt.get("metadata") or {}).get("annotations") or {})
                      .get(OUTCOME))


def _hash(obj: dict) -> str:
    return hashlib.sha256(repr((obj.get("spec") or {}).get("template")).encode()).hexdigest()[:10]


def _owner(obj: dict) -> dict:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def _cond(type_: str, status: str, reason: str = "", message: str = "") -> dict:
    t = now_str()
    c = {"type": type_, "status": status, "lastTransitionTime": t}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


class Controllers:
    def __init__(self, api: Api, registry: Registry, ready_delay: float):
        self.api, self.registry, self.ready_delay = api, registry, ready_delay
        self._heap: list = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
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
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), fn, args))
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
                fn(*args)
            except ApiError as exc:
                if exc.code == 403:  # its namespace is terminating: a real controller gets the same and stops
                    log.debug("controller task %s: %s", getattr(fn, "__name__", fn), exc.message)
                else:
                    log.exception("controller task %s failed", getattr(fn, "__name__", fn))
            except Exception:  # a controller bug must not kill the loop
                log.exception("controller task %s failed", getattr(fn, "__name__", fn))

    def _rt(self, key):
        return self.api._rt_for_key(key)

    # ------------------------------------------------------------------ dispatch (store lock held)
    def on_event(self, type_: str, key, obj: dict, old: dict | None) -> None:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        if key == CRD_KEY:
            self._on_crd(type_, obj)
            return
        if type_ == "DELETED":
            if key == ("", "pods"):  # a controller replaces the pods it owns
                for ref in meta.get("ownerReferences") or ():
                    owner_key = OWNER_KINDS.get(ref.get("kind"))
                    if owner_key and ref.get("controller"):
                        self.schedule(0, self.workload_pods, owner_key, ns, ref.get("name"))
            return
        deleting = bool(meta.get("deletionTimestamp"))
        if key == NS_KEY:
            if deleting:
                self.schedule(0, self.finalize_namespace, name)
            return
        if deleting:
            return
        status = obj.get("status") or {}
        if key in WORKLOADS:
            gen = meta.get("generation", 1)
            if status.get("observedGeneration") != gen:
                self.schedule(0, self.workload, key, ns, name, gen, False)
                self.schedule(self.ready_delay, self.workload, key, ns, name, gen, True)
            if old is None or old.get("spec") != obj.get("spec"):
                self.schedule(0, self.deployment_rs if key[1] == "deployments" else self.workload_pods, key, ns, name)
        elif key == ("batch", "jobs") and type_ == "ADDED":
            self.schedule(0, self.job_start, ns, name)
            self.schedule(0, self.workload_pods, key, ns, name)
        elif key == ("", "pods") and type_ == "ADDED":
            self.schedule(self.ready_delay, self.pod_start, ns, name)
        elif key == ("", "persistentvolumeclaims") and type_ == "ADDED":
            self.schedule(self.ready_delay, self.pvc_bind, ns, name)
        elif key == ("", "services") and (obj.get("spec") or {}).get("type") == "LoadBalancer":
            if not (status.get("loadBalancer") or {}).get("ingress"):
                self.schedule(self.ready_delay, self.lb_address, ns, name)

    # ------------------------------------------------------------------ workloads
    def workload(self, key, ns: str, name: str, gen: int, settle: bool) -> None:
        rt = self._rt(key)

        def mutate(o: dict) -> None:
            if o["metadata"].get("generation", 1) != gen:
                return
            fail = wants_failure(o)
            spec = o.get("spec") or {}
            n = int(spec.get("replicas", 1)) if key[1] != "daemonsets" else 1
            ready = n if settle and not fail else 0
            st = dict(o.get("status") or {})
            st["observedGeneration"] = gen
            if key[1] == "deployments":
                st.update(replicas=n, updatedReplicas=n if settle else 0, readyReplicas=ready,
                          availableReplicas=ready)
                st.pop("unavailableReplicas", None)
                if n - ready:
                    st["unavailableReplicas"] = n - ready
                rs = f"{name}-{_hash(o)}"
                if not settle:
                    conds = [_cond("Available", "True" if st.get("availableReplicas") else "False",
                                   "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
                             _cond("Progressing", "True", "ReplicaSetUpdated",
                                   f'ReplicaSet "{rs}" is progressing.')]
                elif fail:
                    conds = [_cond("Available", "False", "MinimumReplicasUnavailable",
                                   "Deployment does not have minimum availability."),
                             _cond("Progressing", "False", "ProgressDeadlineExceeded",
                                   f'ReplicaSet "{rs}" has timed out progressing.')]
                else:
                    conds = [_cond("Available", "True", "MinimumReplicasAvailable",
                                   "Deployment has minimum availability."),
                             _cond("Progressing", "True", "NewReplicaSetAvailable",
                                   f'ReplicaSet "{rs}" has successfully progressed.')]
                for c in conds:
                    c["lastUpdateTime"] = c["lastTransitionTime"]
                st["conditions"] = conds
            elif key[1] == "statefulsets":
                rev = f"{name}-{_hash(o)}"
                st.update(replicas=n, readyReplicas=ready, availableReplicas=ready, currentReplicas=n if settle else 0,
                          updatedReplicas=n if settle else 0, currentRevision=rev, updateRevision=rev,
                          collisionCount=0)
            elif key[1] == "daemonsets":
                st.update(desiredNumberScheduled=1, currentNumberScheduled=1, numberMisscheduled=0,
                          updatedNumberScheduled=1 if settle else 0, numberReady=ready, numberAvailable=ready)
                st.pop("numberUnavailable", None)
                if not ready:
                    st["numberUnavailable"] = 1
            else:  # replicasets
                st.update(replicas=n, fullyLabeledReplicas=n, readyReplicas=ready, availableReplicas=ready)
            o["status"] = st

        self.api.set_status(rt, ns, name, mutate)

    # ------------------------------------------------------------------ owned objects
    def deployment_rs(self, key, ns: str, name: str) -> None:
        """Keep one ReplicaSet per pod-template hash; older ones are scaled to zero."""
        api, store = self.api, self.api.store
        rs_rt = self._rt(("apps", "replicasets"))
        with store.lock:
            dep = store.get(key, ns, name)
            if dep is None or dep["metadata"].get("deletionTimestamp"):
                return
            spec = dep.get("spec") or {}
            h = _hash(dep)
            rs_name = f"{name}-{h}"
            n = int(spec.get("replicas", 1))
            for k, rs_ns, rs_n in store.dependents(dep["metadata"]["uid"]):
                if k == rs_rt.key and rs_n != rs_name:
                    api.set_status(rs_rt, rs_ns, rs_n, lambda o: o["spec"].update(replicas=0))
            if store.get(rs_rt.key, ns, rs_name) is not None:
                api.set_status(rs_rt, ns, rs_name, lambda o: o["spec"].update(replicas=n))
                return
            template = copy.deepcopy(spec.get("template") or {})
            tmeta = template.setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), "pod-template-hash": h}
            selector = copy.deepcopy(spec.get("selector") or {})
            selector["matchLabels"] = {**(selector.get("matchLabels") or {}), "pod-template-hash": h}
            api.create(rs_rt, ns, {"metadata": {
                "name": rs_name, "labels": tmeta["labels"], "annotations": {
                    "deployment.kubernetes.io/revision": str(dep["metadata"].get("generation", 1))},
                "ownerReferences": [_owner(dep)]},
                "spec": {"replicas": n, "selector": selector, "template": template}},
                {"fieldValidation": "Ignore"}, "kube-controller-manager")

    def workload_pods(self, key, ns: str, name: str) -> None:
        """Create or delete the pods of a ReplicaSet, StatefulSet, DaemonSet or Job."""
        api, store = self.api, self.api.store
        pod_rt = self._rt(("", "pods"))
        with store.lock:
            owner = store.get(key, ns, name)
            if owner is None or owner["metadata"].get("deletionTimestamp"):
                return
            spec = owner.get("spec") or {}
            want = {"daemonsets": 1, "jobs": 1}.get(key[1], int(spec.get("replicas", 1)))
            pods = sorted(n for k, _, n in store.dependents(owner["metadata"]["uid"]) if k == pod_rt.key)
            for extra in pods[want:] if key[1] != "jobs" else []:
                pod = store.get(pod_rt.key, ns, extra)
                if pod is not None:
                    api._delete_locked(pod_rt, pod)
            template = spec.get("template") or {}
            tmeta = template.get("metadata") or {}
            for i in range(len(pods), want):
                if key[1] == "statefulsets":
                    pod_name = f"{name}-{i}"
                else:
                    pod_name = f"{name}-" + "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
                labels = dict(tmeta.get("labels") or {})
                if key[1] == "jobs":
                    labels.update({"job-name": name, "batch.kubernetes.io/job-name": name,
                                   "controller-uid": owner["metadata"]["uid"]})
                if key[1] == "statefulsets":
                    labels["statefulset.kubernetes.io/pod-name"] = pod_name
                meta = {"name": pod_name, "labels": labels, "ownerReferences": [_owner(owner)]}
                ann = dict(tmeta.get("annotations") or {})
                if wants_failure(owner):
                    ann[OUTCOME] = "fail"
                if ann:
                    meta["annotations"] = ann
                pod_spec = copy.deepcopy(template.get("spec") or {})
                if key[1] == "jobs":
                    pod_spec.setdefault("restartPolicy", "Never")
                if store.get(pod_rt.key, ns, pod_name) is None:
                    api.create(pod_rt, ns, {"metadata": meta, "spec": pod_spec}, {"fieldValidation": "Ignore"},
                               "kube-controller-manager")

    # ------------------------------------------------------------------ pods
    def pod_start(self, ns: str, name: str) -> None:
        rt = self._rt(("", "pods"))
        t = now_str()
        terminates = [False]

        def mutate(o: dict) -> None:
            if o["metadata"].get("deletionTimestamp") or (o.get("status") or {}).get("phase") != "Pending":
                return
            spec = o.get("spec") or {}
            o["spec"] = {**spec, "nodeName": spec.get("nodeName") or "sandbox-node"}
            crash = spec.get("restartPolicy", "Always") == "Always" and wants_failure(o)
            statuses = []
            for c in spec.get("containers") or []:
                cid = hashlib.sha256(f"{ns}/{name}/{c.get('name')}".encode()).hexdigest()
                state = ({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container"}}
                         if crash else {"running": {"startedAt": t}})
                statuses.append({"name": c.get("name"), "image": c.get("image", ""),
                                 "imageID": f"sandbox://{c.get('image', '')}", "containerID": f"sandbox://{cid}",
                                 "ready": not crash, "started": not crash, "restartCount": 3 if crash else 0,
                                 "state": state})
            o["status"] = {
                "phase": "Running", "hostIP": "10.0.0.1", "podIP": f"10.244.0.{int(hashlib.sha256(name.encode()).hexdigest(), 16) % 250 + 2}",
                "startTime": t, "qosClass": (o.get("status") or {}).get("qosClass", "BestEffort"),
                "conditions": [_cond("PodScheduled", "True"), _cond("Initialized", "True"),
                               _cond("ContainersReady", "False" if crash else "True"),
                               _cond("Ready", "False" if crash else "True")],
                "containerStatuses": statuses}
            terminates[0] = spec.get("restartPolicy", "Always") != "Always"

        self.api.set_status(rt, ns, name, mutate)
        if terminates[0]:
            self.schedule(self.ready_delay, self.pod_finish, ns, name)

    def pod_finish(self, ns: str, name: str) -> None:
        rt = self._rt(("", "pods"))
        t = now_str()

        def mutate(o: dict) -> None:
            st = o.get("status") or {}
            if st.get("phase") != "Running":
                return
            fail = wants_failure(o)
            code = 1 if fail else 0
            statuses = []
            for cs in st.get("containerStatuses") or []:
                started = (cs.get("state") or {}).get("running", {}).get("startedAt", t)
                statuses.append({**cs, "ready": False, "started": False, "state": {"terminated": {
                    "exitCode": code, "reason": "Error" if fail else "Completed", "startedAt": started,
                    "finishedAt": t, "containerID": cs.get("containerID")}}})
            reason = "PodFailed" if fail else "PodCompleted"
            o["status"] = {**st, "phase": "Failed" if fail else "Succeeded", "containerStatuses": statuses,
                           "conditions": [_cond("PodScheduled", "True"), _cond("Initialized", "True", reason),
                                          _cond("ContainersReady", "False", reason), _cond("Ready", "False", reason)]}

        self.api.set_status(rt, ns, name, mutate)

    # ------------------------------------------------------------------ jobs, PVCs, services
    def job_start(self, ns: str, name: str) -> None:
        rt = self._rt(("batch", "jobs"))
        t = now_str()

        def mutate(o):
            if not (o.get("status") or {}).get("startTime"):
                o["status"] = {"startTime": t, "active": 1, "ready": 0, "terminating": 0,
                               "uncountedTerminatedPods": {}}

        self.api.set_status(rt, ns, name, mutate)
        self.schedule(self.ready_delay, self.job_finish, ns, name)

    def job_finish(self, ns: str, name: str) -> None:
        rt = self._rt(("batch", "jobs"))
        t = now_str()

        def mutate(o):
            spec = o.get("spec") or {}
            st = {k: v for k, v in (o.get("status") or {}).items() if k != "active"}
            st["ready"] = 0
            if wants_failure(o):
                st.update(failed=int(spec.get("backoffLimit", 6)) + 1, conditions=[
                    _cond("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
                    _cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")])
            else:
                st.update(succeeded=int(spec.get("completions", 1)), completionTime=t, conditions=[
                    _cond("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
                    _cond("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")])
            o["status"] = st

        self.api.set_status(rt, ns, name, mutate)

    def pvc_bind(self, ns: str, name: str) -> None:
        rt = self._rt(("", "persistentvolumeclaims"))

        def mutate(o):
            spec = o.get("spec") or {}
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            o["spec"] = {**spec, "volumeName": f"pvc-{o['metadata']['uid']}",
                         "storageClassName": spec.get("storageClassName") or "standard",
                         "volumeMode": spec.get("volumeMode", "Filesystem")}
            o["status"] = {"phase": "Bound", "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                           "capacity": {"storage": storage}}

        self.api.set_status(rt, ns, name, mutate)

    def lb_address(self, ns: str, name: str) -> None:
        rt = self._rt(("", "services"))
        n = int(hashlib.sha256(f"{ns}/{name}".encode()).hexdigest(), 16) % 250 + 2

        def mutate(o):
            o["status"] = {"loadBalancer": {"ingress": [{"ip": f"172.18.255.{n}", "ipMode": "VIP"}]}}

        self.api.set_status(rt, ns, name, mutate)

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

    def _on_crd(self, type_: str, obj: dict) -> None:
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

    def _establish(self, name: str) -> None:
        rt = self._rt(CRD_KEY)

        def mutate(o):
            spec = o.get("spec") or {}
            o["status"] = {"acceptedNames": spec.get("names") or {},
                           "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
                           "conditions": [_cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
                                          _cond("Established", "True", "InitialNamesAccepted",
                                                "the initial names have been accepted")]}

        self.api.set_status(rt, "", name, mutate)

    def _drop_custom_objects(self, key) -> None:
        store = self.api.store
        with store.lock:
            for e in list(store.entries(key, None)):
                m = e.obj["metadata"]
                final = dict(e.obj)
                final["metadata"] = {**m, "resourceVersion": str(store.next_rv())}
                store.remove(key, m.get("namespace", ""), m["name"], final)
