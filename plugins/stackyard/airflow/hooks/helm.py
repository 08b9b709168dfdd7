"""HelmHook: the cluster connection (cncf-kubernetes) mapped to a helm CLI configuration."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from stackyard.exceptions import InputError
from stackyard.adapters.cluster import Cluster
from stackyard.adapters.helm import Helm, HelmConfig
from stackyard.adapters.runner import ToolRunner


class HelmHook(BaseHook):
    """Runs helm against the cluster of a ``kubernetes`` connection.

    The connection's extras are those of the cncf-kubernetes provider: ``kube_config_path`` or
    ``kube_config`` (inline; mutually exclusive), ``in_cluster``, ``cluster_context``. An inline
    kubeconfig is written 0600 into a private directory that exists only while helm is used.
    """

    conn_name_attr = "kubernetes_conn_id"
    default_conn_name = "stackyard_kube"
    conn_type = "kubernetes"
    hook_name = "Helm (stackyard)"

    def __init__(
        self,
        kubernetes_conn_id: str | None = default_conn_name,
        *,
        kube_context: str | None = None,
        plain_http: bool = False,
        binary: str | None = None,
    ) -> None:
        super().__init__()
        self.kubernetes_conn_id = kubernetes_conn_id
        self.kube_context = kube_context
        self.plain_http = plain_http
        self.binary = binary or shutil.which("helm") or "helm"
        self.runner = ToolRunner(log=self.log)

    @cached_property
    def extras(self) -> dict[str, Any]:
        if not self.kubernetes_conn_id:
            return {}
        extra = self.get_connection(self.kubernetes_conn_id).extra_dejson
        # Older UIs stored extras with the provider's prefix.
        return {k.removeprefix("extra__kubernetes__"): v for k, v in extra.items()}

    @contextmanager
    def helm(self) -> Iterator[Helm]:
        """A :class:`Helm` with a private home; everything written for it is removed after."""
        path, inline = self.extras.get("kube_config_path"), self.extras.get("kube_config")
        if path and inline:
            raise InputError(
                f"connection {self.kubernetes_conn_id}: set kube_config_path or kube_config, not both"
            )
        home = Path(tempfile.mkdtemp(prefix="stackyard-helm-"))
        try:
            kubeconfig = path
            if inline:
                kubeconfig = str(home / "kubeconfig")
                fd = os.open(kubeconfig, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(inline if isinstance(inline, str) else json.dumps(inline))
            config = HelmConfig(
                home=home,
                binary=self.binary,
                kubeconfig=kubeconfig,
                kube_context=self.kube_context or self.extras.get("cluster_context"),
                plain_http=self.plain_http,
                base_env=os.environ,
            )
            yield Helm(config, self.runner)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def cluster(self) -> Cluster:
        """The same cluster through the kubernetes client (discovery, cluster-wide objects, CRDs)."""
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        hook = KubernetesHook(conn_id=self.kubernetes_conn_id,
                              cluster_context=self.kube_context or self.extras.get("cluster_context"))
        return Cluster(hook.api_client)

    def kill(self) -> None:
        self.runner.kill()
