"""Images through the gate on the kube sandbox: a promoted L3 pins every image by digest, and a
tag pushed again after publish refuses the deploy before anything changes (issue 15)."""

from __future__ import annotations

import os

import pytest

from dev.oci_images import push_image
from stackyard.core.images import parse_image, parse_mirrors

from tests.e2e.conftest import run_dag

pytestmark = [pytest.mark.slow]


def test_a_promoted_l3_pins_each_services_images_by_digest(local_stack, dagbag):
    seeded = local_stack.seed()
    assert all(pin.images for pin in seeded.services.values())
    local_stack.publish("orders", "1.1.0")

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "orders", "chart_version": "1.1.0"})

    assert state == "success", tasks
    images = local_stack.store.latest().services["orders"].images
    assert any(ref.endswith("/orders:1.1.0") for ref in images) and "busybox:1.36" in images
    assert all(digest.startswith("sha256:") for digest in images.values())


def test_a_tag_pushed_again_after_publish_refuses_the_deploy(local_stack, dagbag):
    local_stack.seed()
    local_stack.publish("orders", "1.2.0")
    # someone pushes other content under the same tag after the chart was published
    reference = next(r for r in local_stack.store.latest().services["orders"].images if "/orders:" in r)
    reference = reference.rsplit(":", 1)[0] + ":1.2.0"
    mirror = parse_mirrors(os.environ["STACKYARD_IMAGE_MIRRORS"])
    target = mirror[parse_image(reference).domain].locate(parse_image(reference))
    push_image(target.domain, target.path, "1.2.0", content=b"pushed again over the published tag")

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "orders", "chart_version": "1.2.0"})

    assert state == "failed" and tasks["deploy"] == "failed", tasks
    assert tasks["promote"] in ("upstream_failed", "skipped")
    assert local_stack.store.latest().services["orders"].chart_version == "1.0.0"
    # nothing of the candidate was installed: the check ran before helm (the gate's stacks are l3-*)
    namespaces = [ns.metadata.name for ns in local_stack.core_v1().list_namespace().items]
    for ns in (n for n in namespaces if n.startswith("l3-")):
        assert not local_stack.helm.list(namespace=ns), ns
