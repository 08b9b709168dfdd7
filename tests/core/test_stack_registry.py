"""The stack registry schema: every rule, and errors that name the stack and the field."""

from __future__ import annotations

from datetime import date

import pytest
import yaml

from stackyard.core.stack_registry import (
    HealthySource, L3Source, ServiceEntry, StackKind, load_registry, parse_stack,
)
from stackyard.exceptions import InputError

from tests.conftest import ROOT

MINIMAL = {"owner": "team-qa", "type": "persistent", "profile": "qa1"}
PRODUCTION = {"owner": "team-release", "type": "production", "source": {"healthy_on": "stage", "for_hours": 24},
              "triggerers": {"roles": ["prod-deployers"]}}


def registry(**stacks) -> str:
    return yaml.safe_dump({"stacks": stacks})


def test_the_shipped_registry_is_valid_and_complete():
    loaded = load_registry((ROOT / "include" / "stacks.yaml").read_text())
    assert loaded.errors == {}
    assert list(loaded.stacks) == ["qa1", "qa2", "stage", "production"]
    production = loaded.stacks["production"]
    assert production.kind is StackKind.PRODUCTION and production.profile == "production"
    assert production.source == HealthySource("stage", 24.0)
    assert production.canary_services == {"orders"}
    assert production.pin_images and not any(s.pin_images for n, s in loaded.stacks.items() if n != "production")
    assert all(stack.connection == "stackyard_kube" for stack in loaded.stacks.values())


def test_defaults_of_a_minimal_entry():
    stack = parse_stack("qa9", MINIMAL)
    assert stack.connection == "stackyard_kube" and stack.namespace == "qa9"
    assert stack.schedule is None and stack.source == L3Source() and stack.services is None
    assert stack.windows is None and stack.canary.plan.steps == (5, 25, 50)
    assert stack.canary.traffic.provider == "replicas" and stack.canary.analysis == () and not stack.canary.migrated
    assert stack.dag_id == "rollout_qa9"
    assert stack.pin_images is False  # an entry written before the switch keeps deploying tags


def test_pin_images_is_a_per_stack_switch():
    assert parse_stack("qa9", {**MINIMAL, "pin_images": True}).pin_images is True
    assert parse_stack("prod", {**PRODUCTION, "pin_images": False}).pin_images is False


def test_production_defaults_to_the_production_profile():
    assert parse_stack("prod", PRODUCTION).profile == "production"


def test_services_list_keeps_its_order_and_canary_flags():
    stack = parse_stack("qa9", {**MINIMAL, "services": ["storefront", {"name": "orders", "canary": True}]})
    assert stack.services == (ServiceEntry("storefront"), ServiceEntry("orders", True))


def test_freeze_accepts_dates_and_ranges():
    stack = parse_stack("qa9", {**MINIMAL, "windows": {"timezone": "UTC", "freeze": [date(2026, 12, 24), "2027-01-01..2027-01-03"]}})
    assert [(f.first, f.last) for f in stack.windows.freeze] == [
        (date(2026, 12, 24), date(2026, 12, 24)), (date(2027, 1, 1), date(2027, 1, 3))]


def test_window_hours_past_midnight_and_to_end_of_day():
    stack = parse_stack("qa9", {**MINIMAL, "windows": {"timezone": "UTC", "allow": [
        {"days": ["fri"], "hours": "22:00-02:00"}, {"hours": "00:00-24:00"}]}})
    late, whole = stack.windows.allow
    assert (late.start, late.end) == (22 * 60, 2 * 60)
    assert (whole.start, whole.end, len(whole.days)) == (0, 1440, 7)


