"""Test hooks on the cluster through the kubernetes Python client: create, observe, logs, delete.

What helm's kube client does for a hook, per object: Pods and Jobs are created from the hook's
manifest and watched until they finish (a Pod by its phase, a Job by its ``Complete``/``Failed``
condition); every other kind is created through the dynamic client and is done. Observation lists
each kind once per namespace (raw JSON, not models: a list of hundreds of pods stays cheap).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from stackyard.core.system_tests import ABSENT, RUNNING, HookRejectedError, Observed, Phase, TestHook

_JOB_NAME_LABEL = "job-name"
FIELD_MANAGER = "helm"  # helm 4's own: a later `helm test` applies onto these objects without conflicts


def _rejection(exc: Any) -> str:
    """The API server's own message (``Status.message``) when it gave one."""
    try:
        message = json.loads(exc.body).get("message")
    except (TypeError, ValueError, AttributeError):
        message = None
    return f"{exc.status} {exc.reason}: {message}" if message else f"{exc.status} {exc.reason}"


def _pod_state(pod: dict[str, Any]) -> Observed:
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase == "Succeeded":
        return Observed(Phase.SUCCEEDED)
    if phase == "Failed":
        ended = [
            f"container {cs.get('name')} exited {t.get('exitCode')} ({t.get('reason') or 'no reason'})"
            for cs in status.get("containerStatuses") or []
            if (t := (cs.get("state") or {}).get("terminated"))
        ]
        return Observed(Phase.FAILED, "; ".join(ended) or status.get("reason") or "pod failed")
    return Observed(RUNNING)


def _job_state(job: dict[str, Any]) -> Observed:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return Observed(Phase.SUCCEEDED)
        if condition.get("type") == "Failed":
            return Observed(Phase.FAILED, f"job failed: {condition.get('reason') or condition.get('message') or ''}")
    return Observed(RUNNING)


