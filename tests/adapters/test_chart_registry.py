"""One contract for both chart registries: a plain directory and a real OCI registry."""

from __future__ import annotations

import shutil
import time

import pytest

from stackyard.core.images import IMAGE_LOCK, ImageLock

from stackyard.core.charts import content_digest
from stackyard.exceptions import ImmutableArtifactError, InputError, NotFoundError
from stackyard.steps.publishing import publish_chart
from stackyard.adapters.chart_registry import ChartCache, DirectoryRegistry, OciRegistry, open_registry
from stackyard.adapters.helm import Helm, HelmConfig

from tests.conftest import require_tool
from tests.support.oci_registry import local_oci_registry


@pytest.fixture(scope="session")
def oci_registry_host(tmp_path_factory):
    """A real CNCF distribution registry (Debian's docker-registry) on loopback."""
    require_tool("docker-registry")
    with local_oci_registry(tmp_path_factory.mktemp("oci")) as host:
        yield host


@pytest.fixture
def helm(tmp_path, helm_bin):
    return Helm(HelmConfig(home=tmp_path / "helm-home", binary=helm_bin, plain_http=True, base_env={"PATH": "/usr/bin:/bin"}))


@pytest.fixture(params=["directory", "oci"])
def registry(request, tmp_path, helm):
    cache = ChartCache(tmp_path / "cache")
    if request.param == "directory":
        return DirectoryRegistry(tmp_path / "registry", cache)
    host = request.getfixturevalue("oci_registry_host")
    return OciRegistry(f"oci://{host}/t{time.monotonic_ns()}", cache, helm)


def package(helm, chart_dir, dest):
    return helm.package(chart_dir, dest)


def test_publish_then_fetch_returns_the_same_bytes(registry, helm, chart_copy, tmp_path):
    tgz = package(helm, chart_copy("orders"), tmp_path / "pk")
    ref = registry.publish(tgz)
    assert (ref.name, ref.version) == ("orders", "1.0.0")
    assert ref.digest == content_digest(tgz.read_bytes())
    assert registry.fetch("orders", "1.0.0").read_bytes() == tgz.read_bytes()
    assert registry.resolve("orders", "1.0.0") == ref


def test_publishing_the_same_content_again_is_a_no_op(registry, helm, chart_copy, tmp_path):
    src = chart_copy("orders")
    first = registry.publish(package(helm, src, tmp_path / "a"))
    again = registry.publish(package(helm, src, tmp_path / "b"))
    assert again == first


def test_same_version_with_different_content_is_refused(registry, helm, chart_copy, tmp_path):
    src = chart_copy("orders")
    registry.publish(package(helm, src, tmp_path / "a"))
    (src / "values.yaml").write_text((src / "values.yaml").read_text() + "\nextra: changed\n")
    with pytest.raises(ImmutableArtifactError, match="orders 1.0.0 is already published with different content"):
        registry.publish(package(helm, src, tmp_path / "b"))


def test_missing_version_is_not_found(registry):
    with pytest.raises(NotFoundError, match="orders"):
        registry.fetch("orders", "9.9.9")
    assert registry.exists("orders", "9.9.9") is False


def test_warm_fetch_touches_no_registry(registry, helm, chart_copy, tmp_path):
    registry.publish(package(helm, chart_copy("orders"), tmp_path / "pk"))
    fresh = type(registry).__new__(type(registry))
    fresh.__dict__.update(registry.__dict__)
    fresh._download = lambda *a: pytest.fail("warm fetch went to the registry")
    assert fresh.fetch("orders", "1.0.0").is_file()


def test_directory_registry_lists_versions_in_semver_order(tmp_path, helm, chart_copy):
    registry = DirectoryRegistry(tmp_path / "registry", ChartCache(tmp_path / "cache"))
    for version in ("1.10.0", "1.2.0", "1.2.0-rc.1"):
        registry.publish(package(helm, chart_copy("orders", version), tmp_path / version))
        shutil.rmtree(tmp_path / "src")
    assert registry.versions("orders") == ["1.2.0-rc.1", "1.2.0", "1.10.0"]


def test_publish_chart_refuses_plaintext_secrets_before_pushing(tmp_path, helm, chart_copy, images):
    registry = DirectoryRegistry(tmp_path / "registry", ChartCache(tmp_path / "cache"))
    src = chart_copy("orders")
    (src / "profiles" / "qa1" / "secrets.yaml").write_text("secrets:\n  DATABASE_PASSWORD: plaintext-oops\n")
    with pytest.raises(InputError, match="chart orders: profiles/qa1/secrets.yaml looks like secrets but is not fully SOPS-encrypted"):
        publish_chart(src, registry=registry, helm=helm, images=images)
    assert not (tmp_path / "registry").exists()


def test_publish_chart_packages_profiles_inside_the_artifact(tmp_path, helm, chart_copy, images):
    registry = DirectoryRegistry(tmp_path / "registry", ChartCache(tmp_path / "cache"))
    ref = publish_chart(chart_copy("catalog"), registry=registry, helm=helm, images=images)
    import tarfile

    with tarfile.open(registry.fetch("catalog", ref.version)) as tar:
        names = tar.getnames()
    assert "catalog/profiles/production/secrets.yaml" in names and "catalog/profiles/qa1/values.yaml" in names
    # ... and the lock of every image each profile deploys, by digest (docs/images.md)
    with tarfile.open(registry.fetch("catalog", ref.version)) as tar:
        lock = ImageLock.from_json(tar.extractfile(f"catalog/{IMAGE_LOCK}").read())
    assert set(lock.profiles) == {"_defaults", "ephemeral", "production", "qa1", "stage"}
    assert all(pin.digest.startswith("sha256:") and pin.mirror for pin in lock.pins("qa1"))


def test_open_registry_rejects_unknown_schemes(tmp_path):
    with pytest.raises(InputError, match="unknown registry URL"):
        open_registry("ftp://x", cache_dir=tmp_path)
    assert isinstance(open_registry(str(tmp_path / "r"), cache_dir=tmp_path), DirectoryRegistry)


def test_ecr_host_without_aws_connection_is_a_clear_error(tmp_path, helm):
    registry = OciRegistry("oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/charts", ChartCache(tmp_path), helm)
    with pytest.raises(InputError, match="ECR registry but no AWS connection"):
        registry.fetch("orders", "1.0.0")


def test_ecr_host_logs_in_with_a_token_from_aws(tmp_path, helm, monkeypatch):
    logins = []
    monkeypatch.setattr(helm, "registry_login", lambda host, user, password: logins.append((host, user, password)))
    monkeypatch.setattr(helm, "pull", lambda *a: (_ for _ in ()).throw(NotFoundError("absent")))
    registry = OciRegistry(
        "oci://123456789012.dkr.ecr.eu-west-1.amazonaws.com/charts", ChartCache(tmp_path), helm,
        ecr_token=lambda host: ("AWS", "token-from-ecr"),
    )
    assert registry.exists("orders", "1.0.0") is False
    assert logins == [("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "AWS", "token-from-ecr")]
