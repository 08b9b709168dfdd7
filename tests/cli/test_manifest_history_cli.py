"""``stackyard manifest history``: promotions and rejections, newest first, each test named once."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from stackyard.adapters.manifest_store import open_manifest_store
from stackyard.cli import main
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.core.records import RejectionReport

START = datetime(2026, 3, 4, 10, 0, tzinfo=timezone.utc)


def seeded_store(tmp_path, monkeypatch):
    url = f"file://{tmp_path / 'manifests'}"
    monkeypatch.setenv("STACKYARD_MANIFEST_STORE", url)
    monkeypatch.setenv("STACKYARD_HOME", str(tmp_path / "home"))
    store = open_manifest_store(url)
    v1 = store.seed(Manifest.initial({"orders": ServicePin("1.0.0"), "catalog": ServicePin("1.0.0")}, START,
                                     Provenance(None, "alice", None)))
    v2 = store.promote(propose(v1, "orders", "1.1.0", None, START + timedelta(minutes=1), Provenance("g2", "bob", None)))
    rejected = propose(v2, "catalog", "1.1.0", None, START + timedelta(minutes=2), Provenance("g3", "carol", None))
    store.record_rejection(rejected, "system tests failed: l3-catalog-test", RejectionReport(failed_tests=["l3-catalog-test"]))
    return store


def test_manifest_history_shows_rejections_with_each_failed_test_once(tmp_path, monkeypatch, capsys):
    seeded_store(tmp_path, monkeypatch)
    assert main(["manifest", "history"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("rejected") and "catalog 1.0.0 -> 1.1.0" in lines[0] and "by carol" in lines[0]
    assert lines[0].count("l3-catalog-test") == 1
    assert lines[1].startswith("v2") and "orders 1.0.0 -> 1.1.0" in lines[1]
    assert lines[2].startswith("v1") and "seed" in lines[2]


def test_manifest_history_json_keeps_its_manifest_list_and_adds_rejections_on_request(tmp_path, monkeypatch, capsys):
    seeded_store(tmp_path, monkeypatch)
    assert main(["manifest", "history", "--json"]) == 0
    assert [m["version"] for m in json.loads(capsys.readouterr().out)] == [2, 1]
    assert main(["manifest", "history", "--json", "--rejections"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in entries] == ["rejected", "promoted", "seeded"]
