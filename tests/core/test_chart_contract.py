"""The profile half of the chart contract (core.chart_contract), one test per rule."""

from __future__ import annotations

import pytest

from stackyard.core.chart_contract import check_profiles, looks_like_secrets, required_profiles
from stackyard.core.stack_registry import load_registry

from tests.conftest import CHARTS

CATALOG = CHARTS / "catalog"
ENCRYPTED = (CATALOG / "profiles" / "ephemeral" / "secrets.yaml").read_bytes()  # to the example age key
SOPS_CONFIG = (CATALOG / ".sops.yaml").read_bytes()
EXAMPLE_KEY = "age1pf8gevf3t48205gpyhvqkmcw0wggrne9a7ay7had6gzqngsvfgks026xcz"
OTHER_KEY = "age1z7zdnynxqgjk0rmesrg24avs9ctgvmr0dpc8kmm9ma3gw5cwv9qqncthdq"
EPHEMERAL = {"ephemeral": ["the L3 gate and personal stacks"]}


def files() -> dict[str, bytes]:
    return {"profiles/ephemeral/values.yaml": b"replicaCount: 1\n", ".sops.yaml": SOPS_CONFIG}


def test_a_complete_chart_passes():
    assert check_profiles("catalog", files() | {"profiles/ephemeral/secrets.yaml": ENCRYPTED}, EPHEMERAL) == []


def test_the_ephemeral_profile_is_required():
    [problem] = check_profiles("catalog", {"profiles/qa1/values.yaml": b"{}"}, EPHEMERAL)
    assert problem == ("chart catalog: no profile 'ephemeral' (profiles/ephemeral/values.yaml), needed by the L3 "
                       "gate and personal stacks")


def test_a_profile_of_a_stack_that_deploys_the_chart_is_required_naming_the_stack():
    registry = load_registry("""
stacks:
  prod: {owner: o, type: persistent, profile: production, namespace: prod, source: l3, services: [catalog]}
  other: {owner: o, type: persistent, profile: other, namespace: other, source: l3, services: [orders]}
  every: {owner: o, type: persistent, profile: qa1, namespace: every, source: l3, services: all}
""")
    assert registry.errors == {}
    required = required_profiles("catalog", registry.stacks.values())
    assert required == {"ephemeral": ["the L3 gate and personal stacks"], "production": ["stack prod"],
                        "qa1": ["stack every"]}
    problems = check_profiles("catalog", files(), required)
    assert problems == [
        "chart catalog: no profile 'production' (profiles/production/values.yaml), needed by stack prod",
        "chart catalog: no profile 'qa1' (profiles/qa1/values.yaml), needed by stack every",
    ]


def test_profile_names_are_dns_labels():
    [problem] = check_profiles("catalog", files() | {"profiles/Bad Name/values.yaml": b"{}"}, EPHEMERAL)
    assert "profile 'Bad Name' (profiles/Bad Name/) is not a DNS label" in problem


@pytest.mark.parametrize("path, data", [
    ("profiles/ephemeral/secrets.yml", b"password: hunter22\n"),
    ("profiles/ephemeral/secrets-extra.yaml", b"password: hunter22\n"),
    ("profiles/ephemeral/db.sops.json", b'{"password": "hunter22"}'),
    ("profiles/ephemeral/values-db.yaml", b"password: ENC[AES256_GCM,data:abc]\nplain: hunter22\n"),
    ("profiles/ephemeral/creds.yaml", b"password: hunter22\nsops: {version: 3.11.0}\n"),
    ("profiles/ephemeral/nested/secrets.yaml", b"password: hunter22\n"),
], ids=["secrets.yml", "secrets-*.yaml", "*.sops.*", "an ENC[ value", "a sops: map", "deeper folder"])
def test_anything_that_looks_like_secrets_must_be_fully_encrypted(path, data):
    assert looks_like_secrets(path, data)
    [problem] = check_profiles("catalog", files() | {path: data}, EPHEMERAL)
    assert problem.startswith(f"chart catalog: {path} looks like secrets but is not fully SOPS-encrypted")


def test_plain_values_are_not_secrets():
    assert not looks_like_secrets("profiles/ephemeral/values.yaml", b"replicaCount: 1\nname: secrets\n")


def test_recipients_must_match_the_creation_rule_for_the_path():
    config = SOPS_CONFIG.replace(b"profiles/ephemeral/secrets\\.yaml$\n    age: " + EXAMPLE_KEY.encode(),
                                 b"profiles/ephemeral/secrets\\.yaml$\n    age: " + OTHER_KEY.encode())
    assert config != SOPS_CONFIG
    [problem] = check_profiles("catalog", files() | {".sops.yaml": config, "profiles/ephemeral/secrets.yaml": ENCRYPTED},
                               EPHEMERAL)
    assert problem == (f"chart catalog: profiles/ephemeral/secrets.yaml is encrypted to age {EXAMPLE_KEY} but "
                       f".sops.yaml says age {OTHER_KEY} for it; re-encrypt it: sops updatekeys "
                       "profiles/ephemeral/secrets.yaml")