@pytest.mark.parametrize(
    "name, entry, message",
    [
        ("Qa_1", MINIMAL, "stack 'Qa_1': name: not a DNS-1123 label"),
        ("qa9", "nope", "stack qa9: expected a mapping of fields, got str"),
        ("qa9", {**MINIMAL, "shedule": "@daily"}, "stack qa9: shedule: unknown field"),
        ("qa9", {"type": "persistent", "profile": "qa1"}, "stack qa9: owner: is required"),
        ("qa9", {**MINIMAL, "type": "ephemeral"}, "stack qa9: type: 'ephemeral' is not one of persistent, production"),
        ("qa9", {"owner": "t", "type": "persistent"}, "stack qa9: profile: is required for a persistent stack"),
        ("qa9", {**MINIMAL, "namespace": "QA"}, "stack qa9: namespace: 'QA' is not a DNS-1123 label"),
        ("qa9", {**MINIMAL, "connection": "has space"}, "stack qa9: connection: 'has space' is not an Airflow connection id"),
        ("qa9", {**MINIMAL, "schedule": "every day"}, "stack qa9: schedule: 'every day' is not a 5-field cron"),
        ("qa9", {**MINIMAL, "schedule": "61 * * * *"}, "stack qa9: schedule: '61 * * * *' is not a 5-field cron"),
        ("qa9", {**MINIMAL, "schedule": "@often"}, "stack qa9: schedule: '@often' is not one of"),
        ("qa9", {**MINIMAL, "source": "l4"}, "stack qa9: source: expected 'l3' or"),
        ("qa9", {**MINIMAL, "source": {"healthy_on": "stage", "for_hours": -1}}, "stack qa9: source.for_hours"),
        ("qa9", {**MINIMAL, "source": {"healthy_on": "stage", "hours": 2}}, "stack qa9: source: unknown field(s) hours"),
        ("qa9", {**MINIMAL, "services": []}, "stack qa9: services: expected 'all' or a non-empty list"),
        ("qa9", {**MINIMAL, "services": ["orders", "orders"]}, "stack qa9: services[1]: service 'orders' is listed twice"),
        ("qa9", {**MINIMAL, "services": [{"name": "Orders"}]}, "stack qa9: services[0].name: 'Orders' is not a service name"),
        ("qa9", {**MINIMAL, "services": [{"name": "orders", "canary": "yes"}]}, "stack qa9: services[0].canary: expected true, false or a canary mapping"),
        ("qa9", {**MINIMAL, "services": [{"name": "o" * 50, "canary": True}]}, "stack qa9: services[0].name: 'oooo"),
        ("qa9", {**MINIMAL, "canary": {"weight": 80}}, "stack qa9: canary.weight: expected a percentage from 1 to 50"),
        ("qa9", {**MINIMAL, "canary": {"check": {"type": "prometheus"}}}, "stack qa9: canary.check.type: 'prometheus' is not one of none, http"),
        ("qa9", {**MINIMAL, "canary": {"check": {"type": "http", "url": "ftp://x"}}}, "stack qa9: canary.check.url: expected an http(s) URL"),
        ("qa9", {**MINIMAL, "canary": {"check": {"type": "http", "url": "http://{host}/"}}}, "stack qa9: canary.check.url: unknown placeholder {host}"),
        ("qa9", {**MINIMAL, "canary": {"check": {"type": "none", "url": "http://x"}}}, "stack qa9: canary.check: unknown field(s) for type none: url"),
        ("qa9", {**MINIMAL, "windows": {"timezone": "Mars/Olympus"}}, "stack qa9: windows.timezone: 'Mars/Olympus' is not a known IANA time zone"),
        ("qa9", {**MINIMAL, "windows": {"timezone": "UTC", "allow": [{"days": ["monday"]}]}}, "stack qa9: windows.allow[0].days"),
        ("qa9", {**MINIMAL, "windows": {"timezone": "UTC", "allow": [{"hours": "9-17"}]}}, "stack qa9: windows.allow[0].hours: expected 'HH:MM-HH:MM'"),
        ("qa9", {**MINIMAL, "windows": {"timezone": "UTC", "allow": [{"hours": "09:00-09:00"}]}}, "stack qa9: windows.allow[0].hours: '09:00-09:00' is an empty window"),
        ("qa9", {**MINIMAL, "windows": {"timezone": "UTC", "freeze": ["2026-12-31..2026-12-01"]}}, "stack qa9: windows.freeze[0]: '2026-12-31..2026-12-01' ends before it starts"),
        ("qa9", {**MINIMAL, "windows": {"timezone": "UTC", "freeze": ["Christmas"]}}, "stack qa9: windows.freeze[0]: 'Christmas' is not YYYY-MM-DD"),
        ("qa9", {**MINIMAL, "triggerers": {"roles": "admins"}}, "stack qa9: triggerers.roles: expected a list of names"),
        ("prod", {**PRODUCTION, "profile": "stage"}, "stack prod: profile: a production stack deploys profile 'production'"),
        ("prod", {**PRODUCTION, "source": "l3"}, "stack prod: source: a production stack takes versions that ran healthy"),
        ("prod", {**PRODUCTION, "triggerers": {}}, "stack prod: triggerers: a production stack must list"),
    ],
)
def test_bad_entries_name_the_stack_and_the_field(name, entry, message):
    with pytest.raises(InputError) as caught:
        parse_stack(name, entry)
    assert message in str(caught.value)


