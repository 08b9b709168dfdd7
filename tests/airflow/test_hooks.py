"""HelmHook and SopsHook: connections mapped to tool configuration, secrets handled on the way."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from stackyard.core.charts import load_chart
from stackyard.core.secrets import SECRETS
from stackyard.exceptions import AccessDeniedError, InputError
from stackyard.airflow.hooks.helm import HelmHook
from stackyard.airflow.hooks.sops import SopsHook, register_secrets

from tests.conftest import CHARTS, EXAMPLE_AGE_KEY

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


def set_conn(monkeypatch, conn_id: str, conn: dict) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def test_inline_kubeconfig_exists_0600_only_while_helm_is_used(monkeypatch):
    set_conn(monkeypatch, "kube_inline", {"conn_type": "kubernetes", "extra": {"kube_config": KUBECONFIG, "cluster_context": "ctx"}})
    hook = HelmHook("kube_inline")
    with hook.helm() as helm:
        path = Path(helm.config.kubeconfig)
        assert path.read_text() == KUBECONFIG
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert helm.config.kube_context == "ctx"
        assert helm.config.env()["HELM_CONFIG_HOME"].startswith(str(path.parent))
    assert not path.exists() and not path.parent.exists()


def test_kubeconfig_path_and_inline_together_are_refused(monkeypatch, tmp_path):
    set_conn(monkeypatch, "kube_both", {"conn_type": "kubernetes", "extra": {"kube_config": KUBECONFIG, "kube_config_path": str(tmp_path)}})
    with pytest.raises(InputError, match="Options kube_config_path, kube_config, in_cluster, config_dict are mutually exclusive"):
        with HelmHook("kube_both").helm():
            pass


def test_prefixed_extras_of_older_connections_are_understood(monkeypatch, tmp_path):
    set_conn(monkeypatch, "kube_old", {"conn_type": "kubernetes", "extra": {"extra__kubernetes__kube_config_path": str(tmp_path / "k")}})
    with HelmHook("kube_old").helm() as helm:
        assert helm.config.kubeconfig == str(tmp_path / "k")


def test_decrypted_profile_leaves_are_registered_for_redaction(monkeypatch, sops_bin):
    set_conn(monkeypatch, "sops_test", {"conn_type": "generic", "extra": {"age_key_file": str(EXAMPLE_AGE_KEY)}})
    profile = load_chart(CHARTS / "storefront").profile("stage")
    values = SopsHook("sops_test", aws_conn_id=None).decrypt_profile(profile)
    for secret in values["secrets"].values():
        assert secret in SECRETS
        assert SECRETS.redact(f"x {secret} y") == "x *** y"


def test_age_identity_can_come_from_the_connection_password(monkeypatch, sops_bin):
    identity = next(l for l in EXAMPLE_AGE_KEY.read_text().splitlines() if l.startswith("AGE-SECRET-KEY-"))
    set_conn(monkeypatch, "sops_pw", {"conn_type": "generic", "password": identity})
    profile = load_chart(CHARTS / "orders").profile("ephemeral")
    assert set(SopsHook("sops_pw", aws_conn_id=None).decrypt_profile(profile)["secrets"]) == {"DATABASE_PASSWORD", "API_TOKEN"}


def test_production_secrets_without_the_key_fail_clearly(monkeypatch, sops_bin):
    set_conn(monkeypatch, "sops_test", {"conn_type": "generic", "extra": {"age_key_file": str(EXAMPLE_AGE_KEY)}})
    profile = load_chart(CHARTS / "orders").profile("production")
    with pytest.raises(AccessDeniedError, match="orders/profiles/production/secrets.yaml: no access to key age1"):
        SopsHook("sops_test", aws_conn_id=None).decrypt_profile(profile)


def test_secrets_too_short_to_mask_are_refused_naming_their_keys():
    with pytest.raises(InputError, match=r"x/secrets.yaml: .*shorter than 5.*\(db.user, port\)"):
        register_secrets({"db": {"user": "app", "password": "long-enough"}, "port": 5432}, source="x/secrets.yaml")


# --- the cluster as the cncf-kubernetes provider resolves it ----------------------------------------

AWS_EXEC_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: eks, cluster: {server: "https://example.eks.amazonaws.com"}}]
users:
  - name: eks
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1beta1
        command: aws
        args: [eks, get-token, --cluster-name, demo]
contexts: [{name: eks, context: {cluster: eks, user: eks}}]
current-context: eks
"""


@pytest.mark.parametrize("extra", [
    {"in_cluster": True, "kube_config_path": "/k"},
    {"in_cluster": True, "kube_config": KUBECONFIG},
    {"kube_config_path": "/k", "kube_config": KUBECONFIG},
])
def test_the_providers_options_are_mutually_exclusive_with_its_words(monkeypatch, extra):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    set_conn(monkeypatch, "kube_many", {"conn_type": "kubernetes", "extra": extra})
    with pytest.raises(Exception) as provider:
        KubernetesHook(conn_id="kube_many").get_conn()
    with pytest.raises(InputError) as ours:
        with HelmHook("kube_many").helm():
            pass
    assert str(provider.value) in str(ours.value)


