"""``stackyard chart init`` and ``chart check``: the generated chart follows the contract and passes
publish's own checks as generated (real helm and sops; the example-only age key decrypts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stackyard.core.charts import load_chart
from stackyard.core.stack_registry import load_registry
from stackyard.steps.scaffold import EXAMPLE_ONLY_AGE_RECIPIENT, scaffold_profiles

from tests.conftest import EXAMPLE_AGE_KEY, ROOT

STACKYARD = str(Path(sys.executable).with_name("stackyard"))
STACKS = ROOT / "include" / "stacks.yaml"


def stackyard(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([STACKYARD, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **(env or {})}, check=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    parent = tmp_path_factory.mktemp("init")
    result = stackyard("chart", "init", "shop-api", "--dir", str(parent))
    assert result.returncode == 0, result.stderr
    return parent / "shop-api"


def helm_template(chart: Path, *args: str) -> list[dict]:
    out = subprocess.run(["helm", "template", "shop-api", str(chart), *args], capture_output=True, text=True,
                         check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_the_example_recipient_is_the_example_only_keys_public_half():
    assert f"# public key: {EXAMPLE_ONLY_AGE_RECIPIENT}" in EXAMPLE_AGE_KEY.read_text()


def test_a_profile_for_every_stack_type_of_the_registry_and_ephemeral(generated):
    registry = load_registry(STACKS.read_text())
    expected = {"ephemeral"} | {stack.profile for stack in registry.stacks.values()}
    chart = load_chart(generated)
    assert set(chart.profiles) == expected
    assert [p.name for p in scaffold_profiles(registry)][0] == "ephemeral"


def test_sops_yaml_has_one_rule_per_profile_age_for_local_kms_placeholders_elsewhere(generated):
    rules = yaml.safe_load((generated / ".sops.yaml").read_text())["creation_rules"]
    profiles = set(load_chart(generated).profiles)
    by_profile = {rule["path_regex"].split("/")[1]: rule for rule in rules}
    assert set(by_profile) == profiles and len(rules) == len(profiles)
    assert by_profile["ephemeral"] == {"path_regex": r"profiles/ephemeral/secrets\.yaml$", "age": EXAMPLE_ONLY_AGE_RECIPIENT}
    for name in profiles - {"ephemeral"}:
        assert set(by_profile[name]) == {"path_regex", "kms"}
        assert by_profile[name]["kms"].startswith("arn:aws:kms:") and "REPLACE" in by_profile[name]["kms"]


def test_the_example_secrets_are_encrypted_to_the_rule_and_decrypt_with_the_example_key(generated):
    secrets = generated / "profiles" / "ephemeral" / "secrets.yaml"
    document = yaml.safe_load(secrets.read_text())
    assert [r["recipient"] for r in document["sops"]["age"]] == [EXAMPLE_ONLY_AGE_RECIPIENT]
    assert "example-only-token" not in secrets.read_text()
    plain = subprocess.run(["sops", "decrypt", "--output-type", "json", str(secrets)], capture_output=True,
                           text=True, check=True, env={**os.environ, "SOPS_AGE_KEY_FILE": str(EXAMPLE_AGE_KEY)})
    assert json.loads(plain.stdout) == {"secrets": {"API_TOKEN": "example-only-token-change-me"}}


def test_defaults_render_a_service_on_a_public_image_with_a_helm_test(generated):
    docs = helm_template(generated)
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == ["ConfigMap", "Deployment", "Pod", "Service"]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginxinc/nginx-unprivileged:1.27-alpine"  # runs as non-root on 8080
    assert container["ports"][0]["containerPort"] == 8080
    test = next(d for d in docs if d["kind"] == "Pod")
    assert test["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert test["spec"]["containers"][0]["command"] == ["wget", "-qO-", "http://shop-api:8080/"]


def test_the_canary_keys_render_the_canary_track(generated):
    values = yaml.safe_load((generated / "values.yaml").read_text())
    assert values["canary"] == {"enabled": False, "weight": 10} and "replicaCount" in values
    docs = helm_template(generated, "--set", "canary.enabled=true", "--set", "canary.weight=25",
                         "--set", "replicaCount=0")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"shop-api", "shop-api-canary"}
    canary = deployments["shop-api-canary"]
    assert canary["metadata"]["labels"]["stackyard.io/track"] == "canary"
    assert canary["spec"]["replicas"] == 1 and deployments["shop-api"]["spec"]["replicas"] == 0
    assert canary["spec"]["template"]["metadata"]["annotations"]["stackyard.io/canary-weight"] == "25"


def test_chart_check_passes_as_generated_and_publish_works(generated, tmp_path, image_mirror):
    check = stackyard("chart", "check", str(generated))
    assert check.returncode == 0, check.stderr
    assert "passes publish's checks" in check.stdout
    published = stackyard("chart", "publish", str(generated), "--registry", f"dir://{tmp_path / 'registry'}", "--json")
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["name"] == "shop-api"


def test_chart_check_refuses_what_publish_refuses_exit_1_and_pushes_nothing(generated, tmp_path, image_mirror):
    import shutil

    broken = tmp_path / "shop-api"
    shutil.copytree(generated, broken)
    secrets = broken / "profiles" / "qa1" / "secrets.yaml"
    secrets.write_text("secrets:\n  API_TOKEN: plaintext-token\n")
    check = stackyard("chart", "check", str(broken))
    assert check.returncode == 1
    assert "profiles/qa1/secrets.yaml looks like secrets but is not fully SOPS-encrypted" in check.stderr
    assert "Traceback" not in check.stderr
    secrets.unlink()
    (broken / "templates" / "service.yaml").write_text("{{ .Values.nope.missing }}\n")
    lint = stackyard("chart", "check", str(broken))
    assert lint.returncode == 1, lint.stderr
    assert "helm lint fails with its defaults" in lint.stderr


@pytest.mark.parametrize("name, message", [
    ("Shop_API", "is not a DNS-1123 label"),
    ("a" * 47, "longer than 46 characters"),
])
def test_init_refuses_a_bad_name(tmp_path, name, message):
    result = stackyard("chart", "init", name, "--dir", str(tmp_path))
    assert result.returncode == 1 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_never_overwrites_and_leaves_nothing_on_failure(tmp_path):
    (tmp_path / "shop-api").mkdir()
    (tmp_path / "shop-api" / "mine.txt").write_text("keep")
    again = stackyard("chart", "init", "shop-api", "--dir", str(tmp_path))
    assert again.returncode == 1 and "already exists" in again.stderr
    assert [p.name for p in (tmp_path / "shop-api").iterdir()] == ["mine.txt"]
    no_sops = stackyard("chart", "init", "other", "--dir", str(tmp_path), env={"PATH": "/usr/bin:/bin"})
    assert no_sops.returncode == 1 and "sops is not on PATH" in no_sops.stderr
    missing = stackyard("chart", "init", "other", "--dir", str(tmp_path), "--stacks", str(tmp_path / "none.yaml"))
    assert missing.returncode == 1 and "cannot read the stack registry" in missing.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shop-api"]


def test_init_follows_the_registry_it_is_given(tmp_path):
    stacks = tmp_path / "stacks.yaml"
    stacks.write_text(yaml.safe_dump({"stacks": {"perf": {
        "owner": "team-perf", "type": "persistent", "profile": "perf", "namespace": "perf", "source": "l3"}}}))
    result = stackyard("chart", "init", "shop-api", "--dir", str(tmp_path), "--stacks", str(stacks))
    assert result.returncode == 0, result.stderr
    assert set(load_chart(tmp_path / "shop-api").profiles) == {"ephemeral", "perf"}


def test_a_generated_chart_meets_the_canary_contract_and_a_broken_one_is_refused(generated, tmp_path):
    """``chart check`` with a registry that deploys the chart canary first renders it both ways."""
    import shutil as _shutil

    stacks = tmp_path / "stacks.yaml"
    stacks.write_text(yaml.safe_dump({"stacks": {"shop": {
        "owner": "team-shop", "type": "persistent", "profile": "qa1",
        "services": [{"name": "shop-api", "canary": {"steps": [10], "traffic": {"provider": "replicas"}}}]}}}))
    env = {"STACKYARD_STACKS": str(stacks)}
    from stackyard.adapters.helm import Helm, HelmConfig
    from stackyard.core.stack_registry import load_registry
    from stackyard.steps.publishing import check_canary_tracks

    helm = Helm(HelmConfig(home=tmp_path / "helm", binary=_shutil.which("helm")))
    registry = load_registry(stacks.read_text()).stacks.values()
    check_canary_tracks(generated, "shop-api", helm, registry)  # as generated: it passes
    broken = tmp_path / "shop-api"
    _shutil.copytree(generated, broken)
    service = broken / "templates" / "service.yaml"
    service.write_text(service.read_text().replace("app.kubernetes.io/instance: {{ .Release.Name }}", "tier: web"))
    result = stackyard("chart", "check", str(broken), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "chart shop-api (canary first for stack shop): the Service shop-api selects none of the release's pods" in result.stderr