def test_one_bad_entry_leaves_the_others_valid():
    loaded = load_registry(registry(qa1=MINIMAL, qa2={**MINIMAL, "schedule": "nope"}, qa3=MINIMAL))
    assert list(loaded.stacks) == ["qa1", "qa3"]
    assert list(loaded.errors) == ["qa2"] and "stack qa2: schedule" in loaded.errors["qa2"]
    report = loaded.error_report("stacks.yaml")
    assert "1 invalid stack entry" in report and "stack qa2: schedule" in report


@pytest.mark.parametrize(
    "stacks, bad, message",
    [
        ({"stage": {**MINIMAL, "profile": "stage"}, "prod": {**PRODUCTION, "source": {"healthy_on": "staging", "for_hours": 1}}},
         "prod", "stack prod: source.healthy_on: no stack named 'staging' in the registry"),
        ({"stage": {**MINIMAL, "type": "bogus"}, "prod": PRODUCTION},
         "prod", "stack prod: source.healthy_on: stack 'stage' is itself invalid"),
        ({"stage": {**PRODUCTION, "source": {"healthy_on": "stage", "for_hours": 1}}},
         "stage", "stack stage: source.healthy_on: a stack cannot qualify versions on itself"),
        ({"qa1": MINIMAL, "qa2": {**MINIMAL, "namespace": "qa1"}},
         "qa2", "stack qa2: namespace: 'qa1' on connection 'stackyard_kube' is already stack 'qa1'"),
    ],
)
def test_cross_entry_rules(stacks, bad, message):
    loaded = load_registry(registry(**stacks))
    assert bad not in loaded.stacks
    assert message in loaded.errors[bad]


