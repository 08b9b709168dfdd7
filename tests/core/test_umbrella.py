"""The umbrella package: reproducible, and installable as helm sees it."""

import subprocess

import yaml

from stackyard.core.charts import load_chart_bytes, vendored_charts
from stackyard.core.umbrella import UmbrellaTemplate, VendoredChart, build_umbrella, umbrella_version
from stackyard.steps.publishing import load_umbrella_template

from tests.conftest import CHARTS, EXAMPLE_SERVICES, ROOT


def test_umbrella_versions():
    assert umbrella_version(3) == "3.0.0"
    assert umbrella_version(4, "0123456789abcdef") == "4.0.0-candidate-0123456789ab"


def test_same_inputs_give_byte_identical_packages():
    template = UmbrellaTemplate({"description": "x"}, {"values.yaml": b"{}\n"})
    charts = [VendoredChart("b", "1.0.0", b"B"), VendoredChart("a", "2.0.0", b"A")]
    assert build_umbrella(template, "1.0.0", charts) == build_umbrella(template, "1.0.0", list(reversed(charts)))


def test_umbrella_renders_with_helm(tmp_path, helm_bin):
    for service in EXAMPLE_SERVICES:
        subprocess.run([helm_bin, "package", str(CHARTS / service), "-d", str(tmp_path)], check=True, capture_output=True)
    charts = [VendoredChart(s, "1.0.0", (tmp_path / f"{s}-1.0.0.tgz").read_bytes()) for s in EXAMPLE_SERVICES]
    data = build_umbrella(load_umbrella_template(ROOT / "include" / "umbrella"), "2.0.0", charts)
    package = tmp_path / "l3-2.0.0.tgz"
    package.write_bytes(data)

    assert load_chart_bytes(data, "l3").version == "2.0.0"
    assert [c.name for c in vendored_charts(data, "l3")] == list(EXAMPLE_SERVICES)
    rendered = subprocess.run([helm_bin, "template", "l3", str(package), "-n", "x"], check=True, capture_output=True, text=True).stdout
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered) if doc]
    assert kinds.count("Deployment") == 3 and kinds.count("Service") == 3
    subprocess.run([helm_bin, "lint", str(package)], check=True, capture_output=True)
