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
    with pytest.raises(InputError, match="kube_config_path or kube_config, not both"):
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
