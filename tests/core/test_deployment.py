"""Values layers of a deployment: single service charts and umbrellas."""

import pytest

from stackyard.core.deployment import deployment_layers, values_digest
from stackyard.core.umbrella import UmbrellaTemplate, VendoredChart, build_umbrella
from stackyard.core.values import compose
from stackyard.exceptions import NotFoundError

from tests.conftest import CHARTS, EXAMPLE_SERVICES


def fake_decrypt(profile):
    return {"secrets": {"DATABASE_PASSWORD": f"pw-of-{profile.chart}-{profile.name}"}}


@pytest.fixture(scope="module")
def packages(tmp_path_factory, helm_bin):
    import subprocess

    out = tmp_path_factory.mktemp("pk")
    for service in EXAMPLE_SERVICES:
        subprocess.run([helm_bin, "package", str(CHARTS / service), "-d", str(out)], check=True, capture_output=True)
    return {s: (out / f"{s}-1.0.0.tgz").read_bytes() for s in EXAMPLE_SERVICES}


def test_single_chart_profile_applies_at_top_level(packages):
    layers = deployment_layers(packages["orders"], origin="orders", profile="qa1", stack="qa1", namespace="qa1-ns", decrypt=fake_decrypt)
    assert [l.source for l in layers] == ["orders/profiles/qa1/values.yaml", "orders/profiles/qa1/secrets.yaml", "stack"]
    assert [l.secret for l in layers] == [False, True, False]
    values = compose(layers)
    assert values["replicaCount"] == 2
    assert values["secrets"]["DATABASE_PASSWORD"] == "pw-of-orders-qa1"
    assert values["global"]["stackyard"] == {"stack": "qa1", "namespace": "qa1-ns", "profile": "qa1"}


def test_umbrella_nests_each_services_profile_under_its_name(packages):
    umbrella = build_umbrella(UmbrellaTemplate({}, {}), "1.0.0", [VendoredChart(s, "1.0.0", d) for s, d in packages.items()])
    values = compose(deployment_layers(umbrella, origin="l3", profile="stage", stack="s", namespace="s", decrypt=fake_decrypt))
    assert set(values) == {"catalog", "orders", "storefront", "global"}
    assert values["orders"]["config"]["database"]["host"] == "orders-db.stage.internal"
    assert values["catalog"]["secrets"]["DATABASE_PASSWORD"] == "pw-of-catalog-stage"


def test_profile_missing_everywhere_is_an_error(packages):
    with pytest.raises(NotFoundError, match="qa7"):
        deployment_layers(packages["orders"], origin="orders", profile="qa7", stack="s", namespace="s", decrypt=fake_decrypt)


def test_values_digest_is_stable_under_key_order():
    assert values_digest({"a": 1, "b": {"c": 2, "d": 3}}) == values_digest({"b": {"d": 3, "c": 2}, "a": 1})
    assert values_digest({"a": 1}) != values_digest({"a": 2})
