"""CRD schemas enforced like a cluster (types, required, enum, bounds, patterns, lengths, defaults,
nullable, int-or-string, preserved unknown fields) and printer columns in kubectl's tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kube_sandbox import schema as S

CHARTS = Path(__file__).parent / "charts"
SCHEMA = {"type": "object", "required": ["spec"], "properties": {"spec": {"type": "object", "required": ["size"],
          "properties": {"size": {"type": "integer", "minimum": 1}, "ratio": {"type": "number", "minimum": 0,
                                                                              "exclusiveMinimum": True},
                         "mode": {"type": "string", "default": "auto", "enum": ["auto", "manual"]},
                         "note": {"type": "string", "nullable": True}, "gone": {"type": "string"},
                         "port": {"x-kubernetes-int-or-string": True},
                         "tags": {"type": "array", "minItems": 1, "items": {"type": "string", "maxLength": 3}},
                         "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}


@pytest.mark.parametrize("spec,errors", [
    ({"size": 1}, []),
    ({"size": "1"}, ['spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"']),
    ({}, ["spec.size: Required value"]),
    ({"size": 0}, ["spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"]),
    ({"size": 1, "ratio": 0}, ["spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0"]),
    ({"size": 1, "mode": "x"}, ['spec.mode: Unsupported value: "x": supported values: "auto", "manual"']),
    ({"size": 1, "port": 80}, []), ({"size": 1, "port": "http"}, []),
    ({"size": 1, "port": True}, ['spec.port: Invalid value: "boolean": spec.port in body must be of type '
                                 'integer-or-string: "boolean"']),
    ({"size": 1, "tags": []}, ["spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items"]),
    ({"size": 1, "tags": ["long"]}, ["spec.tags[0]: Too long: may not be more than 3 bytes"]),
])
def test_validation_messages(spec, errors):
    obj = S.prepare(SCHEMA, {"apiVersion": "x/v1", "kind": "X", "metadata": {}, "spec": spec}, top=True)
    assert [f"{f}: {m}" for f, m in S.validate(SCHEMA, obj, top=True)] == errors


def test_nulls_pruned_unless_nullable_and_defaults_applied():
    obj = S.prepare(SCHEMA, {"metadata": {}, "spec": {"size": 1, "note": None, "gone": None, "mode": None}}, top=True)
    assert obj["spec"] == {"size": 1, "note": None, "mode": "auto"}


def test_unknown_fields_found_or_pruned_except_where_preserved():
    obj = {"metadata": {}, "spec": {"size": 1, "bogus": 1, "free": {"anything": {"goes": 1}}}, "top": 1}
    assert S.unknown(SCHEMA, obj, top=True) == ["spec.bogus", "top"]
    S.unknown(SCHEMA, obj, top=True, prune=True)
    assert obj == {"metadata": {}, "spec": {"size": 1, "free": {"anything": {"goes": 1}}}}


def test_json_path_of_printer_columns():
    obj = {"status": {"conditions": [{"type": "A", "status": "x"}, {"type": "Ready", "status": "True"}]},
           "spec": {"l": [1, 2]}}
    assert S.json_path(obj, '.status.conditions[?(@.type=="Ready")].status') == "True"
    assert S.json_path(obj, ".spec.l[1]") == 2 and S.json_path(obj, ".spec.l[*]") == [1, 2]
    assert S.json_path(obj, ".spec.missing") is None


def test_chart_with_crd_schema_and_printer_columns(cli):
    chart = str(CHARTS / "widgets")
    cli.helm("install", "wd", chart, "--wait")
    out = cli.kubectl("get", "widgets").stdout.splitlines()
    assert out[0].split() == ["NAME", "SIZE", "COLOUR", "READY", "AGE"] and out[1].split()[:3] == ["wd", "3", "blue"]
    proc = cli.helm("upgrade", "wd", chart, "--set", "widget.size=0", "--set", "widget.colour=pink", check=False)
    assert proc.returncode != 0
    assert 'Widget.example.com "wd" is invalid' in proc.stderr
    assert "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1" in proc.stderr
    assert 'spec.colour: Unsupported value: "pink"' in proc.stderr
    proc = cli.helm("upgrade", "wd", chart, "--set", "widget.size=big", check=False)
    assert "spec.size in body must be of type integer" in proc.stderr
    proc = cli.helm("upgrade", "wd", chart, "--set", "widget.bogus=1", check=False)
    assert 'unknown field "spec.bogus"' in proc.stderr
    manifest = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "nocolour"},
                "spec": {"size": 2, "owner": "me"}}
    path = Path(cli.env["HOME"]) / "w.json"
    path.write_text(json.dumps(manifest))
    cli.kubectl("apply", "-f", str(path))
    assert json.loads(cli.kubectl("get", "wd", "nocolour", "-o", "json").stdout)["spec"]["colour"] == "red"
    assert "unchanged" in cli.kubectl("apply", "-f", str(path)).stdout
    manifest["spec"].pop("owner")
    path.write_text(json.dumps(manifest))
    proc = cli.kubectl("apply", "-f", str(path), check=False)
    assert proc.returncode != 0 and "spec.owner: Required value" in proc.stderr
    cli.helm("uninstall", "wd", "--wait")
