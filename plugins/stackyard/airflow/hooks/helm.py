"""HelmHook: the cluster connection (cncf-kubernetes) mapped to a helm CLI configuration.

The cluster is resolved exactly as the provider's ``KubernetesHook.get_conn`` resolves it, so helm
and the kubernetes client always talk to the same cluster as the same identity:

- extras ``in_cluster``, ``kube_config_path``, ``kube_config`` (inline) are mutually exclusive
  (the provider's error message); ``cluster_context`` picks a context of a kubeconfig;
- ``in_cluster``: the pod's service account (token file, CA, ``KUBERNETES_SERVICE_HOST``/``PORT``)
  checked by the kubernetes client's own loader (its errors), then handed to helm as a private
  0600 kubeconfig that *references* the token file (``tokenFile``: never on a command line, and
  the kubelet's rotations are picked up);
- nothing set: in-cluster if the pod has a service account, else the default kubeconfig
  (``$KUBECONFIG`` or ``~/.kube/config``);
- a kubeconfig whose users authenticate with an exec plugin (``aws eks get-token``) gets the
  AWS connection's credentials (and the caller's AWS_* identity variables: IRSA, Pod Identity)
  in helm's environment, and a PATH that holds the aws CLI next to this Python.

Every upgrade, rollback and uninstall through it holds the release's lease (named after the
running task try and process) and first recovers a release an interrupted operation left
pending (:mod:`stackyard.adapters.leases`); recoveries go to the task log and to the stack's
record stream ``stacks/<stack>/events``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import BaseHook

from stackyard.airflow.hooks.aws import aws_credentials_env
from stackyard.core.release_recovery import Holder
from stackyard.exceptions import InputError
from stackyard.adapters.cluster import Cluster
from stackyard.adapters.helm import Helm, HelmConfig, private_home
from stackyard.adapters.leases import LeaseClient, ReleaseGuard, this_host
from stackyard.adapters.runner import ToolRunner

#: The provider's words (KubernetesHook.get_conn), so both hooks refuse a connection alike.
EXCLUSIVE_OPTIONS = ("Invalid connection configuration. Options kube_config_path, kube_config, in_cluster, "
                     "config_dict are mutually exclusive. You can only use one option at a time.")
#: Variables an exec credential plugin or the AWS CLI reads from the environment (IRSA, Pod Identity,
#: profiles, regions); credentials of the AWS connection are added on top.
_AWS_IDENTITY_ENV = ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_REGION",
                     "AWS_DEFAULT_REGION", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                     "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_STS_REGIONAL_ENDPOINTS", "AWS_ENDPOINT_URL",
                     "AWS_ENDPOINT_URL_STS", "AWS_CA_BUNDLE")


def _service_account_files() -> tuple[str, str]:
    """(token file, CA file) of the pod's service account: read from the kubernetes client at call
    time, the one place both helm's and the client's in-cluster set-up take them from (tests
    point them at a fake service-account directory)."""
    from kubernetes.config import incluster_config

    return incluster_config.SERVICE_TOKEN_FILENAME, incluster_config.SERVICE_CERT_FILENAME


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


class HelmHook(BaseHook):
    """Runs helm against the cluster of a ``kubernetes`` connection (module docstring: how).

    Everything written for helm (an inline kubeconfig, the in-cluster kubeconfig, helm's home)
    lives 0600 in a private directory that exists only while helm is used.
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
        aws_conn_id: str | None = None,
    ) -> None:
        super().__init__()
        self.kubernetes_conn_id = kubernetes_conn_id
        self.kube_context = kube_context
        self.plain_http = plain_http
        self.binary = binary or shutil.which("helm") or "helm"
        self.aws_conn_id = aws_conn_id
        self.runner = ToolRunner(log=self.log)

    @cached_property
    def extras(self) -> dict[str, Any]:
        if not self.kubernetes_conn_id:
            return {}
        extra = self.get_connection(self.kubernetes_conn_id).extra_dejson
        # Older UIs stored extras with the provider's prefix; empty values count as unset (provider).
        return {k.removeprefix("extra__kubernetes__"): v for k, v in extra.items() if v not in (None, "")}

    def source(self) -> tuple[str, Any]:
        """Which cluster configuration the connection selects, as the provider decides:
        ("in_cluster" | "kube_config_path" | "kube_config" | "default" | "none", value)."""
        if not self.kubernetes_conn_id:
            return "none", None  # registry-only work: no cluster
        in_cluster = _truthy(self.extras.get("in_cluster"))
        path, inline = self.extras.get("kube_config_path"), self.extras.get("kube_config")
        if sum(1 for option in (in_cluster, inline, path) if option) > 1:
            raise InputError(f"connection {self.kubernetes_conn_id}: {EXCLUSIVE_OPTIONS}")
        if in_cluster:
            return "in_cluster", None
        if path:
            return "kube_config_path", str(path)
        if inline:
            return "kube_config", inline
        return "default", None

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
        kind, value = self.source()
        home = private_home()
        try:
            kubeconfig: str | None = None
            if kind == "kube_config_path":
                kubeconfig = value
            elif kind == "kube_config":
                kubeconfig = _private_file(home / "kubeconfig", value if isinstance(value, str) else json.dumps(value))
            elif kind == "in_cluster":
                kubeconfig = _private_file(home / "kubeconfig", _in_cluster_kubeconfig(required=True))
            elif kind == "default":
                found = _in_cluster_kubeconfig(required=False)
                kubeconfig = _private_file(home / "kubeconfig", found) if found else os.environ.get("KUBECONFIG")
            config = HelmConfig(
                home=home,
                binary=self.binary,
                kubeconfig=kubeconfig,
                kube_context=self.kube_context or self.extras.get("cluster_context"),
                plain_http=self.plain_http,
                base_env=os.environ,
                extra_env=self._exec_plugin_env(kubeconfig, inline=value if kind == "kube_config" else None),
            )
            yield Helm(config, self.runner, guard=self.guard(stack))
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def cluster(self) -> Cluster:
        """The same cluster through the kubernetes client (discovery, cluster-wide objects, CRDs)."""
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        self.source()  # the same refusals as helm(), before the provider is asked
        hook = KubernetesHook(conn_id=self.kubernetes_conn_id,
                              cluster_context=self.kube_context or self.extras.get("cluster_context"))
        return Cluster(hook.api_client)

    def _exec_plugin_env(self, kubeconfig: str | None, inline: Any = None) -> dict[str, str]:
        """What exec credential plugins of the kubeconfig need that helm's trimmed environment lacks."""
        commands = _exec_commands(inline if inline is not None else kubeconfig, is_inline=inline is not None)
        if not commands:
            return {}
        env = {key: os.environ[key] for key in _AWS_IDENTITY_ENV if os.environ.get(key)}
        # The aws CLI is installed next to this interpreter (make setup, the image): keep it findable.
        path = os.environ.get("PATH", "")
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = path if bin_dir in path.split(os.pathsep) else os.pathsep.join(filter(None, [bin_dir, path]))
        if any(Path(c).name == "aws" for c in commands) and self.aws_conn_id:
            env.update(aws_credentials_env(self.aws_conn_id))
        return env

    def kill(self) -> None:
        self.runner.kill()