class KubeTestHooks:
    """The ``TestCluster`` (:mod:`stackyard.steps.system_tests`) of one release namespace."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes.client import BatchV1Api, CoreV1Api

        self.api_client, self.namespace = api_client, namespace
        self.core, self.batch = CoreV1Api(api_client), BatchV1Api(api_client)

    @cached_property
    def dynamic(self):
        from kubernetes.dynamic import DynamicClient

        return DynamicClient(self.api_client)

    def _ns(self, hook: TestHook) -> str:
        return hook.namespace or self.namespace

    def _resource(self, hook: TestHook):
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.dynamic.resources.get(api_version=hook.api_version, kind=hook.kind)
        except ResourceNotFoundError:
            raise HookRejectedError(f"the cluster serves no {hook.kind} in {hook.api_version}") from None

    def create(self, hook: TestHook) -> None:
        """Create the object as helm 4 does: with helm's field manager, and when one of that name
        exists already (no ``before-hook-creation``), server-side apply onto it — helm then judges
        the existing object, and so does the gate."""
        from kubernetes.client.exceptions import ApiException

        try:
            try:
                self._write(hook, apply=False)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                self._write(hook, apply=True)
        except ApiException as exc:
            if exc.status and 400 <= exc.status < 500:
                raise HookRejectedError(_rejection(exc)) from None
            raise

    def _write(self, hook: TestHook, *, apply: bool) -> None:
        body = copy.deepcopy(dict(hook.manifest))
        namespace = self._ns(hook)
        how = ({"field_manager": FIELD_MANAGER, "force": True, "_content_type": "application/apply-patch+yaml"}
               if apply else {"field_manager": FIELD_MANAGER})
        if hook.kind == "Pod" and hook.api_version == "v1":
            call = self.core.patch_namespaced_pod if apply else self.core.create_namespaced_pod
        elif hook.kind == "Job" and hook.api_version == "batch/v1":
            call = self.batch.patch_namespaced_job if apply else self.batch.create_namespaced_job
        else:
            resource = self._resource(hook)
            scope = namespace if resource.namespaced else None
            if apply:
                self.dynamic.server_side_apply(resource, body=body, name=hook.name, namespace=scope,
                                               field_manager=FIELD_MANAGER, force_conflicts=True)
            else:
                self.dynamic.create(resource, body=body, namespace=scope, field_manager=FIELD_MANAGER)
            return
        if apply:
            call(hook.name, namespace, body, _preload_content=False, **how)
        else:
            call(namespace, body, _preload_content=False, **how)

    def delete(self, hook: TestHook) -> None:
        from kubernetes.client import V1DeleteOptions
        from kubernetes.client.exceptions import ApiException

        options = V1DeleteOptions(propagation_policy="Background")
        namespace = self._ns(hook)
        try:
            if hook.kind == "Pod" and hook.api_version == "v1":
                self.core.delete_namespaced_pod(hook.name, namespace, body=options, _preload_content=False)
            elif hook.kind == "Job" and hook.api_version == "batch/v1":
                self.batch.delete_namespaced_job(hook.name, namespace, body=options, _preload_content=False)
            else:
                resource = self._resource(hook)
                self.dynamic.delete(resource, name=hook.name, namespace=namespace if resource.namespaced else None,
                                    body={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise
        except HookRejectedError:
            pass  # a kind the cluster does not serve has nothing to delete

    def observe(self, hooks: Sequence[TestHook]) -> dict[tuple[str, str], Observed]:
        seen: dict[tuple[str, str], Observed] = {}
        wanted = {hook.key for hook in hooks}
        for namespace in sorted({self._ns(hook) for hook in hooks}):
            kinds = {hook.kind for hook in hooks if self._ns(hook) == namespace and hook.waited}
            if "Pod" in kinds:
                for pod in self._items(self.core.list_namespaced_pod(namespace, _preload_content=False)):
                    seen[("Pod", pod["metadata"]["name"])] = _pod_state(pod)
            if "Job" in kinds:
                for job in self._items(self.batch.list_namespaced_job(namespace, _preload_content=False)):
                    seen[("Job", job["metadata"]["name"])] = _job_state(job)
        for hook in hooks:
            if not hook.waited:
                seen[hook.key] = Observed(RUNNING if self._exists(hook) else ABSENT)
        return {key: state for key, state in seen.items() if key in wanted}

    def logs(self, hook: TestHook) -> str:
        """Every container's log of the test pod (of a Job: of each of its pods); never raises."""
        from kubernetes.client.exceptions import ApiException

        namespace = self._ns(hook)
        pods = [hook.name]
        if hook.kind == "Job":
            listed = self.core.list_namespaced_pod(namespace, label_selector=f"{_JOB_NAME_LABEL}={hook.name}",
                                                   _preload_content=False)
            pods = [pod["metadata"]["name"] for pod in self._items(listed)]
        parts = []
        for pod in pods:
            try:
                spec = self._items_one(self.core.read_namespaced_pod(pod, namespace, _preload_content=False))
                containers = [c["name"] for c in (spec.get("spec") or {}).get("containers") or []]
                for container in containers:
                    text = self.core.read_namespaced_pod_log(pod, namespace, container=container,
                                                             _preload_content=False).data.decode("utf-8", "replace")
                    head = f"[{pod}/{container}]\n" if len(containers) > 1 or len(pods) > 1 else ""
                    parts.append(head + text)
            except ApiException as exc:
                parts.append(f"(no logs of {pod}: {_rejection(exc)})")
        return "\n".join(parts)

    def _exists(self, hook: TestHook) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            resource = self._resource(hook)
            self.dynamic.get(resource, name=hook.name, namespace=self._ns(hook) if resource.namespaced else None)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        except HookRejectedError:
            return False

    @staticmethod
    def _items(response: Any) -> list[dict[str, Any]]:
        return json.loads(response.data).get("items") or []

    @staticmethod
    def _items_one(response: Any) -> dict[str, Any]:
        return json.loads(response.data)