def test_in_cluster_outside_a_pod_says_what_is_missing_as_the_client_does(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    set_conn(monkeypatch, "kube_pod", {"conn_type": "kubernetes", "extra": {"in_cluster": True}})
    with pytest.raises(InputError, match=r"^in_cluster: Service host/port is not set\.$"):
        with HelmHook("kube_pod").helm():
            pass


def test_an_exec_plugin_kubeconfig_gets_the_aws_identity_and_the_aws_cli_on_path(monkeypatch, tmp_path):
    import sys

    path = tmp_path / "eks.yaml"
    path.write_text(AWS_EXEC_KUBECONFIG)
    set_conn(monkeypatch, "kube_eks", {"conn_type": "kubernetes", "extra": {"kube_config_path": str(path)}})
    set_conn(monkeypatch, "aws_eks", {"conn_type": "aws", "login": "AKIAEXAMPLEEXAMPLE", "password": "secret-example-key",
                                      "extra": {"region_name": "eu-central-1"}})
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with HelmHook("kube_eks", aws_conn_id="aws_eks").helm() as helm:
        env = helm.config.env()
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLEEXAMPLE" and env["AWS_SECRET_ACCESS_KEY"] == "secret-example-key"
    assert env["AWS_REGION"] == "eu-central-1"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert "secret-example-key" not in repr(helm.config)


def test_a_kubeconfig_without_exec_plugins_gets_no_aws_identity(monkeypatch, tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text(KUBECONFIG)
    set_conn(monkeypatch, "kube_plain", {"conn_type": "kubernetes", "extra": {"kube_config_path": str(path)}})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE")
    with HelmHook("kube_plain", aws_conn_id="aws_eks").helm() as helm:
        assert not any(key.startswith("AWS_") for key in helm.config.env())


def https_sandbox(**options):
    import inspect

    from kube_sandbox import Sandbox

    if "tls" not in inspect.signature(Sandbox).parameters:
        pytest.skip("the kube sandbox serves HTTPS (and checks tokens) from branch `sandbox` on, not merged yet")
    return Sandbox(tls=True, ready_delay=0.01, **options)


@pytest.fixture
def tls_sandbox():
    with https_sandbox(require_token=True) as sb:
        yield sb


def test_in_cluster_reaches_the_cluster_with_helm_and_the_client(monkeypatch, tmp_path, tls_sandbox, helm_bin):
    """A pod's view: service-account files, KUBERNETES_SERVICE_*; real helm and the kubernetes
    client through one connection; the token never written into the kubeconfig nor argv."""
    from kubernetes.config import incluster_config

    account = tls_sandbox.write_service_account(tmp_path / "serviceaccount")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(account / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(account / "ca.crt"))
    for key, value in tls_sandbox.in_cluster_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    set_conn(monkeypatch, "kube_in_pod", {"conn_type": "kubernetes", "extra": {"in_cluster": True}})

    hook = HelmHook("kube_in_pod", binary=helm_bin)
    with hook.helm() as helm:
        kubeconfig = Path(helm.config.kubeconfig).read_text()
        assert tls_sandbox.token not in kubeconfig and "tokenFile" in kubeconfig
        assert stat.S_IMODE(Path(helm.config.kubeconfig).stat().st_mode) == 0o600
        chart = CHARTS / "catalog"
        helm.upgrade_install("pod-view", chart, namespace="pod-view", create_namespace=True, timeout="60s")
        [release] = helm.list(namespace="pod-view")
        assert release.name == "pod-view" and release.status == "deployed"
    names = [ns["metadata"]["name"] for ns in hook.cluster()._get("/api/v1/namespaces")["items"]]
    assert "pod-view" in names


def test_helm_authenticates_through_an_aws_eks_exec_plugin(monkeypatch, tmp_path, helm_bin):
    """An EKS-style kubeconfig (``aws eks get-token``) against the sandbox over HTTPS (client-go runs
    exec plugins only for TLS servers): helm runs the aws CLI with the AWS connection's
    credentials; without them the plugin, and so helm, fails."""
    import yaml

    from stackyard.exceptions import ToolError

    with https_sandbox() as sb:
        config = yaml.safe_load(Path(sb.kubeconfig_path).read_text())
        for user in config["users"]:
            user["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
                                     "args": ["eks", "get-token", "--cluster-name", "demo"],
                                     "interactiveMode": "Never"}}
        path = tmp_path / "eks.yaml"
        path.write_text(yaml.safe_dump(config))
        set_conn(monkeypatch, "kube_eks_sb", {"conn_type": "kubernetes", "extra": {"kube_config_path": str(path)}})
        set_conn(monkeypatch, "aws_eks_sb", {"conn_type": "aws", "login": "AKIAEXAMPLEEXAMPLE",
                                             "password": "secret-example-key", "extra": {"region_name": "eu-central-1"}})
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the aws CLI is found next to this Python, not on PATH

        with HelmHook("kube_eks_sb", binary=helm_bin, aws_conn_id="aws_eks_sb").helm() as helm:
            helm.upgrade_install("via-eks", CHARTS / "catalog", namespace="via-eks", create_namespace=True,
                                 timeout="60s")
            assert [r.name for r in helm.list(namespace="via-eks")] == ["via-eks"]
        with HelmHook("kube_eks_sb", binary=helm_bin).helm() as helm:
            with pytest.raises(ToolError, match="Unable to locate credentials"):
                helm.list()
