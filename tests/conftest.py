"""Fixtures shared by the whole suite: the real tools, the example charts, a scratch state folder.

Each pytest session gets an Airflow home of its own (a temporary directory with a freshly migrated
DB, set here before anything imports Airflow), so test DAG runs never land in local mode's
``.stackyard/airflow`` (what ``make up`` and ``airflow dags list`` in a local-mode shell use).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _local_env_module():
    spec = importlib.util.spec_from_file_location("local_env", ROOT / "scripts" / "local_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: This session's AIRFLOW_HOME, removed when the session ends (pytest_unconfigure).
SESSION_AIRFLOW_HOME = _local_env_module().fresh_airflow_home(
    ROOT, Path(tempfile.mkdtemp(prefix="stackyard-test-airflow-")) / "airflow")
os.environ["AIRFLOW_HOME"] = str(SESSION_AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{SESSION_AIRFLOW_HOME / 'airflow.db'}"


def pytest_unconfigure(config):
    shutil.rmtree(SESSION_AIRFLOW_HOME.parent, ignore_errors=True)

CHARTS = ROOT / "include" / "charts"
EXAMPLE_AGE_KEY = ROOT / "include" / "keys" / "example-only" / "age.key"
EXAMPLE_SERVICES = ("catalog", "orders", "storefront")


def require_tool(name: str) -> str:
    """The tool's path. `make test` installs every tool, so a missing one is a failure, not a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH; run the suite through `make test` (it installs the tools)")
    return path


@pytest.fixture(scope="session")
def moto_endpoint():
    """One moto_server (S3, KMS, ECR…) for the session."""
    from tests.support.moto import local_moto_server

    with local_moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_connection(monkeypatch, moto_endpoint) -> str:
    """An Airflow AWS connection (``aws_moto``) to the session's moto_server; yields its id."""
    import json

    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": moto_endpoint},
    }))
    return "aws_moto"


@pytest.fixture(scope="session")
def helm_bin() -> str:
    return require_tool("helm")


@pytest.fixture(scope="session")
def sops_bin() -> str:
    return require_tool("sops")


@pytest.fixture(scope="session")
def image_mirror(tmp_path_factory):
    """Local mode's image mirror for the session (dev/image_mirror.py): every image the example
    charts deploy, offline. Yields the ``STACKYARD_IMAGE_MIRRORS`` value, also set in the
    environment so Airflow tasks that resolve images see it."""
    from dev.image_mirror import serve

    with serve(tmp_path_factory.mktemp("image-mirror")) as mirrors:
        previous = os.environ.get("STACKYARD_IMAGE_MIRRORS")
        os.environ["STACKYARD_IMAGE_MIRRORS"] = mirrors
        try:
            yield mirrors
        finally:
            if previous is None:
                os.environ.pop("STACKYARD_IMAGE_MIRRORS", None)
            else:
                os.environ["STACKYARD_IMAGE_MIRRORS"] = previous


@pytest.fixture
def images(image_mirror):
    """An image resolver reaching the example charts' images through the session's mirror."""
    from stackyard.adapters.image_registry import ImageResolver
    from stackyard.core.images import parse_mirrors

    return ImageResolver(mirrors=parse_mirrors(image_mirror))


@pytest.fixture
def chart_copy(tmp_path):
    """A private copy of an example chart, to modify freely."""

    def copy(service: str, version: str | None = None) -> Path:
        dest = tmp_path / "src" / service
        shutil.copytree(CHARTS / service, dest)
        if version:
            chart_yaml = dest / "Chart.yaml"
            text = chart_yaml.read_text().replace("version: 1.0.0", f"version: {version}")
            chart_yaml.write_text(text)
        return dest

    return copy


@pytest.fixture
def example_env(monkeypatch):
    """sops can read the example-only age key."""
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(EXAMPLE_AGE_KEY))
    return os.environ
