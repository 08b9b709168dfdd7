"""Running the pinned digests: every container image of every rendered pod spec is rewritten to
``repository@digest`` from its chart's lock, everything else kept byte for byte, and an image that
cannot be pinned is reported naming chart, object, container and image."""

from __future__ import annotations

import pytest
import yaml

from stackyard.core.images import (
    POSTRENDER_FILENAME, ChartDigests, at_digest, chart_chain, images_in, pin_rendered,
)

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64

POD = {"containers": [{"name": "app", "image": "registry.example.com/shop/orders:1.0.0"}],
       "initContainers": [{"name": "migrate", "image": "busybox:1.36"}],
       "ephemeralContainers": [{"name": "debug", "image": "docker.io/library/alpine:3.20"}]}
LOCK = {"registry.example.com/shop/orders:1.0.0": A, "busybox:1.36": B, "docker.io/library/alpine:3.20": C}
PINNED = {"registry.example.com/shop/orders@" + A, "busybox@" + B, "docker.io/library/alpine@" + C}


def _template(spec):
    return {"metadata": {"labels": {"app": "orders"}}, "spec": spec}


#: Every kind that carries a pod spec, where it carries it.
WORKLOADS = {
    "Pod": lambda spec: {"apiVersion": "v1", "kind": "Pod", "spec": spec},
    "Deployment": lambda spec: {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": _template(spec)}},
    "StatefulSet": lambda spec: {"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"template": _template(spec)}},
    "DaemonSet": lambda spec: {"apiVersion": "apps/v1", "kind": "DaemonSet", "spec": {"template": _template(spec)}},
    "ReplicaSet": lambda spec: {"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"template": _template(spec)}},
    "Job": lambda spec: {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": _template(spec)}},
    "CronJob": lambda spec: {"apiVersion": "batch/v1", "kind": "CronJob",
                             "spec": {"jobTemplate": {"spec": {"template": _template(spec)}}}},
    "Rollout": lambda spec: {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "spec": {"template": _template(spec)}},
}


def _doc(kind, name="orders", source="orders/templates/x.yaml", annotations=None):
    body = WORKLOADS[kind](yaml.safe_load(yaml.safe_dump(POD)))
    body["metadata"] = {"name": name, **({"annotations": annotations} if annotations else {})}
    return f"---\n# Source: {source}\n" + yaml.safe_dump(body, sort_keys=False)


@pytest.mark.parametrize("kind", sorted(WORKLOADS))
def test_every_container_init_and_ephemeral_container_of_every_workload_kind_runs_its_digest(kind):
    result = pin_rendered(_doc(kind), ChartDigests("orders", {"orders": LOCK}))
    assert not result.unpinnable
    assert {i.reference for i in images_in(yaml.safe_load_all(result.text))} == PINNED
    assert {(d.container, new) for d, new in result.pinned} == {
        ("app", "registry.example.com/shop/orders@" + A), ("migrate", "busybox@" + B),
        ("debug", "docker.io/library/alpine@" + C)}


def test_helm_hooks_and_tests_are_pinned_like_any_object():
    hook = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orders-test", "annotations": {
        "helm.sh/hook": "test", POSTRENDER_FILENAME: "orders/templates/tests/test.yaml"}},
        "spec": {"containers": [{"name": "t", "image": "busybox:1.36"}]}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "annotations": {
        "helm.sh/hook": "pre-upgrade"}}, "spec": {"template": {"spec": {"containers": [
            {"name": "m", "image": "registry.example.com/shop/orders:1.0.0"}]}}}}
    result = pin_rendered(yaml.safe_dump_all([hook, job]), ChartDigests("orders", {"orders": LOCK}))
    assert not result.unpinnable
    assert [i.reference for i in images_in(yaml.safe_load_all(result.text))] == [
        "busybox@" + B, "registry.example.com/shop/orders@" + A]


