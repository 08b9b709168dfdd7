"""The L3 manifest record: construction invariants, JSON round-trip, identity, candidates."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stackyard.core.manifest import (
    Change,
    DiffKind,
    Manifest,
    Provenance,
    ServicePin,
    check_candidate,
    diff,
    propose,
)
from stackyard.exceptions import InputError

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
CI = Provenance(dag_run_id="manual__1", requested_by="ci", ci_url="https://ci.example/1")
SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64


def base() -> Manifest:
    return Manifest.initial({"web": ServicePin("2.0.0"), "api": ServicePin("1.0.0", SHA_A)}, T0, CI)


def successor(of: Manifest, services: dict[str, ServicePin], change: Change, **overrides) -> Manifest:
    fields = dict(
        version=of.version + 1, services=services, parent=of.version, change=change, created=T0, provenance=CI
    )
    return Manifest(**{**fields, **overrides})


# --- construction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pin", "field"),
    [
        (lambda: ServicePin("1.0.0.0"), "chart_version"),
        (lambda: ServicePin("V1.0.0"), "chart_version"),
        (lambda: ServicePin("1.0.0", "abc"), "digest"),
        (lambda: ServicePin("1.0.0", "sha256:" + "A" * 64), "digest"),
        (lambda: ServicePin("1.0.0", "sha256:" + "a" * 63), "digest"),
    ],
    ids=["four parts", "capital V", "digest without algorithm", "uppercase digest", "short digest"],
)
def test_a_pin_refuses_invalid_fields_naming_them(pin, field):
    with pytest.raises(InputError, match=field):
        pin()


def test_services_are_sorted_by_name_and_read_only():
    manifest = base()
    assert list(manifest.services) == ["api", "web"]
    with pytest.raises(TypeError):
        manifest.services["cache"] = ServicePin("1.0.0")  # type: ignore[index]


def test_the_callers_mapping_is_copied_not_kept():
    services = {"api": ServicePin("1.0.0")}
    manifest = Manifest.initial(services, T0, CI)
    services["web"] = ServicePin("2.0.0")
    assert list(manifest.services) == ["api"]


def test_manifests_are_hashable_and_compare_by_value():
    assert base() == base()
    assert hash(base()) == hash(base())


def test_created_must_be_timezone_aware_and_is_normalised_to_utc():
    with pytest.raises(InputError, match="created"):
        Manifest.initial({}, datetime(2026, 5, 1, 12, 0), CI)
    later_zone = timezone(timedelta(hours=2))
    manifest = Manifest.initial({}, datetime(2026, 5, 1, 14, 0, tzinfo=later_zone), CI)
    assert manifest.created == T0 and manifest.created.tzinfo == timezone.utc


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(version=1, parent=1), "version 1 is the seed"),
        (dict(version=1, change=Change("api", "1.0.0", "1.1.0")), "version 1 is the seed"),
        (dict(version=3, parent=1), "must have parent 2"),
        (dict(version=2, parent=1, change=None), "must record the change"),
        (dict(version=2, parent=1, change=Change("api", "1.0.0", "9.9.9")), "pins 1.0.0 for api"),
        (dict(version=2, parent=1, change=Change("cache", None, "1.0.0")), "pins nothing for cache"),
        (dict(version=0), "version"),
        (dict(version=True), "version"),
    ],
    ids=[
        "seed has no parent",
        "seed has no change",
        "parent is version minus one",
        "later versions record their change",
        "change names a version the manifest pins",
        "change names a service the manifest pins",
        "version is at least 1",
        "bool is not a version",
    ],
)
def test_lineage_invariants(fields, message):
    defaults = dict(
        version=2, services={"api": ServicePin("1.0.0")}, parent=None, change=None, created=T0, provenance=CI
    )
    with pytest.raises(InputError, match=message):
        Manifest(**{**defaults, **fields})


@pytest.mark.parametrize("name", ["API", "-api", "api-", "a_b", "a.b", "", "a" * 64])
def test_service_names_must_be_dns_1123_labels(name):
    with pytest.raises(InputError, match="DNS-1123"):
        Manifest.initial({name: ServicePin("1.0.0")}, T0, CI)


# --- JSON round trip -----------------------------------------------------------------------------


def test_to_dict_round_trips_through_json():
    manifest = propose(base(), "cache", "0.1.0-rc.1+sha.5", SHA_B, T0 + timedelta(seconds=1.5), CI)
    data = json.loads(json.dumps(manifest.to_dict()))
    assert data["schema"] == 1
    assert data["created"] == "2026-05-01T12:00:01.500000Z"
    assert Manifest.from_dict(data) == manifest


def _broken(path: str, value: object) -> dict:
    data = propose(base(), "api", "1.1.0", None, T0, CI).to_dict()
    *parents, last = path.split(".")
    target = data
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("schema", 2, "schema: expected 1"),
        ("schema", True, "schema: expected 1"),
        ("version", "2", "version: expected an integer"),
        ("parent", 1.0, "parent: expected an integer"),
        ("created", KeyError, "missing field.*created"),
        ("created", "yesterday", "created: 'yesterday' is not an ISO 8601"),
        ("created", "2026-05-01T12:00:00", "created: expected a timezone-aware"),
        ("services", [], "services: expected an object"),
        ("services.api.chart_version", "latest", "services.api.chart_version"),
        ("services.api.digest", "md5:x", "services.api.digest"),
        ("services.api.extra", 1, "services.api: unknown field"),
        ("services.api.digest", KeyError, "services.api: missing field.*digest"),
        ("change.to_version", 3, "change.to_version"),
        ("change", "api", "change: expected an object"),
        ("provenance.requested_by", 7, "provenance.requested_by"),
        ("provenance.token", "x", "provenance: unknown field"),
        ("surprise", 1, "manifest: unknown field.*surprise"),
        ("digest", SHA_B, "digest: stored .* does not match"),
        ("candidate_id", "0" * 16, "candidate_id: stored .* does not match"),
    ],
)
def test_from_dict_is_strict_and_names_the_field(path, value, message):
    with pytest.raises(InputError, match=message):
        Manifest.from_dict(_broken(path, value))


def test_from_dict_refuses_a_non_object():
    with pytest.raises(InputError, match="manifest: expected an object"):
        Manifest.from_dict([])


# --- identity ------------------------------------------------------------------------------------


def test_identical_pins_give_an_identical_digest_whatever_the_version_time_or_requester():
    seed = base()
    there = propose(seed, "api", "1.1.0", SHA_B, T0, CI)
    back = propose(there, "api", "1.0.0", SHA_A, T0 + timedelta(days=3), Provenance(requested_by="other"))
    assert back.version == 3 and back.digest == seed.digest
    assert there.digest != seed.digest


def test_the_chart_digest_is_part_of_the_manifest_digest():
    with_digest = Manifest.initial({"api": ServicePin("1.0.0", SHA_A)}, T0, CI)
    without = Manifest.initial({"api": ServicePin("1.0.0")}, T0, CI)
    assert with_digest.digest != without.digest


def test_the_same_proposal_made_twice_has_the_same_candidate_id():
    first = propose(base(), "api", "1.1.0", None, T0, CI)
    again = propose(base(), "api", "1.1.0", None, T0 + timedelta(hours=1), Provenance(dag_run_id="retry"))
    assert first.candidate_id == again.candidate_id
    assert len(first.candidate_id) == 16 and f"l3-{first.candidate_id[:8]}".isascii()


def test_the_candidate_id_depends_on_the_parent_version():
    seed = base()
    v2 = propose(seed, "api", "1.1.0", None, T0, CI)
    v3 = propose(v2, "api", "1.0.0", SHA_A, T0, CI)  # back to the seed's pins, one version later
    assert v3.digest == seed.digest
    assert v3.candidate_id != seed.candidate_id


# --- propose -------------------------------------------------------------------------------------


def test_propose_bumps_one_service_and_records_the_change():
    seed = base()
    candidate = propose(seed, "api", "1.1.0", SHA_B, T0, CI)
    assert (candidate.version, candidate.parent) == (2, 1)
    assert candidate.change == Change("api", "1.0.0", "1.1.0")
    assert candidate.services == {"api": ServicePin("1.1.0", SHA_B), "web": ServicePin("2.0.0")}
    assert seed.services["api"] == ServicePin("1.0.0", SHA_A)


def test_propose_adds_a_new_service_with_no_from_version():
    candidate = propose(base(), "cache", "0.1.0", None, T0, CI)
    assert candidate.change == Change("cache", None, "0.1.0")
    assert list(candidate.services) == ["api", "cache", "web"]


def test_propose_allows_a_downgrade_so_a_bad_chart_can_be_rolled_back():
    assert propose(base(), "api", "0.9.0", None, T0, CI).change == Change("api", "1.0.0", "0.9.0")


@pytest.mark.parametrize(
    ("service", "version", "message"),
    [
        ("api", "1.0.0", r"api: L3 v1 already pins 1\.0\.0; proposing 1\.0\.0"),
        ("api", "1.0.0+rebuild.2", r"api: L3 v1 already pins 1\.0\.0; proposing 1\.0\.0\+rebuild\.2"),
        ("api", "1.1.0.0", r"api: chart_version: '1\.1\.0\.0' is not a semantic version"),
        ("Api", "1.1.0", "DNS-1123"),
    ],
    ids=["same version", "same version but build metadata", "not semver", "not a DNS-1123 label"],
)
def test_propose_refuses(service, version, message):
    with pytest.raises(InputError, match=message):
        propose(base(), service, version, None, T0, CI)


# --- check_candidate -----------------------------------------------------------------------------


def test_a_proposed_candidate_passes():
    check_candidate(base(), propose(base(), "api", "1.1.0", None, T0, CI))


@pytest.mark.parametrize(
    ("services", "change", "overrides", "messages"),
    [
        (
            {"api": ServicePin("1.1.0")},
            Change("api", "1.0.0", "1.1.0"),
            {},
            ["removes web", "involved: api, web"],
        ),
        (
            {"api": ServicePin("1.1.0"), "web": ServicePin("2.1.0")},
            Change("api", "1.0.0", "1.1.0"),
            {},
            ["changes 2 services: api 1.0.0 -> 1.1.0, web 2.0.0 -> 2.1.0", "involved: api, web"],
        ),
        (
            {"api": ServicePin("1.1.0"), "web": ServicePin("2.0.0"), "cache": ServicePin("1.0.0")},
            Change("cache", None, "1.0.0"),
            {},
            ["changes 2 services: api 1.0.0 -> 1.1.0, cache (absent) -> 1.0.0", "involved: api, cache]"],
        ),
        (
            {"api": ServicePin("1.0.0", SHA_A), "web": ServicePin("2.0.0")},
            Change("api", "1.0.0", "1.0.0"),
            {},
            ["changes no service", "involved: api"],
        ),
        (
            {"api": ServicePin("1.0.0", SHA_B), "web": ServicePin("2.0.0")},
            Change("api", "1.0.0", "1.0.0"),
            {},
            ["changes a pin without a new version: api", "involved: api"],
        ),
        (
            {"api": ServicePin("1.1.0"), "web": ServicePin("2.0.0")},
            Change("api", "0.9.0", "1.1.0"),
            {},
            ["change record says api 0.9.0 -> 1.1.0 but the pins say api 1.0.0 -> 1.1.0"],
        ),
        (
            {"api": ServicePin("1.1.0"), "web": ServicePin("2.0.0")},
            Change("api", "1.0.0", "1.1.0"),
            {"version": 4, "parent": 3},
            ["its parent is v3, not v1", "its version is 4, expected 2", "involved: api"],
        ),
    ],
    ids=[
        "removed service",
        "two bumps",
        "bump and add",
        "no change at all",
        "same version different chart digest",
        "change record disagrees with the diff",
        "not built on this parent",
    ],
)
def test_check_candidate_refuses_and_names_every_service_involved(services, change, overrides, messages):
    parent = base()
    candidate = successor(parent, services, change, **overrides)
    with pytest.raises(InputError) as refused:
        check_candidate(parent, candidate)
    for message in messages:
        assert message in str(refused.value)


service_names = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
versions = st.tuples(*(st.integers(0, 30),) * 3).map(lambda parts: "%d.%d.%d" % parts)
pin_maps = st.dictionaries(service_names, versions.map(ServicePin), min_size=2, max_size=8)


@given(pin_maps, service_names, versions)
def test_property_every_proposal_of_one_new_version_passes_the_check(pins, service, version):
    parent = Manifest.initial(pins, T0, CI)
    current = pins.get(service)
    if current is not None and current.chart_version == version:
        return  # propose refuses this; covered by test_propose_refuses
    check_candidate(parent, propose(parent, service, version, None, T0, CI))


@given(pin_maps, st.data())
def test_property_a_second_difference_is_always_refused_naming_both_services(pins, data):
    parent = Manifest.initial(pins, T0, CI)
    first, second = data.draw(st.lists(st.sampled_from(sorted(pins)), min_size=2, max_size=2, unique=True))
    remove_second = data.draw(st.booleans())
    candidate_pins = dict(pins)
    candidate_pins[first] = ServicePin(pins[first].chart_version + "-next")
    if remove_second:
        del candidate_pins[second]
    else:
        candidate_pins[second] = ServicePin(pins[second].chart_version + "-next")
    candidate = successor(parent, candidate_pins, Change(first, pins[first].chart_version, candidate_pins[first].chart_version))
    with pytest.raises(InputError) as refused:
        check_candidate(parent, candidate)
    assert first in str(refused.value) and second in str(refused.value)


# --- diff ----------------------------------------------------------------------------------------


def test_diff_reports_added_removed_and_changed_services_by_name():
    a = Manifest.initial({"api": ServicePin("1.0.0"), "web": ServicePin("2.0.0"), "db": ServicePin("3.0.0")}, T0, CI)
    b = Manifest.initial(
        {"api": ServicePin("0.9.0"), "web": ServicePin("2.1.0"), "cache": ServicePin("1.0.0"), "db": ServicePin("3.0.0")},
        T0,
        CI,
    )
    changes = diff(a, b)
    assert changes.services == ("api", "cache", "web")
    assert [entry.kind for entry in changes.entries] == [DiffKind.CHANGED, DiffKind.ADDED, DiffKind.CHANGED]
    assert [entry.direction for entry in changes.changed] == ["downgrade", "upgrade"]
    assert diff(b, a).removed[0].service == "cache"
    assert json.loads(json.dumps(changes.to_dict()))["entries"][1] == {
        "service": "cache",
        "kind": "added",
        "before": None,
        "after": {"chart_version": "1.0.0", "digest": None},
        "direction": None,
    }


def test_diff_of_identical_pins_is_empty_and_falsy():
    assert not diff(base(), base())
    assert diff(base(), base()).entries == ()


def test_a_v_prefixed_version_is_pinned_and_stored_as_declared():
    seed = Manifest.initial({"cert-manager": ServicePin("v1.18.2")}, T0, CI)
    bumped = propose(seed, "cert-manager", "v1.19.0", SHA_B, T0, CI)
    assert bumped.services["cert-manager"].chart_version == "v1.19.0" and str(bumped.change) == "cert-manager v1.18.2 -> v1.19.0"
    stored = bumped.to_dict()
    assert stored["services"]["cert-manager"]["chart_version"] == "v1.19.0"
    assert Manifest.from_dict(stored) == bumped
    with pytest.raises(InputError, match="changes nothing"):
        propose(bumped, "cert-manager", "1.19.0", SHA_A, T0, CI)  # same precedence as v1.19.0
