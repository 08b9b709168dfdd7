"""Image pins in the L3 manifest: carried by each service pin, stored only when present (so older
manifests keep their digests), validated, and named by a diff even without a chart version change."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from stackyard.core.manifest import Manifest, Provenance, ServicePin, diff, propose
from stackyard.exceptions import InputError

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
WHO = Provenance(dag_run_id=None, requested_by="tests", ci_url=None)
CHART = "sha256:" + "1" * 64
A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def test_a_pin_without_images_stores_exactly_what_it_stored_before():
    pin = ServicePin("1.0.0", CHART)
    assert pin.to_dict() == {"chart_version": "1.0.0", "digest": CHART}
    old = {"schema": 1, "version": 1, "parent": None, "created": "2026-12-01T00:00:00Z",
           "services": {"orders": {"chart_version": "1.0.0", "digest": CHART}}, "change": None,
           "provenance": {"dag_run_id": None, "requested_by": "tests", "ci_url": None}}
    manifest = Manifest.from_dict(old)
    assert manifest.to_dict()["services"] == old["services"]
    assert Manifest.from_dict(manifest.to_dict()).digest == manifest.digest


def test_image_pins_round_trip_and_are_validated_with_the_field_named():
    manifest = Manifest.initial({"orders": ServicePin("1.0.0", CHART, {"busybox:1.36": A})}, NOW, WHO)
    again = Manifest.from_dict(manifest.to_dict())
    assert again.services["orders"].images == {"busybox:1.36": A} and again.digest == manifest.digest
    stored = manifest.to_dict()
    stored["services"]["orders"]["images"] = {"busybox:1.36": "latest"}
    stored.pop("digest", None), stored.pop("candidate_id", None)
    with pytest.raises(InputError, match=r"services\.orders\.images: .*not a digest"):
        Manifest.from_dict(stored)


def test_propose_carries_the_candidates_image_pins():
    parent = Manifest.initial({"orders": ServicePin("1.0.0", CHART, {"o:1": A})}, NOW, WHO)
    candidate = propose(parent, "orders", "1.1.0", "sha256:" + "2" * 64, NOW, WHO, images={"o:1.1": B})
    assert candidate.services["orders"].images == {"o:1.1": B}


def test_a_diff_names_images_that_moved_even_when_the_chart_version_did_not_change():
    before = Manifest.initial({"orders": ServicePin("1.0.0", CHART, {"o:1": A, "busybox:1.36": A})}, NOW, WHO)
    after = Manifest.initial({"orders": ServicePin("1.0.0+rebuild", "sha256:" + "3" * 64,
                                                   {"o:1": B, "busybox:1.36": A})}, NOW, WHO)
    [entry] = diff(before, after).entries
    assert entry.direction == "rebuild" and entry.images == [f"~ o:1 {A} -> {B}"]
    assert str(entry) == f"orders 1.0.0 -> 1.0.0+rebuild\n    ~ o:1 {A} -> {B}"
    assert entry.to_dict()["images"] == [f"~ o:1 {A} -> {B}"]