@pytest.mark.parametrize(
    "text, message",
    [
        ("stacks: [", "not valid YAML"),
        ("- qa1", "expected a top-level mapping 'stacks:'"),
        ("stacks: {}\nextra: 1", "unknown top-level field(s) extra"),
    ],
)
def test_an_unreadable_registry_fails_as_a_whole(text, message):
    with pytest.raises(InputError, match="stacks.yaml: " + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_registry(text)


# --- malformed values in the file: each refused with file, stack and field; the others load ------

GOOD = """
  qa1: {owner: team-qa, type: persistent, profile: qa1, namespace: qa1}
  stage: {owner: team-release, type: persistent, profile: stage, services: [catalog, orders]}
"""


def production(**fields: str) -> str:
    """A production entry as YAML text, each keyword a field's text (so tests can write any YAML)."""
    body = {"owner": "team-release", "type": "production", "source": "{healthy_on: stage, for_hours: 24}",
            "triggerers": "{roles: [prod-deployers]}", **fields}
    return "  production:\n" + "".join(f"    {key}: {value}\n" for key, value in body.items())


MALFORMED = [
    ("impossible date", production(windows="{timezone: UTC, freeze: [2027-02-30]}"),
     "production", "stack production: windows.freeze[0]: '2027-02-30' is not YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD "
                   "(day is out of range for month)"),
    ("impossible date in a range", production(windows="{timezone: UTC, freeze: [2027-02-01..2027-02-30]}"),
     "production", "stack production: windows.freeze[0]: '2027-02-01..2027-02-30' is not YYYY-MM-DD"),
    ("timestamp instead of a date", production(windows="{timezone: UTC, freeze: [2027-02-03T10:00:00]}"),
     "production", "stack production: windows.freeze[0]: '2027-02-03T10:00:00' is not YYYY-MM-DD"),
    ("repeated stack", GOOD.replace("  stage:", "  qa1: {owner: x, type: persistent, profile: qa2}\n  stage:"),
     "qa1", "stack qa1: name: the key 'qa1' is repeated (lines 2 and 3)"),
    ("repeated field", production(owner="a", type="production\n    owner: b"),
     "production", "stack production: owner: the key 'owner' is repeated"),
    ("repeated nested field", production(windows="{timezone: UTC, timezone: Europe/Berlin}"),
     "production", "stack production: windows.timezone: the key 'timezone' is repeated"),
    ("repeated field in a list item", production(windows="{timezone: UTC, allow: [{hours: '09:00-10:00', hours: '11:00-12:00'}]}"),
     "production", "stack production: windows.allow[0].hours: the key 'hours' is repeated"),
    ("empty allow list", production(windows="{timezone: UTC, allow: []}"),
     "production", "stack production: windows.allow: an empty list would never open the window"),
    ("system namespace kube-system", production(namespace="kube-system"),
     "production", "stack production: namespace: 'kube-system' is a system namespace"),
    ("system namespace kube-public", production(namespace="kube-public"),
     "production", "stack production: namespace: 'kube-public' is a system namespace"),
    ("system namespace default", production(namespace="default"),
     "production", "stack production: namespace: 'default' is a system namespace"),
    ("gate namespace", production(namespace="l3-0b6502da"),
     "production", "stack production: namespace: 'l3-0b6502da' is reserved for the L3 gate's stacks"),
    ("another stack's namespace", production(namespace="qa1"),
     "production", "stack production: namespace: 'qa1' on connection 'stackyard_kube' is already stack 'qa1'"),
    ("unknown service", production(services="[catalog, ordres]"),
     "production", "stack production: services[1]: unknown service 'ordres': stack 'stage', where its versions "
                   "qualify, does not deploy it"),
    ("profile that is no profile name", production(type="persistent", profile="'Bad Name'", source="l3"),
     "production", "stack production: profile: 'Bad Name' is not a DNS-1123 label"),
    ("name with a trailing newline", production(namespace='"evil\\n"'),
     "production", "stack production: namespace: 'evil\\n' is not a DNS-1123 label"),
    ("service with a trailing newline", production(services='[catalog, "orders\\n"]'),
     "production", "stack production: services[1]: 'orders\\n' is not a service name"),
    ("role with a trailing newline", production(triggerers='{roles: ["admins\\n"]}'),
     "production", "stack production: triggerers.roles[0]: 'admins\\n' is not a role or user name"),
    ("pin_images that is no boolean", production(pin_images="'yes'"),
     "production", "stack production: pin_images: expected true or false, got 'yes'"),
    ("canary URL that is no http(s)", production(canary="{check: {type: http, url: 'javascript:alert(1)'}}"),
     "production", "stack production: canary.check.url: expected an http(s) URL"),
]


@pytest.mark.parametrize("text, bad, message", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_each_malformed_value_drops_only_its_stack_naming_file_stack_and_field(text, bad, message):
    loaded = load_registry("stacks:" + GOOD + text if not text.startswith("\n") else "stacks:" + text,
                           origin="include/stacks.yaml")
    assert bad not in loaded.stacks and message in loaded.errors[bad], loaded.errors
    assert {"qa1", "stage"} - {bad} <= set(loaded.stacks)  # the others still load
    report = loaded.error_report("include/stacks.yaml")
    assert report.startswith("include/stacks.yaml: 1 invalid stack entry") and message in report


def test_a_repeated_top_level_key_fails_the_whole_file():
    with pytest.raises(InputError, match=r"stacks.yaml: stacks: the key 'stacks' is repeated"):
        load_registry("stacks: {}\nstacks: {}\n")


def test_unquoted_dates_are_read_as_text_and_checked():
    loaded = load_registry("stacks:" + GOOD + production(windows="{timezone: UTC, freeze: [2026-12-24, 2027-01-01..2027-01-03]}"))
    assert [(f.first, f.last) for f in loaded.stacks["production"].windows.freeze] == [
        (date(2026, 12, 24), date(2026, 12, 24)), (date(2027, 1, 1), date(2027, 1, 3))]


def test_a_stack_named_like_a_system_namespace_needs_a_namespace_of_its_own():
    loaded = load_registry(registry(default=MINIMAL))
    assert "stack default: name: 'default' is a system namespace" in loaded.errors["default"]


def test_the_bulk_name_check_agrees_with_the_one_by_one_check():
    from stackyard.core.names import all_dns_labels, is_dns_label

    cases = ["a", "ab", "a-b", "-a", "a-", "", "A", "a_b", "x" * 63, "x" * 64, "evil\n", "\nx", "a\nb", "a--b", "0", "é"]
    for one in cases:
        assert all_dns_labels([one]) is is_dns_label(one), one
        for two in cases:
            assert all_dns_labels([one, two]) is (is_dns_label(one) and is_dns_label(two)), (one, two)
