"""StackHook: stacks (namespaces) on the cluster of a cncf-kubernetes connection."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from stackyard.domain.stacks import StackMetadata
from stackyard.exceptions import ConflictError


class StackHook(BaseHook):
    """Create, annotate, list and delete stack namespaces. Every call is safe to retry."""

    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "stackyard_kube"
    conn_type = "kubernetes"
    hook_name = "Stacks (stackyard)"

    def __init__(self, kubernetes_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.kubernetes_conn_id = kubernetes_conn_id

    @cached_property
    def core(self):
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id).core_v1_client

    def create(self, name: str, metadata: StackMetadata) -> bool:
        """Create the namespace; False if it exists already with the same identifying labels."""
        from kubernetes.client import V1Namespace, V1ObjectMeta
        from kubernetes.client.exceptions import ApiException

        body = V1Namespace(metadata=V1ObjectMeta(name=name, labels=metadata.labels, annotations=metadata.annotations))
        try:
            self.core.create_namespace(body)
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise
        existing = self.get(name)
        labels = (existing or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in metadata.labels.items()):
            raise ConflictError(f"namespace {name} already exists and is not this stack (labels {labels})")
        return False

    def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            ns = self.core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return _summary(ns)

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        self.core.patch_namespace(name, {"metadata": {"annotations": annotations}})

    def delete(self, name: str) -> bool:
        """Delete the namespace and everything in it; False when it is already gone."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.delete_namespace(name)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def list(self, label_selector: str) -> list[dict[str, Any]]:
        namespaces = self.core.list_namespace(label_selector=label_selector).items
        return [_summary(ns) for ns in namespaces]


def _summary(ns) -> dict[str, Any]:
    return {
        "name": ns.metadata.name,
        "labels": dict(ns.metadata.labels or {}),
        "annotations": dict(ns.metadata.annotations or {}),
        "phase": ns.status.phase if ns.status else None,
        "created": ns.metadata.creation_timestamp,
    }
