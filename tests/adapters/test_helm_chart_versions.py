"""The chart-version tables of tests/core/test_versions.py, checked against the real helm:
what ``helm package`` accepts is exactly what :func:`stackyard.core.versions.is_semver` accepts,
and ``helm show chart`` keeps the declared text."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from stackyard.core.versions import is_semver
from tests.core.test_versions import INVALID, VALID

# helm reads Chart.yaml itself: versions YAML cannot hold as a string are left out.
CASES = {**VALID, **{k: v for k, v in INVALID.items() if v.strip() == v and v and "\n" not in v}}


def package(tmp_path, version: str) -> subprocess.CompletedProcess:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", "name": "chart", "version": version}))
    return subprocess.run(["helm", "package", str(chart), "-d", str(tmp_path)], capture_output=True, text=True)


@pytest.mark.parametrize("version", CASES.values(), ids=CASES.keys())
def test_helm_and_stackyard_accept_the_same_chart_versions(tmp_path, helm_bin, version):
    result = package(tmp_path, version)
    assert (result.returncode == 0) is is_semver(version), result.stderr


@pytest.mark.parametrize("version", ["v1.19.0", "1.2", "1.2.3-rc.1+build"])
def test_helm_keeps_the_declared_text(tmp_path, helm_bin, version):
    assert package(tmp_path, version).returncode == 0
    [packaged] = tmp_path.glob("chart-*.tgz")
    shown = subprocess.run(["helm", "show", "chart", str(packaged)], capture_output=True, text=True, check=True)
    assert yaml.safe_load(shown.stdout)["version"] == version
