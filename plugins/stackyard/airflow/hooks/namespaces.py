"""StackHook: stacks (namespaces) on the cluster of a cncf-kubernetes connection."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from stackyard.core.ephemeral import NamespaceSummary, Outcome, StackMetadata, parse_timestamp
from stackyard.exceptions import ConflictError, InputError, NotFoundError


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
        labels = existing.labels if existing else {}
        if any(labels.get(k) != v for k, v in metadata.labels.items()):
            raise ConflictError(f"namespace {name} already exists and is not this stack (labels {dict(labels)})")
        return False

    def get(self, name: str) -> NamespaceSummary | None:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self.core.read_namespace(name, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return summary(json.loads(response.data))

    def annotate(self, name: str, annotations: dict[str, str]) -> None:
        """Merge ``annotations`` into the namespace's (a touch); NotFoundError if it is gone."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.patch_namespace(name, {"metadata": {"annotations": annotations}})
        except ApiException as exc:
            if exc.status == 404:
                raise NotFoundError(f"there is no stack {name!r} on the cluster") from None
            raise

    def delete(self, name: str, resource_version: str | None = None) -> bool:
        """Delete the namespace and everything in it; False when it is already gone.

        With ``resource_version`` the delete is conditional: a namespace changed since it was read
        (e.g. touched) raises ConflictError and stays.
        """
        from kubernetes.client import V1DeleteOptions, V1Preconditions
        from kubernetes.client.exceptions import ApiException

        options = V1DeleteOptions(preconditions=V1Preconditions(resource_version=resource_version)) if resource_version else None
        try:
            self.core.delete_namespace(name, body=options)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 409:
                raise ConflictError(f"namespace {name} changed since it was read: {exc.reason}") from None
            raise

    def delete_each(self, targets: Iterable[tuple[str, str | None]]) -> dict[str, tuple[Outcome, str]]:
        """Delete each (name, resource_version) on its own: one failure never stops the others.
        Returns name → (outcome, detail); nothing raises."""
        outcomes: dict[str, tuple[Outcome, str]] = {}
        for name, resource_version in targets:
            try:
                deleted = self.delete(name, resource_version)
                outcomes[name] = (Outcome.DELETED, "deleted") if deleted else (Outcome.GONE, "already gone")
            except ConflictError as exc:
                outcomes[name] = (Outcome.CHANGED, str(exc))
            except Exception as exc:  # reported per stack; the run fails at the end
                outcomes[name] = (Outcome.FAILED, _describe(exc))
        return outcomes

    def list(self, label_selector: str) -> list[NamespaceSummary]:
        """One list call. The JSON is read directly: building client model objects for thousands
        of namespaces would cost more than the request itself."""
        response = self.core.list_namespace(label_selector=label_selector, _preload_content=False)
        return [summary(item) for item in json.loads(response.data).get("items") or []]


def summary(ns: dict[str, Any]) -> NamespaceSummary:
    """A namespace as the API serves it (JSON) → what stackyard reads of it."""
    meta = ns.get("metadata") or {}
    return NamespaceSummary(
        name=meta.get("name", ""),
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        created=_created(meta.get("creationTimestamp")),
        phase=(ns.get("status") or {}).get("phase"),
        resource_version=meta.get("resourceVersion"),
    )


def _created(value: str | None) -> datetime | None:
    try:
        return parse_timestamp(value)
    except InputError:
        return None


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    return f"{type(exc).__name__}: HTTP {status} {reason}" if status else f"{type(exc).__name__}: {exc}"
