"""The Stacks view's image check on the kube sandbox: a service's pods run the digests L3 pinned
until the tag is pushed again and a pod restarts; then the stack page flags the mismatch."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from datetime import datetime, timezone

import pytest
import yaml

from dev.image_mirror import push_images
from dev.oci_images import push_image
from stackyard.core.images import parse_image, parse_mirrors
from stackyard.core.manifest import Provenance, propose
from stackyard.steps.fleet import Fleet, kube_cluster_reader, kube_namespace_reader
from stackyard.steps.publishing import pin_of, publish_chart

from tests.conftest import CHARTS
from tests.steps.test_fleet_cluster import make_namespace

pytestmark = pytest.mark.slow
REPOSITORY = "docker.io/hashicorp/http-echo"


def _page(stack, namespace, until):
    from contextlib import contextmanager

    @contextmanager
    def helm():
        yield stack.helm

    fleet = Fleet(manifest_store=stack.store, record_store=None, cluster=kube_cluster_reader(stack.core_v1, helm),
                  stacks_file=None)
    fleet.namespace_reader = kube_namespace_reader(stack.core_v1)
    deadline = time.monotonic() + 20
    while True:
        page = fleet.stack(namespace)
        orders = next((s for s in page["services"] if s["name"] == "orders"), None)
        if orders and until(orders):
            return orders, fleet
        assert time.monotonic() < deadline, orders
        time.sleep(0.2)


def test_a_tag_pushed_again_is_flagged_once_a_pod_runs_the_new_content(local_stack):
    local_stack.seed()
    namespace = f"img-{uuid.uuid4().hex[:6]}"
    make_namespace(local_stack, namespace)
    # orders at its own tag (this test's alone: other tests share the mirror), pushed as CI would
    tag = f"e2e-{uuid.uuid4().hex[:8]}"
    reference = f"{REPOSITORY}:{tag}"
    mirrors = os.environ["STACKYARD_IMAGE_MIRRORS"]
    push_images(mirrors, [reference])
    chart = local_stack.tmp / "orders-own-tag"
    shutil.copytree(CHARTS / "orders", chart)
    values = yaml.safe_load((chart / "values.yaml").read_text())
    values["image"]["tag"] = tag
    (chart / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = "1.0.1"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    ref = publish_chart(chart, registry=local_stack.registry, helm=local_stack.helm, images=local_stack.images)
    pin = pin_of(local_stack.registry, ref)
    local_stack.store.promote(propose(local_stack.store.latest(), "orders", "1.0.1", ref.digest,
                                      datetime.now(timezone.utc), Provenance(None, "tests", None), images=pin.images))
    pinned = pin.images[reference]
    local_stack.helm.upgrade_install("orders", local_stack.registry.fetch("orders", "1.0.1"), namespace=namespace,
                                     timeout="2m0s")

    # The pods run the tag; the sandbox pulled it through the mirror: the pinned digest runs.
    orders, _ = _page(local_stack, namespace, lambda s: s["health"] == "healthy")
    assert {"reference": reference, "digest": pinned, "short": pinned.split(":")[1][:12]} in orders["images"]
    assert "image_mismatch" not in orders

    # The tag is pushed again with other content; a restarted pod pulls it.
    target = parse_mirrors(mirrors)[parse_image(reference).domain].locate(parse_image(reference))
    moved = push_image(target.domain, target.path, tag, content=b"other content under the same tag")
    assert moved != pinned
    core = local_stack.core_v1()
    for pod in core.list_namespaced_pod(namespace).items:
        if pod.metadata.name.startswith("orders"):
            core.delete_namespaced_pod(pod.metadata.name, namespace)
    orders, fleet = _page(local_stack, namespace, lambda s: s.get("image_mismatch") and s["health"] == "healthy")
    flagged = orders["image_mismatch"]
    assert {(m["container"], m["image"], m["running"], m["pinned"]) for m in flagged} == {
        ("orders", reference, moved, pinned)}
    assert orders["health_detail"]["image_mismatch"] == flagged
    # flagged, yet healthy (the wait above): it runs; what runs is not what L3 tested
    matrix = fleet.matrix()  # the overview's cell says so too
    column = next(i for i, c in enumerate(matrix["columns"]) if c["name"] == namespace)
    cell = next(r for r in matrix["rows"] if r["service"] == "orders")["cells"][column]
    assert cell["image_mismatch"] == 1
