"""Locking a chart's images at publish and checking them before a deploy: the real helm renders
each profile (secrets by their structure only), a real registry answers."""

from __future__ import annotations

import shutil

import pytest
import yaml

from stackyard.adapters.helm import Helm, HelmConfig
from stackyard.adapters.image_registry import ImageResolver
from stackyard.core.charts import load_chart
from stackyard.core.images import ImageLock, ImagePin, parse_mirrors
from stackyard.exceptions import InputError, NotFoundError, UnavailableError
from stackyard.steps.images import DEFAULTS, check_pinned, lock_images, rendered_images

from tests.conftest import CHARTS
from dev.oci_images import push_image
from tests.support.oci_registry import local_oci_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with local_oci_registry(tmp_path_factory.mktemp("img")) as host:
        yield host


@pytest.fixture
def helm(tmp_path, helm_bin):
    return Helm(HelmConfig(binary=helm_bin, home=tmp_path / "helm-home"))


def orders_chart(tmp_path, registry, *, ephemeral_tag="1.1.0"):
    """The example orders chart with its image in the test registry; ephemeral deploys another tag."""
    chart = tmp_path / "orders"
    shutil.copytree(CHARTS / "orders", chart)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["image"]["repository"] = f"{registry}/stackyard/orders"
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    profile = chart / "profiles" / "ephemeral" / "values.yaml"
    data = yaml.safe_load(profile.read_text())
    data["image"] = {"tag": ephemeral_tag}
    profile.write_text(yaml.safe_dump(data))
    return chart


def test_every_profile_is_rendered_with_hooks_and_tests_without_decrypting(tmp_path, registry, helm):
    chart_dir = orders_chart(tmp_path, registry)
    found = rendered_images(chart_dir, load_chart(chart_dir), helm)
    assert set(found) == {DEFAULTS, "ephemeral", "production", "qa1", "stage"}
    assert {i.reference for i in found["ephemeral"]} == {f"{registry}/stackyard/orders:1.1.0", "docker.io/library/busybox:1.36"}
    assert {i.reference for i in found[DEFAULTS]} == {f"{registry}/stackyard/orders:1.0.0", "docker.io/library/busybox:1.36"}


def test_the_lock_pins_each_profiles_images_to_digests_through_a_mirror(tmp_path, registry, helm):
    app = push_image(registry, "stackyard/orders", "1.0.0", content=b"orders-1.0.0")
    app11 = push_image(registry, "stackyard/orders", "1.1.0", content=b"orders-1.1.0")
    box = push_image(registry, "hub/library/busybox", "1.36", content=b"busybox")
    chart_dir = orders_chart(tmp_path, registry)
    resolver = ImageResolver(mirrors=parse_mirrors(f"docker.io={registry}/hub"))
    lock = lock_images(chart_dir, load_chart(chart_dir), helm, resolver)
    assert set(lock.pins("ephemeral")) == {ImagePin(f"{registry}/stackyard/orders:1.1.0", app11),
                                           ImagePin("docker.io/library/busybox:1.36", box, mirror=registry)}
    assert ImagePin(f"{registry}/stackyard/orders:1.0.0", app) in lock.pins("production")
    assert ImageLock.from_json(lock.to_json()) == lock
    assert resolver.requests == 3  # one per distinct image, however many profiles use it


def test_a_missing_image_refuses_naming_chart_profile_image_and_registry(tmp_path, registry, helm):
    push_image(registry, "stackyard/orders", "1.0.0", content=b"orders-1.0.0")
    push_image(registry, "hub/library/busybox", "1.36", content=b"busybox")
    chart_dir = orders_chart(tmp_path, registry, ephemeral_tag="9.9.9-missing")
    resolver = ImageResolver(mirrors=parse_mirrors(f"docker.io={registry}/hub"))
    with pytest.raises(NotFoundError) as exc:
        lock_images(chart_dir, load_chart(chart_dir), helm, resolver)
    message = str(exc.value)
    assert "orders (profile ephemeral, Deployment/" in message
    assert f"image {registry}/stackyard/orders:9.9.9-missing does not exist in registry {registry}" in message
    assert "nothing was published" in message and "profile qa1" not in message


def test_before_a_deploy_a_moved_tag_is_refused_with_both_digests(registry):
    pinned = push_image(registry, "stackyard/moving", "2.0", content=b"first")
    pins = [ImagePin(f"{registry}/stackyard/moving:2.0", pinned)]
    check_pinned(pins, ImageResolver(), what="orders 2.0.0 on qa1")  # unchanged: fine
    current = push_image(registry, "stackyard/moving", "2.0", content=b"pushed again")
    with pytest.raises(InputError, match=rf"pinned {pinned}, the registry now has {current}"):
        check_pinned(pins, ImageResolver(), what="orders 2.0.0 on qa1")


def test_before_a_deploy_an_unreachable_registry_is_an_outage_not_a_verdict():
    pins = [ImagePin("127.0.0.1:9/stackyard/x:1", "sha256:" + "d" * 64)]
    with pytest.raises(UnavailableError, match="orders 1.0.0 on qa1: image 127.0.0.1:9/stackyard/x:1: could not reach"):
        check_pinned(pins, ImageResolver(timeout=2), what="orders 1.0.0 on qa1")


def test_a_profile_that_does_not_render_is_refused_naming_chart_and_profile(tmp_path, registry, helm):
    chart_dir = orders_chart(tmp_path, registry)
    (chart_dir / "templates" / "strict.yaml").write_text(
        '{{- if eq .Values.config.logLevel "info" }}{{ fail "info logging is not allowed" }}{{- end }}\n')
    with pytest.raises(InputError, match=r"orders: profile ephemeral does not render, so its images cannot be locked.*"
                                         r"info logging is not allowed"):
        rendered_images(chart_dir, load_chart(chart_dir), helm)
