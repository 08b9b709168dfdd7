"""HelmHook: the cluster connection (cncf-kubernetes) mapped to a helm CLI configuration.

Every upgrade, rollback and uninstall through it holds the release's lease (named after the
running task try and process) and first recovers a release an interrupted operation left
pending (:mod:`stackyard.adapters.leases`); recoveries go to the task log and to the stack's
record stream ``stacks/<stack>/events``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from stackyard.core.release_recovery import Holder
from stackyard.exceptions import InputError
from stackyard.adapters.helm import Helm, HelmConfig, private_home
from stackyard.adapters.leases import LeaseClient, ReleaseGuard, this_host
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

    def holder(self) -> Holder:
        """This task try and process, as a lease holder (a shell outside a task: ``cli``)."""
        try:
            from airflow.sdk import get_current_context

            context = get_current_context()
            ti = context["ti"]
            return Holder(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                          try_number=int(getattr(ti, "try_number", 0) or 0), pid=os.getpid(), host=this_host())
        except Exception:  # no task context: stackyard's CLI, a shell
            return Holder(dag_id="cli", run_id="-", task_id="-", try_number=0, pid=os.getpid(), host=this_host())

    @cached_property
    def leases(self) -> LeaseClient:
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return LeaseClient(KubernetesHook(conn_id=self.kubernetes_conn_id).get_conn())

    def guard(self, stack: str | None = None):
        """The release guard of :meth:`helm` (None without a connection: no cluster to guard).
        The cluster client is made on the first release operation, not before."""
        if not self.kubernetes_conn_id:
            return None

        def guarded(helm: Helm, release: str, namespace: str, action: str):
            return ReleaseGuard(self.leases, self.holder(), record=self._recorder(stack), log=self.log)(
                helm, release, namespace, action)

        return guarded

    def _recorder(self, stack: str | None):
        def record(namespace: str, event: dict[str, Any]) -> None:
            from stackyard.airflow.stores import record_store_for
            from stackyard.settings import Settings

            from stackyard.core.records import StackEvent, events_stream
            from stackyard.core.times import utc_now

            stream = events_stream(stack or namespace)
            try:
                holder = event["recovered_by"]  # the run doing the recovery is the event's run
                record_store_for(Settings.from_env()).write(StackEvent(
                    stack=stack or namespace, dag_id=holder["dag_id"], run_id=holder["run_id"], at=utc_now(), **event))
            except Exception as exc:  # the task log has it; a store outage must not undo a recovery
                self.log.error("could not record the recovery in %s: %s", stream, exc)

        return record

    @contextmanager
    def helm(self, *, stack: str | None = None) -> Iterator[Helm]:
        """A :class:`Helm` with a private home; everything written for it is removed after.

        ``stack`` names the record stream recoveries are written to (default: the namespace)."""
        path, inline = self.extras.get("kube_config_path"), self.extras.get("kube_config")
        if path and inline:
            raise InputError(
                f"connection {self.kubernetes_conn_id}: set kube_config_path or kube_config, not both"
            )
        home = private_home()
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
            yield Helm(config, self.runner, guard=self.guard(stack))
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def kill(self) -> None:
        self.runner.kill()
