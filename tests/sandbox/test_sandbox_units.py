"""Table tests of the sandbox's pure parts: selectors, patches, field ownership, protobuf."""

from __future__ import annotations

import base64

import pytest

from kube_sandbox import patch as P
from kube_sandbox import protobuf
from kube_sandbox.errors import ApiError
from kube_sandbox.selectors import fields_match, labels_match, parse_field_selector, parse_label_selector

LABELS = {"env": "prod", "tier": "web"}


@pytest.mark.parametrize("expr,matches", [
    ("", True), ("env=prod", True), ("env==prod", True), ("env!=prod", False), ("env!=qa", True),
    ("missing!=x", True), ("env in (qa, prod)", True), ("env in (qa)", False), ("env notin (qa)", True),
    ("env notin (prod,qa)", False), ("missing notin (x)", True), ("tier", True), ("missing", False),
    ("!missing", True), ("!env", False), ("env=prod,tier in (web),!missing", True), ("env=prod,tier=db", False),
])
def test_label_selector_operators(expr, matches):
    assert labels_match(parse_label_selector(expr), LABELS) is matches


@pytest.mark.parametrize("expr", ["env in prod", "=x", "a b"])
def test_label_selector_rejects_garbage(expr):
    with pytest.raises(ApiError) as exc:
        parse_label_selector(expr)
    assert exc.value.code == 400


def test_field_selectors():
    obj = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}}
    assert fields_match(parse_field_selector("metadata.name=p,status.phase!=Failed"), obj)
    assert not fields_match(parse_field_selector("metadata.namespace=other"), obj)
    with pytest.raises(ApiError):
        parse_field_selector("spec.bogus=1")


def test_merge_patch_null_deletes_and_lists_replace():
    assert P.merge_patch({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}, {"a": None, "b": {"c": None}, "l": [3]}) == \
        {"b": {"d": 3}, "l": [3]}


def test_strategic_merge_list_keys_and_directives():
    orig = {"containers": [{"name": "a", "image": "x", "env": [{"name": "E", "value": "1"}],
                            "ports": [{"containerPort": 80}]}],
            "volumes": [{"name": "v1"}, {"name": "v2"}], "finalizers": ["f1"], "tolerations": [{"key": "k"}]}
    patch = {"containers": [{"name": "a", "env": [{"name": "F", "value": "2"}], "ports": [{"containerPort": 81}]},
                            {"name": "b", "image": "y"}],
             "volumes": [{"name": "v1", "$patch": "delete"}], "finalizers": ["f2"], "tolerations": [{"key": "z"}],
             "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}]}
    out = P.strategic_merge(orig, patch)
    assert [c["name"] for c in out["containers"]] == ["a", "b"]
    assert out["containers"][0]["env"] == [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}]
    assert out["containers"][0]["ports"] == [{"containerPort": 80}, {"containerPort": 81}]
    assert out["volumes"] == [{"name": "v2"}]
    assert out["finalizers"] == ["f1", "f2"]
    assert out["tolerations"] == [{"key": "z"}]  # no merge key: replaced
    assert "$setElementOrder/containers" not in out
    assert P.strategic_merge({"a": {"b": 1, "c": 2}}, {"a": {"$patch": "replace", "d": 3}}) == {"a": {"d": 3}}


def test_json_patch_ops():
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = P.json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3}, {"op": "remove", "path": "/b/c"},
                             {"op": "copy", "from": "/a", "path": "/d"}, {"op": "test", "path": "/d/2", "value": 3},
                             {"op": "move", "from": "/d", "path": "/e"}, {"op": "replace", "path": "/a/0", "value": 0}])
    assert out == {"a": [0, 2, 3], "b": {}, "e": [1, 2, 3]}
    assert doc == {"a": [1, 2], "b": {"c": 1}}  # input untouched
    with pytest.raises(ApiError):
        P.json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])


def _cm(**data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}


def test_apply_removes_fields_the_manager_stopped_applying():
    live = P.server_side_apply(None, _cm(a="1", b="2"), "m", False, "v1", "t")
    out = P.server_side_apply(live, _cm(a="1"), "m", False, "v1", "t")
    assert out["data"] == {"a": "1"}


def test_apply_keeps_fields_other_managers_own_and_conflicts_on_theirs():
    live = P.server_side_apply(None, _cm(a="1"), "m", False, "v1", "t")
    other = P.server_side_apply(live, _cm(b="2"), "n", False, "v1", "t")
    assert other["data"] == {"a": "1", "b": "2"}
    with pytest.raises(ApiError) as exc:
        P.server_side_apply(other, _cm(b="3"), "m", False, "v1", "t")
    assert exc.value.code == 409 and 'conflict with "n"' in exc.value.message and ".data.b" in exc.value.message
    forced = P.server_side_apply(other, _cm(b="3"), "m", True, "v1", "t")
    assert forced["data"] == {"b": "3"}  # m no longer applies a, and nobody else owns it
    owners = {e["manager"]: e["fieldsV1"] for e in forced["metadata"]["managedFields"]}
    assert set(owners) == {"m"}  # n owned only data.b, which m took over


def test_update_steals_ownership_so_later_apply_conflicts():
    live = P.server_side_apply(None, _cm(a="1"), "helm", False, "v1", "t")
    edited = {**live, "data": {"a": "edited"}}
    P.record_update(live, edited, "kubectl-edit", "v1", "t")
    with pytest.raises(ApiError):
        P.server_side_apply(edited, _cm(a="1"), "helm", False, "v1", "t")


def test_fields_v1_round_trip():
    obj = {"spec": {"containers": [{"name": "a", "image": "x"}], "replicas": 1}, "metadata": {"labels": {"k": "v"}}}
    paths = P.field_paths(obj)
    assert P.from_fields_v1(P.to_fields_v1(paths)) == paths
    assert ("f:spec", "f:containers", 'k:{"name":"a"}', "f:image") in paths


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def test_protobuf_secret_decoding():
    meta = _field(1, b"rel.v1") + _field(3, b"apps") + _field(11, _field(1, b"owner") + _field(2, b"helm"))
    secret = _field(1, meta) + _field(2, _field(1, b"release") + _field(2, b"\x00\xffdata")) + _field(3, b"helm.sh/release.v1")
    body = protobuf.MAGIC + _field(1, _field(1, b"v1") + _field(2, b"Secret")) + _field(2, secret)
    obj = protobuf.decode(body)
    assert obj["metadata"] == {"name": "rel.v1", "namespace": "apps", "labels": {"owner": "helm"}}
    assert base64.b64decode(obj["data"]["release"]) == b"\x00\xffdata"
    assert obj["type"] == "helm.sh/release.v1"


def test_protobuf_unknown_kind_is_415():
    body = protobuf.MAGIC + _field(1, _field(1, b"apps/v1") + _field(2, b"Deployment")) + _field(2, b"")
    with pytest.raises(ApiError) as exc:
        protobuf.decode(body)
    assert exc.value.code == 415