def _private_file(path: Path, text: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return str(path)


def _in_cluster_kubeconfig(*, required: bool) -> str | None:
    """A kubeconfig for the pod's service account, validated by the kubernetes client's loader
    (its ConfigException messages when ``required``; None when not in a pod and not required)."""
    from kubernetes.client import Configuration
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    token_file, ca_file = _service_account_files()
    configuration = Configuration()
    try:
        InClusterConfigLoader(token_filename=token_file, cert_filename=ca_file,
                              try_refresh_token=False).load_and_set(configuration)
    except ConfigException as exc:
        if required:
            raise InputError(f"in_cluster: {exc}") from None
        return None
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "in-cluster",
        "clusters": [{"name": "in-cluster", "cluster": {"server": configuration.host,
                                                        "certificate-authority": str(Path(ca_file).resolve())}}],
        "users": [{"name": "service-account", "user": {"tokenFile": str(Path(token_file).resolve())}}],
        "contexts": [{"name": "in-cluster", "context": {"cluster": "in-cluster", "user": "service-account"}}],
    })


def _exec_commands(source: Any, *, is_inline: bool) -> list[str]:
    """The exec plugin commands of a kubeconfig's users (none if it cannot be read: helm says why)."""
    try:
        if is_inline:
            doc = source if isinstance(source, dict) else yaml.safe_load(source)
        elif source:
            doc = yaml.safe_load(Path(source).read_text())
        else:
            return []
    except (OSError, yaml.YAMLError):
        return []
    users = (doc or {}).get("users") or [] if isinstance(doc, dict) else []
    return [str(((u.get("user") or {}).get("exec") or {}).get("command")) for u in users
            if isinstance(u, dict) and isinstance(u.get("user"), dict) and (u["user"].get("exec") or {}).get("command")]