def test_everything_but_the_image_scalars_is_kept_byte_for_byte():
    text = ("# Source: orders/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n"
            "metadata:\n  name: orders\n  annotations:\n    note: 'on'   # a comment\n"
            "spec:\n  template:\n    spec:\n      containers:\n      - name: app\n"
            "        image:   registry.example.com/shop/orders:1.0.0\n        args: [0755, yes]\n"
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {image: busybox:1.36}\n")
    result = pin_rendered(text, ChartDigests("orders", {"orders": LOCK}))
    expected = text.replace("registry.example.com/shop/orders:1.0.0", f'"registry.example.com/shop/orders@{A}"')
    assert result.text == expected  # the ConfigMap's "image" key is data, not a container


def test_a_list_kind_and_an_image_already_given_by_digest():
    listed = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
         "spec": {"containers": [{"name": "a", "image": "busybox:1.36"}, {"name": "b", "image": "nginx@" + C}]}}]}
    result = pin_rendered(yaml.safe_dump(listed), ChartDigests("orders", {"orders": LOCK}))
    assert not result.unpinnable
    assert [i.reference for i in images_in(yaml.safe_load_all(result.text))] == ["busybox@" + B, "nginx@" + C]
    assert sorted(new for _, new in result.pinned) == sorted(["busybox@" + B, "nginx@" + C])


def test_an_image_not_in_the_lock_is_reported_naming_chart_object_container_and_image():
    result = pin_rendered(_doc("Deployment"), ChartDigests("orders", {"orders": {"busybox:1.36": B}}))
    assert [str(u) for u in result.unpinnable] == [
        "chart orders: Deployment/orders container app: image registry.example.com/shop/orders:1.0.0: "
        "not in its image lock (images.lock.json)",
        "chart orders: Deployment/orders container debug: image docker.io/library/alpine:3.20: "
        "not in its image lock (images.lock.json)"]
    assert "cannot be run at a pinned digest, nothing was deployed" in result.report("release orders in production")


def test_a_chart_published_before_image_locks_is_named_as_such():
    result = pin_rendered(_doc("Job"), ChartDigests("orders", {"orders": None}))
    assert len(result.unpinnable) == 3
    assert all("chart orders: has no image lock" in u.reason for u in result.unpinnable)


def test_a_reference_that_is_no_image_is_reported():
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "Not An Image"}]}}
    result = pin_rendered(yaml.safe_dump(doc), ChartDigests("orders", {"orders": LOCK}))
    assert "not an image reference" in str(result.unpinnable[0]) or "not a valid" in str(result.unpinnable[0])


def test_a_subchart_image_comes_from_the_innermost_chart_that_locked_it():
    # orders vendors redis; the umbrella l3 vendors orders and billing, which locked another digest
    digests = ChartDigests("l3", {"l3": None, "orders": {"redis:7": A}, "billing": {"redis:7": B}})
    doc = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "redis", "annotations": {
        POSTRENDER_FILENAME: "l3/charts/orders/charts/redis/templates/sts.yaml"}},
        "spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "redis:7"}]}}}}
    result = pin_rendered(yaml.safe_dump(doc), digests)
    assert [new for _, new in result.pinned] == ["redis@" + A]
    unknown = pin_rendered(yaml.safe_dump({**doc, "metadata": {"name": "redis"}}), digests)
    assert "locked it at 2 different digests" in str(unknown.unpinnable[0])


def test_chart_chain_and_at_digest():
    assert chart_chain("l3/charts/orders/charts/redis/templates/x.yaml") == ["redis", "orders", "l3"]
    assert chart_chain("orders/templates/x.yaml") == ["orders"]
    assert chart_chain(None) == []
    assert at_digest("localhost:5000/a/b:1.0", A) == "localhost:5000/a/b@" + A
    assert at_digest("localhost:5000/a/b", A) == "localhost:5000/a/b@" + A
    assert at_digest("nginx:1.25@" + B, A) == "nginx@" + A


def test_digests_round_trip_as_json():
    digests = ChartDigests("l3", {"l3": None, "orders": {"redis:7": A}})
    assert ChartDigests.from_json(digests.to_json()) == digests


def test_an_anchored_image_used_by_two_containers_is_spliced_once():
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
            "  - {name: a, image: &img busybox:1.36}\n  - {name: b, image: *img}\n  - {name: c, image: !!str busybox:1.36}\n")
    result = pin_rendered(text, ChartDigests("orders", {"orders": LOCK}))
    assert [i.reference for i in images_in(yaml.safe_load_all(result.text))] == ["busybox@" + B] * 3
    assert "&img " in result.text and "!!str " in result.text
