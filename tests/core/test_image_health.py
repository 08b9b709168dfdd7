"""The Stacks view's image check: running containers' imageIDs against the digests L3 pins."""

from __future__ import annotations

import pytest

from stackyard.core.fleet import image_rows, pinned_images
from stackyard.core.health import Health, assess_namespace, image_mismatches, running_digest
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64
PINNED = {"registry.example.com/shop/orders:1.0.0": A, "busybox:1.36": B}


def pod(image, image_id, init_image="busybox:1.36", init_id=f"docker.io/library/busybox@{B}"):
    return {"kind": "Pod", "metadata": {"name": "orders-1", "labels": {"app.kubernetes.io/instance": "orders"}},
            "spec": {"initContainers": [{"name": "init", "image": init_image}],
                     "containers": [{"name": "app", "image": image}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "initContainerStatuses": [{"name": "init", "image": init_image, "imageID": init_id}],
                       "containerStatuses": [{"name": "app", "image": image, "imageID": image_id, "ready": True,
                                              "state": {"running": {}}}]}}


@pytest.mark.parametrize("image_id, expected", [
    (f"docker-pullable://nginx@{A}", A), (f"docker.io/library/nginx@{A}", A),
    (f"sha256:{'a' * 64}", None),  # a local image ID, not a registry digest
    ("", None), (None, None),
])
def test_running_digest_reads_docker_and_containerd_image_ids(image_id, expected):
    assert running_digest(image_id) == expected


@pytest.mark.parametrize("name, image, image_id, flagged", [
    ("a tag at its pinned digest", "registry.example.com/shop/orders:1.0.0", f"registry.example.com/shop/orders@{A}", False),
    ("a tag that now runs other content", "registry.example.com/shop/orders:1.0.0", f"registry.example.com/shop/orders@{C}", True),
    ("pinned by digest (pin_images) and running it", f"registry.example.com/shop/orders@{A}",
     f"registry.example.com/shop/orders@{A}", False),
    ("an older digest still running", f"registry.example.com/shop/orders@{C}", f"registry.example.com/shop/orders@{C}", True),
    ("dockershim's form", "registry.example.com/shop/orders:1.0.0", f"docker-pullable://registry.example.com/shop/orders@{A}", False),
    ("not pulled yet: not judged", "registry.example.com/shop/orders:1.0.0", "", False),
    ("an image L3 does not pin: not judged", "redis:7", f"docker.io/library/redis@{C}", False),
])
def test_image_mismatch_rules(name, image, image_id, flagged):
    found = image_mismatches(pod(image, image_id), PINNED)
    assert bool(found) is flagged
    if flagged:
        assert found == [{"pod": "orders-1", "container": "app", "image": image, "running": C, "pinned": A}]


def test_init_containers_are_compared_too():
    found = image_mismatches(pod(f"registry.example.com/shop/orders@{A}", f"registry.example.com/shop/orders@{A}",
                                 init_id=f"docker.io/library/busybox@{C}"), PINNED)
    assert [(m["container"], m["running"], m["pinned"]) for m in found] == [("init", C, B)]


def test_a_mismatch_is_flagged_on_the_service_without_changing_its_health():
    deployed = {"orders": {"status": "deployed", "release": "orders", "version": "1.0.0"}}
    objects = [pod("registry.example.com/shop/orders:1.0.0", f"registry.example.com/shop/orders@{C}")]
    health = assess_namespace(objects, deployed, pinned={"orders": PINNED})["orders"]
    assert health.status.health is Health.HEALTHY
    assert health.summary()["image_mismatch"][0]["running"] == C
    assert "image_mismatch" not in assess_namespace(objects, deployed)["orders"].summary()  # no pins: not judged


def test_pinned_images_come_from_the_manifest_pinning_the_deployed_version():
    from datetime import datetime, timezone

    who = Provenance(None, "tests", None)
    chart = "sha256:" + "1" * 64
    v1 = Manifest.initial({"orders": ServicePin("1.0.0", chart, {"busybox:1.36": A})}, datetime.now(timezone.utc), who)
    v2 = propose(v1, "orders", "1.1.0", chart, datetime.now(timezone.utc), who, images={"busybox:1.36": B})
    deployed = {"orders": {"version": "1.0.0"}, "catalog": {"version": "2.0.0"}}
    assert pinned_images(deployed, [v1, v2]) == {"orders": {"busybox:1.36": A}}
    assert image_rows({"busybox:1.36": A}) == [{"reference": "busybox:1.36", "digest": A, "short": "a" * 12}]
    assert image_rows({}) is None


def test_the_persistent_view_says_which_stacks_run_pinned_digests():
    from datetime import datetime, timezone

    from stackyard.core.fleet import StackSpec, persistent_view

    specs = [StackSpec("production", "production", declared=True, pin_images=True), StackSpec("qa1", declared=True)]
    rows = {r["name"]: r for r in persistent_view(specs, None, {}, datetime.now(timezone.utc))}
    assert rows["production"]["pin_images"] is True and rows["qa1"]["pin_images"] is False
