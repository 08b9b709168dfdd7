"""Images through the gate on the kube sandbox: a promoted L3 pins every image by digest, and a
tag pushed again after publish refuses the deploy before anything changes (issue 15)."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from dev.image_mirror import push_images
from dev.oci_images import push_image
from stackyard.core.images import parse_image, parse_mirrors
from stackyard.steps.publishing import publish_chart

from tests.conftest import CHARTS
from tests.e2e.conftest import run_dag

pytestmark = [pytest.mark.slow]


def test_a_promoted_l3_pins_each_services_images_by_digest(local_stack, dagbag):
    seeded = local_stack.seed()
    assert all(pin.images for pin in seeded.services.values())
    local_stack.publish("orders", "1.1.0")

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "orders", "chart_version": "1.1.0"})

    assert state == "success", tasks
    images = local_stack.store.latest().services["orders"].images
    assert images and all(digest.startswith("sha256:") for digest in images.values())
    assert any("busybox" in ref for ref in images)  # the helm test's image is pinned too


def test_a_tag_pushed_again_after_publish_refuses_the_deploy(local_stack, dagbag, tmp_path):
    local_stack.seed()
    # orders 1.2.0 built as its own image (a name no other test uses: the mirror is the session's)
    reference = "docker.io/stackyard-tests/orders-moving:1.2.0"
    mirrors = os.environ["STACKYARD_IMAGE_MIRRORS"]
    push_images(mirrors, [reference])
    chart = tmp_path / "orders"
    shutil.copytree(CHARTS / "orders", chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "1.2.0"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["image"] = {**values["image"], "repository": reference.rsplit(":", 1)[0], "tag": "1.2.0"}
    (chart / "values.yaml").write_text(yaml.safe_dump(values))
    publish_chart(chart, registry=local_stack.registry, helm=local_stack.helm, images=local_stack.images)
    # then someone pushes other content under the same tag
    target = parse_mirrors(mirrors)["docker.io"].locate(parse_image(reference))
    push_image(target.domain, target.path, "1.2.0", content=b"pushed again over the published tag")

    state, tasks = run_dag(dagbag, "l3_gate", {"service": "orders", "chart_version": "1.2.0"})

    assert state == "failed" and tasks["deploy"] == "failed", tasks
    assert tasks["promote"] in ("upstream_failed", "skipped")
    assert local_stack.store.latest().services["orders"].chart_version == "1.0.0"
    # nothing of the candidate was installed: the check ran before helm (the gate's stacks are l3-*)
    namespaces = [ns.metadata.name for ns in local_stack.core_v1().list_namespace().items]
    for ns in (n for n in namespaces if n.startswith("l3-")):
        assert not local_stack.helm.list(namespace=ns), ns