@pytest.mark.parametrize("config, message", [
    (None, "profiles carry encrypted files but the chart has no .sops.yaml"),
    (b"creation_rules:\n  - path_regex: nothing-matches$\n    age: x\n", "no creation rule of .sops.yaml matches"),
    (b"creation_rules: [{path_regex: '(', age: x}]\n", "is not a regex"),
    (b"rules: []\n", ".sops.yaml has no list of creation_rules"),
], ids=["no .sops.yaml", "no rule for the path", "a bad regex", "no creation_rules"])
def test_sops_config_problems(config, message):
    chart = files() | {"profiles/ephemeral/secrets.yaml": ENCRYPTED}
    if config is None:
        del chart[".sops.yaml"]
    else:
        chart[".sops.yaml"] = config
    [problem] = check_profiles("catalog", chart, EPHEMERAL)
    assert message in problem


def test_key_groups_and_comma_lists_are_read_as_sops_reads_them():
    config = (b"creation_rules:\n  - path_regex: profiles/ephemeral/\n    key_groups:\n      - age:\n          - "
              + EXAMPLE_KEY.encode() + b"\n")
    assert check_profiles("catalog", files() | {".sops.yaml": config, "profiles/ephemeral/secrets.yaml": ENCRYPTED},
                          EPHEMERAL) == []
    config = b"creation_rules:\n  - path_regex: secrets\n    age: " + EXAMPLE_KEY.encode() + b", " + OTHER_KEY.encode() + b"\n"
    [problem] = check_profiles("catalog", files() | {".sops.yaml": config, "profiles/ephemeral/secrets.yaml": ENCRYPTED},
                               EPHEMERAL)
    assert f"says age {EXAMPLE_KEY}, {OTHER_KEY}" in problem or f"says age {OTHER_KEY}, {EXAMPLE_KEY}" in problem


# --- canary: a Service per track ---------------------------------------------------------------------


def _deployment(name, labels, replicas=1):
    return {"kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": labels}}}}


def _service(name, selector):
    return {"kind": "Service", "metadata": {"name": name}, "spec": {"selector": selector}}


def _renders(**change):
    base = {"app.kubernetes.io/name": "orders"}
    stable = [_deployment("orders", {**base, "app.kubernetes.io/instance": "orders", "stackyard.io/track": "stable"}),
              _service("orders", {**base, "app.kubernetes.io/instance": "orders"})]
    canary_pods = {**base, "app.kubernetes.io/instance": "orders-canary", "stackyard.io/track": "canary"}
    canary = [_deployment("orders-canary", {**base, "app.kubernetes.io/instance": "orders-canary",
                                            "stackyard.io/track": "stable"}, replicas=0),
              _deployment("orders-canary-canary", canary_pods),
              _service("orders-canary", {**base, "app.kubernetes.io/instance": "orders-canary"})]
    for key, value in change.items():
        (stable if key.startswith("stable") else canary)[int(key[-1])] = value
    return stable, canary


@pytest.mark.parametrize("change, problem", [
    ({}, None),
    ({"stable1": _service("web", {"a": "b"})}, "has no Service named orders"),
    ({"stable1": _service("orders", {"app.kubernetes.io/name": "other"})}, "the Service orders selects none of the release's pods"),
    ({"stable0": _deployment("orders", {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": "orders"})},
     "carry no label stackyard.io/track: stable"),
    ({"canary1": _deployment("orders-canary-x", {"stackyard.io/track": "canary"})}, "renders no Deployment orders-canary-canary"),
    ({"canary2": _service("orders-canary", {"app.kubernetes.io/name": "orders"})}, "also selects the stable release's pods"),
    ({"canary2": _service("orders-canary", {"app.kubernetes.io/instance": "nope"})}, "does not select the pods of Deployment orders-canary-canary"),
    ({"canary0": _deployment("orders-canary", {"stackyard.io/track": "stable"}, replicas=2)}, "still runs Deployment orders-canary with 2 replica(s)"),
])
def test_canary_contract_a_service_per_track(change, problem):
    from stackyard.core.chart_contract import check_canary

    stable, canary = _renders(**change)
    found = check_canary("orders", stable, canary, stable_release="orders", canary_release="orders-canary",
                         needed_by="stack production")
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0] and found[0].startswith("chart orders (canary first for stack production)")
