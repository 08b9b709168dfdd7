"""Image references, the images a rendered chart deploys, mirrors and pins: one case per rule."""

from __future__ import annotations

import pytest

from stackyard.core.images import (
    ImagePin, ImageRef, image_changes, images_in, moved, parse_image, parse_mirrors,
)
from stackyard.exceptions import InputError

D = "sha256:" + "a" * 64
E = "sha256:" + "b" * 64


@pytest.mark.parametrize("text, expected", [
    ("busybox", ImageRef("docker.io", "library/busybox", "latest")),
    ("busybox:1.36", ImageRef("docker.io", "library/busybox", "1.36")),
    ("nginxinc/nginx-unprivileged:1.27", ImageRef("docker.io", "nginxinc/nginx-unprivileged", "1.27")),
    ("docker.io/library/redis:7", ImageRef("docker.io", "library/redis", "7")),
    ("index.docker.io/redis", ImageRef("docker.io", "library/redis", "latest")),
    ("ghcr.io/org/app/api:v1.2.3", ImageRef("ghcr.io", "org/app/api", "v1.2.3")),
    ("localhost/app", ImageRef("localhost", "app", "latest")),
    ("127.0.0.1:5000/team/app:1.0", ImageRef("127.0.0.1:5000", "team/app", "1.0")),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders:1.0.0",
     ImageRef("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "orders", "1.0.0")),
    (f"quay.io/jetstack/cert-manager-controller@{D}", ImageRef("quay.io", "jetstack/cert-manager-controller", None, D)),
    (f"busybox:1.36@{D}", ImageRef("docker.io", "library/busybox", "1.36", D)),
])
def test_references_are_normalized_as_container_runtimes_do(text, expected):
    assert parse_image(text) == expected


@pytest.mark.parametrize("text", [
    "", " busybox", "busybox\n", "Busybox", "busybox:", "busybox@sha256:short", "a//b", "-x/y",
    "registry.example.com/", "x" * 500, "host:port:tag/x",
])
def test_bad_references_are_refused_naming_them(text):
    with pytest.raises(InputError, match="image|reference"):
        parse_image(text)


def test_the_registry_api_of_docker_hub_is_registry_1():
    assert parse_image("busybox").api_host == "registry-1.docker.io"
    assert parse_image("ghcr.io/a/b").api_host == "ghcr.io"


def test_pinned_keeps_the_tag_for_readers():
    assert parse_image("busybox:1.36").pinned(D) == f"docker.io/library/busybox:1.36@{D}"


def test_images_in_every_pod_spec_of_every_kind_hooks_and_custom_resources_included():
    docs = [
        {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {"spec": {
            "initContainers": [{"name": "init", "image": "busybox:1.36"}],
            "containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "side", "image": "envoy:v1"}]}}}},
        {"kind": "CronJob", "metadata": {"name": "nightly"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "job", "image": "alpine:3"}]}}}}}},
        {"kind": "Pod", "metadata": {"name": "t", "annotations": {"helm.sh/hook": "test"}},
         "spec": {"containers": [{"name": "test", "image": "busybox:1.36"}],
                  "ephemeralContainers": [{"name": "debug", "image": "debug:1"}]}},
        {"kind": "Rollout", "apiVersion": "argoproj.io/v1alpha1", "metadata": {"name": "r"},
         "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "custom:2"}]}}}},
        {"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"containers": "not a list of containers"}},
        None,
    ]
    assert [(i.kind, i.container, i.reference) for i in images_in(docs)] == [
        ("Deployment", "init", "busybox:1.36"), ("Deployment", "app", "nginx:1.27"), ("Deployment", "side", "envoy:v1"),
        ("CronJob", "job", "alpine:3"), ("Pod", "test", "busybox:1.36"), ("Pod", "debug", "debug:1"),
        ("Rollout", "c", "custom:2"),
    ]


def test_mirrors_map_a_registry_to_a_host_and_prefix():
    mirrors = parse_mirrors("docker.io=127.0.0.1:5000/hub, ghcr.io=127.0.0.1:5000")
    assert mirrors["docker.io"].locate(parse_image("busybox:1")) == ImageRef("127.0.0.1:5000", "hub/library/busybox", "1")
    assert mirrors["ghcr.io"].locate(parse_image("ghcr.io/a/b:2")) == ImageRef("127.0.0.1:5000", "a/b", "2")
    assert parse_mirrors("") == {} and parse_mirrors(None) == {}


@pytest.mark.parametrize("text", ["docker.io", "docker.io=", "=x", "docker.io=a b", "docker.io=x,docker.io=y"])
def test_bad_mirror_settings_are_refused_naming_the_variable(text):
    with pytest.raises(InputError, match="STACKYARD_IMAGE_MIRRORS"):
        parse_mirrors(text)


def test_pins_round_trip_and_refuse_unknown_fields_and_bad_digests():
    pin = ImagePin("busybox:1.36", D, mirror="127.0.0.1:5000")
    assert ImagePin.from_dict(pin.to_dict()) == pin
    assert ImagePin("busybox", D).to_dict() == {"reference": "busybox", "digest": D}
    with pytest.raises(InputError, match="unknown field"):
        ImagePin.from_dict({"reference": "busybox", "digest": D, "tag": "x"})
    with pytest.raises(InputError, match="not a digest"):
        ImagePin("busybox", "latest")


def test_a_tag_that_moved_is_named_with_both_digests():
    pins = [ImagePin("busybox:1.36", D), ImagePin("nginx:1", D)]
    [m] = moved(pins, {"busybox:1.36": E, "nginx:1": D})
    assert str(m) == f"busybox:1.36: pinned {D}, the registry now has {E}"


def test_image_changes_name_images_even_when_the_chart_version_did_not_change():
    old = [ImagePin("busybox:1.36", D), ImagePin("gone:1", D)]
    new = [ImagePin("busybox:1.36", E), ImagePin("added:1", E)]
    assert image_changes(old, new) == [f"+ added:1 {E}", f"~ busybox:1.36 {D} -> {E}", f"- gone:1 {D}"]
