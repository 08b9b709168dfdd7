"""The stacks contract and the reaper's decision: table tests named after the rules, and
properties over random labels, annotations and times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stackyard.core import ephemeral as S
from stackyard.core.ephemeral import Action, NamespaceSummary, Outcome
from stackyard.exceptions import InputError

NOW = datetime(2026, 5, 10, 3, 0, tzinfo=timezone.utc)
EPHEMERAL = {S.LABEL_MANAGED_BY: S.MANAGED_BY, S.LABEL_STACK_TYPE: "ephemeral"}


def ns(name="s", labels=EPHEMERAL, created=NOW - timedelta(days=30), phase="Active", **annotations):
    keys = {"last_activity": S.ANNOTATION_LAST_ACTIVITY, "ttl": S.ANNOTATION_TTL}
    return NamespaceSummary(name, dict(labels), {keys[k]: v for k, v in annotations.items()}, created, phase, "7")


def ago(**kw) -> str:
    return S.timestamp(NOW - timedelta(**kw))


# --- the decision, one case per rule -------------------------------------------------------------

DECISIONS = [
    # (case, namespace, action, reason fragment, warned)
    ("stale ephemeral is deleted", ns(last_activity=ago(days=8), ttl="7d"), Action.DELETE, "longer than its TTL 7d", False),
    ("fresh ephemeral is kept", ns(last_activity=ago(days=2), ttl="7d"), Action.KEEP, "5d0h left", False),
    ("exactly at its TTL is kept", ns(last_activity=ago(days=7), ttl="7d"), Action.KEEP, "0h0m left", False),
    ("hour TTLs count", ns(last_activity=ago(hours=37), ttl="36h"), Action.DELETE, "TTL 36h", False),
    ("persistent is never touched", ns(labels={**EPHEMERAL, S.LABEL_STACK_TYPE: "persistent"},
                                      last_activity=ago(days=99), ttl="1h"), Action.SKIP, "stack-type='persistent'", False),
    ("production is never touched", ns(labels={**EPHEMERAL, S.LABEL_STACK_TYPE: "production"},
                                      last_activity=ago(days=99), ttl="1h"), Action.SKIP, "not a stackyard ephemeral", False),
    ("unlabelled is never touched", ns(labels={}, last_activity=ago(days=99), ttl="1h"), Action.SKIP, "stack-type=None", False),
    ("ephemeral label without managed-by is not ours", ns(labels={S.LABEL_STACK_TYPE: "ephemeral"},
                                                          last_activity=ago(days=99)), Action.SKIP, "not a stackyard", False),
    ("already terminating is skipped", ns(phase="Terminating", last_activity=ago(days=99), ttl="1d"), Action.SKIP,
     "already terminating", False),
    ("garbled TTL means do not delete", ns(last_activity=ago(days=99), ttl="forever"), Action.SKIP, "does not parse", True),
    ("zero TTL does not parse", ns(last_activity=ago(days=99), ttl="0d"), Action.SKIP, "does not parse", True),
    ("huge TTL does not parse", ns(last_activity=ago(days=99), ttl="99999999999d"), Action.SKIP, "does not parse", True),
    ("missing TTL is the default 7d", ns(last_activity=ago(days=8)), Action.DELETE, "TTL 7d", True),
    ("missing last-activity falls back to creation (old)", ns(ttl="7d"), Action.DELETE, "idle 30d", True),
    ("missing last-activity falls back to creation (new)", ns(ttl="7d", created=NOW - timedelta(days=1)), Action.KEEP,
     "6d0h left", True),
    ("garbled last-activity falls back to creation", ns(last_activity="yesterday", ttl="7d"), Action.DELETE, "idle 30d", True),
    ("naive last-activity falls back to creation", ns(last_activity="2026-05-09T00:00:00", ttl="7d",
                                                     created=NOW - timedelta(days=2)), Action.KEEP, "5d0h", True),
    ("future last-activity is not believed", ns(last_activity=S.timestamp(NOW + timedelta(days=365)), ttl="7d"),
     Action.DELETE, "idle 30d", True),
    ("slight clock skew is believed", ns(last_activity=S.timestamp(NOW + timedelta(minutes=2)), ttl="7d"),
     Action.KEEP, "7d0h left", False),
    ("last-activity wins over creation (a stack moved to a new cluster)",
     ns(last_activity=ago(days=60), ttl="7d", created=NOW - timedelta(days=1)), Action.DELETE, "idle 60d", False),
    ("no usable time at all is skipped", ns(last_activity="garbage", ttl="7d", created=None), Action.SKIP,
     "no usable last-activity", True),
    ("offsets are understood", ns(last_activity=(NOW - timedelta(days=8)).astimezone(timezone(timedelta(hours=5))).isoformat(),
                                  ttl="7d"), Action.DELETE, "idle 8d", False),
]


@pytest.mark.parametrize("case, namespace, action, reason, warned", DECISIONS, ids=[d[0] for d in DECISIONS])
def test_decide(case, namespace, action, reason, warned):
    verdict = S.decide(namespace, NOW)
    assert verdict.action is action, verdict
    assert reason in verdict.reason, verdict.reason
    assert bool(verdict.warnings) is warned, verdict.warnings
    assert verdict.resource_version == "7"


def test_kept_stacks_report_their_time_left():
    verdict = S.decide(ns(last_activity=ago(days=2, hours=3), ttl="7d"), NOW)
    assert verdict.time_left == timedelta(days=4, hours=21)
    assert verdict.to_dict()["time_left"] == "4d21h"


def test_verdicts_round_trip_through_dicts():
    for _, namespace, *_ in DECISIONS:
        verdict = S.decide(namespace, NOW)
        assert S.Verdict.from_dict(verdict.to_dict()) == verdict


def test_gate_stacks_are_reapable_like_any_ephemeral_stack():
    meta = S.ephemeral_stack_metadata(owner="ci", purpose=S.Purpose.L3_GATE, manifest_version=3,
                                      created=NOW - timedelta(days=8))
    gate = NamespaceSummary("l3-0123abcd", meta.labels, meta.annotations, NOW - timedelta(days=8))
    assert S.decide(gate, NOW).action is Action.DELETE
    assert all(f"{k}={v}" in S.EPHEMERAL_SELECTOR or k not in (S.LABEL_MANAGED_BY, S.LABEL_STACK_TYPE)
               for k, v in meta.labels.items())


def test_a_touched_stack_is_kept():
    meta = S.ephemeral_stack_metadata(owner="a", purpose=S.Purpose.PERSONAL, manifest_version=1,
                                      created=NOW - timedelta(days=30))
    touched = {**meta.annotations, **S.touch_annotations(NOW - timedelta(hours=1), timedelta(days=2))}
    verdict = S.decide(NamespaceSummary("a", meta.labels, touched, NOW - timedelta(days=30)), NOW)
    assert verdict.action is Action.KEEP and verdict.ttl == timedelta(days=2)


# --- the cap and the report ----------------------------------------------------------------------


def test_cap_holds_before_anything_is_deleted():
    verdicts = S.plan([ns(f"s{i}", last_activity=ago(days=9)) for i in range(3)], NOW)
    assert [v.name for v in S.check_cap(verdicts, 3)] == ["s0", "s1", "s2"]
    with pytest.raises(S.DeletionCapExceeded, match="would delete 3 stacks, more than max_deletions=2"):
        S.check_cap(verdicts, 2)
    with pytest.raises(InputError, match="max_deletions"):
        S.check_cap(verdicts, -1)


def test_report_sorts_each_stack_into_one_bucket():
    verdicts = S.plan([
        ns("gone", last_activity=ago(days=9)), ns("boom", last_activity=ago(days=9)),
        ns("raced", last_activity=ago(days=9)), ns("fresh", last_activity=ago(days=1)),
        ns("prod", labels={**EPHEMERAL, S.LABEL_STACK_TYPE: "production"}),
    ], NOW)
    outcomes = {"gone": (Outcome.DELETED, "deleted"), "boom": (Outcome.FAILED, "HTTP 500"),
                "raced": (Outcome.CHANGED, "changed since it was read")}
    report = S.reaper_report(verdicts, outcomes, now=NOW, dry_run=False, max_deletions=20, dag_id="ephemeral_reaper",
                             run_id="r1").to_json()
    assert report["counts"] == {"deleted": 1, "would_delete": 0, "kept": 2, "skipped": 1, "failed": 1}
    assert [e["name"] for e in report["kept"]] == ["fresh", "raced"]
    assert report["failed"][0]["detail"] == "HTTP 500"
    dry = S.reaper_report(verdicts, {}, now=NOW, dry_run=True, max_deletions=20, dag_id="ephemeral_reaper",
                          run_id="r2").to_json()
    assert report["dag_id"] == "ephemeral_reaper" and report["run_id"] == "r1"
    assert dry["counts"]["would_delete"] == 3 and dry["counts"]["deleted"] == 0


# --- names, TTLs, touch --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["alice-dev", "a", "demo-2", "x" * 63])
def test_personal_stack_names(name):
    assert S.validate_personal_stack_name(name) == name


@pytest.mark.parametrize("name, message", [
    ("Alice", "not a DNS-1123 label"), ("-a", "not a DNS-1123 label"), ("a_b", "not a DNS-1123 label"),
    ("x" * 64, "not a DNS-1123 label"), ("", "not a DNS-1123 label"), (None, "not a DNS-1123 label"),
    ("l3-abc", "reserved"), ("kube-system", "reserved"), ("default", "reserved"),
])
def test_bad_personal_stack_names(name, message):
    with pytest.raises(InputError, match=message):
        S.validate_personal_stack_name(name)


@pytest.mark.parametrize("text, expected", [("7d", timedelta(days=7)), ("36h", timedelta(hours=36))])
def test_parse_ttl(text, expected):
    assert S.parse_ttl(text) == expected
    assert S.parse_ttl(S.format_ttl(expected)) == expected


@pytest.mark.parametrize("text", ["", "7", "7 d", "-1d", "0h", "1w", None, 7])
def test_bad_ttls(text):
    with pytest.raises(InputError):
        S.parse_ttl(text)


@pytest.mark.parametrize("days", [0, 91, -1, True, 1.5, "7"])
def test_ttl_days_bounds(days):
    with pytest.raises(InputError, match="ttl_days"):
        S.ttl_from_days(days)


def test_require_ephemeral_names_what_the_stack_is():
    with pytest.raises(InputError, match="is a persistent stack"):
        S.require_ephemeral(ns(labels={**EPHEMERAL, S.LABEL_STACK_TYPE: "persistent"}), "s", "destroy")
    with pytest.raises(InputError, match="not labelled as a stackyard stack"):
        S.require_ephemeral(ns(labels={}), "s", "destroy")
    with pytest.raises(InputError, match="there is no stack 's'"):
        S.require_ephemeral(None, "s", "destroy")
    assert S.require_ephemeral(ns(), "s", "destroy").name == "s"


def test_touch_sets_last_activity_and_optionally_ttl():
    assert S.touch_annotations(NOW) == {S.ANNOTATION_LAST_ACTIVITY: "2026-05-10T03:00:00Z"}
    assert S.touch_annotations(NOW, timedelta(days=3))[S.ANNOTATION_TTL] == "3d"


# --- properties: the reaper never selects a namespace that is not a stale stackyard ephemeral stack

KEYS = [S.LABEL_MANAGED_BY, S.LABEL_STACK_TYPE, S.LABEL_PURPOSE, "app", "stackyard.io/other"]
label_values = st.sampled_from(["stackyard", "ephemeral", "persistent", "production", "l3-gate", "", "Ephemeral", "helm"])
labels = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), label_values, max_size=5),
    st.dictionaries(st.sampled_from(KEYS), label_values, max_size=3).map(lambda extra: {**extra, **EPHEMERAL}),
)
# Offsets from ``now``, mostly within a few TTLs of it so that stale/fresh boundaries are crossed.
offsets = st.one_of(
    st.integers(-2 * 3600, 40 * 86400).map(lambda s: timedelta(seconds=s)),
    st.integers(-36500, 36500).map(lambda d: timedelta(days=d)),
)
ttl_texts = st.one_of(
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 30), st.sampled_from("dh")),
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**12), st.sampled_from("dhwm")),
    st.text(max_size=8),
)


def _activity_text(now: datetime, offset: timedelta, style: int, junk: str) -> str:
    moment = now - offset
    return [S.timestamp(moment), moment.isoformat(), moment.replace(tzinfo=None).isoformat(), junk][style]


@st.composite
def namespace_at(draw, now: datetime) -> NamespaceSummary:
    annotations = {}
    if draw(st.booleans()):
        annotations[S.ANNOTATION_LAST_ACTIVITY] = _activity_text(
            now, draw(offsets), draw(st.integers(0, 3)), draw(st.text(max_size=25)))
    if draw(st.booleans()):
        annotations[S.ANNOTATION_TTL] = draw(ttl_texts)
    created = draw(st.one_of(st.none(), offsets.map(lambda o: now - abs(o))))
    return NamespaceSummary(
        draw(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)), draw(labels), annotations, created,
        draw(st.sampled_from([None, "Active", "Active", "Terminating"])), draw(st.sampled_from([None, "1", "42"])),
    )


nows = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc))
cases = nows.flatmap(lambda now: st.tuples(st.just(now), namespace_at(now)))
batches = nows.flatmap(lambda now: st.tuples(st.just(now), st.lists(namespace_at(now), max_size=30, unique_by=lambda n: n.name)))


def _oracle_may_delete(n: NamespaceSummary, now: datetime) -> bool:
    """Independent of decide(): ours, ephemeral, alive, and idle longer than its TTL by every
    timestamp that could be believed."""
    if n.labels.get(S.LABEL_MANAGED_BY) != "stackyard" or n.labels.get(S.LABEL_STACK_TYPE) != "ephemeral":
        return False
    if n.phase == "Terminating":
        return False
    raw = n.annotations.get(S.ANNOTATION_TTL)
    try:
        ttl = S.DEFAULT_TTL if raw is None else S.parse_ttl(raw)
    except InputError:
        return False
    try:
        activity = S.parse_timestamp(n.annotations.get(S.ANNOTATION_LAST_ACTIVITY))
    except InputError:
        activity = None
    if activity is None or activity > now + S.CLOCK_SKEW:  # only the creation time is left to go by
        return n.created is not None and now - n.created > ttl
    return now - activity > ttl


@settings(max_examples=1000, deadline=None)
@given(case=cases)
def test_reaper_only_selects_stale_stackyard_ephemeral_stacks(case):
    now, namespace = case
    verdict = S.decide(namespace, now)
    if verdict.action is Action.DELETE:
        assert _oracle_may_delete(namespace, now), (namespace, verdict)
        assert verdict.resource_version == namespace.resource_version


@settings(max_examples=300, deadline=None)
@given(case=cases, kind=st.sampled_from(["persistent", "production", None]))
def test_non_ephemeral_stacks_are_never_deleted_whatever_their_annotations(case, kind):
    now, namespace = case
    labels = {k: v for k, v in namespace.labels.items() if k != S.LABEL_STACK_TYPE}
    if kind:
        labels[S.LABEL_STACK_TYPE] = kind
    verdict = S.decide(NamespaceSummary(namespace.name, labels, namespace.annotations, namespace.created), now)
    assert verdict.action is Action.SKIP


@settings(max_examples=200, deadline=None)
@given(case=batches)
def test_plan_is_one_verdict_per_namespace_and_never_widens(case):
    now, batch = case
    verdicts = S.plan(batch, now)
    assert sorted(v.name for v in verdicts) == sorted(n.name for n in batch)
    by_name = {n.name: n for n in batch}
    assert all(_oracle_may_delete(by_name[v.name], now) for v in verdicts if v.action is Action.DELETE)


@settings(max_examples=300, deadline=None)
@given(case=cases)
def test_kept_stacks_have_time_left_within_their_ttl(case):
    now, namespace = case
    verdict = S.decide(namespace, now)
    if verdict.action is Action.KEEP:
        assert timedelta(0) <= verdict.time_left <= verdict.ttl + S.CLOCK_SKEW


@settings(max_examples=300, deadline=None)
@given(case=cases)
def test_every_stale_stackyard_ephemeral_stack_with_clean_annotations_is_deleted(case):
    """The other direction, where the answer is unambiguous: valid TTL, believable activity."""
    now, namespace = case
    try:
        ttl = S.parse_ttl(namespace.annotations.get(S.ANNOTATION_TTL, "7d"))
        activity = S.parse_timestamp(namespace.annotations.get(S.ANNOTATION_LAST_ACTIVITY))
    except InputError:
        return
    if (namespace.is_stackyard_ephemeral and namespace.phase != "Terminating" and namespace.created is not None
            and activity <= now and now - activity > ttl):
        assert S.decide(namespace, now).action is Action.DELETE
