"""``stackyard manifest history``: versions and rejected candidates, newest first, from the typed records."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone

from stackyard.cli.manifest import history_command
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.core.records import RejectionReport
from stackyard.adapters.manifest_store import open_manifest_store
from stackyard.settings import Settings

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def test_history_shows_rejections_between_versions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STACKYARD_MANIFEST_STORE", f"file://{tmp_path / 'manifests'}")
    clock = iter([T0 + timedelta(minutes=5)])
    store = open_manifest_store(f"file://{tmp_path / 'manifests'}", clock=lambda: next(clock))
    seed = store.seed(Manifest.initial({"orders": ServicePin("1.0.0")}, T0, Provenance(None, "ops", None)))
    bad = propose(seed, "orders", "1.1.0", None, T0 + timedelta(minutes=1), Provenance("r1", "carol", None))
    store.record_rejection(bad, "system tests failed: l3-orders-test", RejectionReport(failed_tests=["l3-orders-test"]))
    store.promote(propose(seed, "orders", "1.2.0", None, T0 + timedelta(minutes=9), Provenance("r2", "bob", None)))

    assert history_command(argparse.Namespace(limit=None, json=False, rejections=False), Settings.from_env()) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["v2", "rejected", "v1"]
    assert lines[1].endswith("by carol: system tests failed: l3-orders-test") and "orders 1.0.0 -> 1.1.0" in lines[1]

    assert history_command(argparse.Namespace(limit=None, json=True, rejections=False), Settings.from_env()) == 0
    assert [m["version"] for m in json.loads(capsys.readouterr().out)] == [2, 1]  # --json: the versions, as before
