"""Personal ephemeral stacks and the nightly reaper, end to end on the kube sandbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.steps import personal_stacks as stack_steps
from stackyard.core import ephemeral as S
from stackyard.steps.publishing import load_umbrella_template
from stackyard.adapters.record_store import open_record_store
from stackyard.core.records import StackEvent

from tests.e2e.conftest import fresh_dag, run_dag

# Every test but the one injecting API faults also runs on a real cluster (make test-cluster).
pytestmark = pytest.mark.slow
NOW = datetime.now(timezone.utc)


def records(local_stack, stream):
    return [r.data for r in open_record_store(local_stack.settings.records_url).list(stream)]


def events(local_stack, stack):
    return [r["event"] for r in reversed(records(local_stack, f"stacks/{stack}/events"))]


def alive(local_stack, name):
    from kubernetes.client.exceptions import ApiException

    try:
        ns = local_stack.core_v1().read_namespace(name)
    except ApiException as exc:
        assert exc.status == 404
        return False
    return ns.status.phase != "Terminating"


def remove(local_stack, name):
    """Delete a namespace the test made and wait until it is gone (names are reused across tests)."""
    import time

    from kubernetes.client.exceptions import ApiException

    try:
        local_stack.core_v1().delete_namespace(name)
    except ApiException as exc:
        assert exc.status == 404
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            local_stack.core_v1().read_namespace(name)
        except ApiException:
            return
        time.sleep(0.1)
    raise AssertionError(f"namespace {name} was not removed")


def make_namespace(local_stack, name, labels=None, **annotations):
    from kubernetes.client import V1Namespace, V1ObjectMeta

    keys = {"last_activity": S.ANNOTATION_LAST_ACTIVITY, "ttl": S.ANNOTATION_TTL}
    meta = V1ObjectMeta(name=name, labels=labels, annotations={keys.get(k, k): v for k, v in annotations.items()})
    local_stack.core_v1().create_namespace(V1Namespace(metadata=meta))


def ago(**kw) -> str:
    return S.timestamp(NOW - timedelta(**kw))


# dag.test() keeps the previous run's conf in the shared DAG's params, so every run spells out
# every parameter.
DEFAULTS = {
    "stack_create": {"ttl_days": 7, "manifest_version": None, "overrides": {}, "profile": "ephemeral"},
    "stack_touch": {"ttl_days": None},
    "stack_destroy": {},
    "ephemeral_reaper": {"dry_run": False, "max_deletions": 20},
}


def run(dagbag, dag_id, conf):
    return run_dag(dagbag, dag_id, {**DEFAULTS[dag_id], **conf})


EPHEMERAL = {S.LABEL_MANAGED_BY: S.MANAGED_BY, S.LABEL_STACK_TYPE: "ephemeral", S.LABEL_PURPOSE: "personal"}


# --- stack_create / stack_touch / stack_destroy ---------------------------------------------------


@pytest.mark.cluster
def test_create_touch_destroy(local_stack, dagbag, capfd):
    seeded = local_stack.seed()
    name = "alice-dev"

    state, tasks = run(dagbag, "stack_create", {"name": name, "owner": "alice@example.com", "ttl_days": 3})

    assert state == "success", tasks
    assert tasks["clean_up_failed"] == "skipped"
    ns = local_stack.core_v1().read_namespace(name).metadata
    assert ns.labels[S.LABEL_STACK_TYPE] == "ephemeral" and ns.labels[S.LABEL_PURPOSE] == "personal"
    assert ns.labels[S.LABEL_MANIFEST_VERSION] == str(seeded.version)
    assert ns.annotations[S.ANNOTATION_OWNER] == "alice@example.com" and ns.annotations[S.ANNOTATION_TTL] == "3d"
    assert S.parse_timestamp(ns.annotations[S.ANNOTATION_LAST_ACTIVITY]) >= S.parse_timestamp(ns.annotations[S.ANNOTATION_CREATED])
    [release] = local_stack.helm.list(namespace=name)
    assert (release.name, release.status, release.chart) == (name, "deployed", f"l3-{seeded.version}.0.0")
    out = capfd.readouterr().out
    assert f"stack {name} is ready" in out and "kubectl context: kube-sandbox" in out
    assert events(local_stack, name) == ["created", "ready"]

    local_stack.core_v1().patch_namespace(name, {"metadata": {"annotations": {S.ANNOTATION_LAST_ACTIVITY: ago(days=2)}}})
    state, _ = run(dagbag, "stack_touch", {"name": name, "ttl_days": 5})

    assert state == "success"
    touched = local_stack.core_v1().read_namespace(name).metadata.annotations
    assert touched[S.ANNOTATION_TTL] == "5d"
    assert NOW - timedelta(minutes=1) < S.parse_timestamp(touched[S.ANNOTATION_LAST_ACTIVITY])
    assert events(local_stack, name)[-1] == "touched"

    state, tasks = run(dagbag, "stack_destroy", {"name": name})

    assert state == "success", tasks
    assert not alive(local_stack, name)
    assert local_stack.helm.list(namespace=name) == []
    assert events(local_stack, name)[-1] == "destroyed"


@pytest.mark.cluster
def test_create_with_an_override_runs_that_chart_on_top_of_l3(local_stack, dagbag):
    seeded = local_stack.seed()
    local_stack.publish("orders", "1.1.0")

    state, tasks = run(dagbag, "stack_create", {"name": "bob-orders", "owner": "bob", "overrides": {"orders": "1.1.0"}})

    assert state == "success", tasks
    [release] = local_stack.helm.list(namespace="bob-orders")
    assert release.chart.startswith(f"l3-{seeded.version}.0.0-overrides-")
    version = release.chart.removeprefix("l3-")
    package = local_stack.registry.fetch("l3", version).read_bytes()
    vendored = {c.name: c.version for c in stack_steps.charts_of(package)[1:]}
    assert vendored == {**{s: p.chart_version for s, p in seeded.services.items()}, "orders": "1.1.0"}
    assert local_stack.store.latest() == seeded  # a personal stack never changes L3
    # Same inputs, same bytes: the artifact is shared by every stack asking for this combination.
    plan = stack_steps.resolve(stack_steps.StackRequest("other", "x", overrides={"orders": "1.1.0"}),
                               store=local_stack.store, registry=local_stack.registry)
    template = load_umbrella_template(local_stack.settings.umbrella_template_dir)
    assert stack_steps.build_package(plan, registry=local_stack.registry, template=template) == (version, package)
    assert run(dagbag, "stack_destroy", {"name": "bob-orders"})[0] == "success"


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"name": "l3-mine", "owner": "eve"}, "name: 'l3-mine' is reserved"),
        ({"name": "taken", "owner": "eve"}, "name: a namespace 'taken' already exists"),
        ({"name": "eve-dev", "owner": "eve", "manifest_version": 99}, "manifest_version: there is no L3 manifest v99 (latest is v1)"),
        ({"name": "eve-dev", "owner": "eve", "overrides": {"orders": "9.9.9"}}, "overrides.orders: chart orders 9.9.9 is not in the registry"),
        ({"name": "eve-dev", "owner": "eve", "overrides": {"orders": "latest"}}, "overrides.orders: 'latest' is not a semantic version"),
        ({"name": "eve-dev", "owner": "eve", "profile": "production"}, "profile: ephemeral stacks cannot use the 'production' profile"),
        ({"name": "eve-dev", "owner": "eve", "profile": "nope"}, "has no profile 'nope'"),
    ],
)
@pytest.mark.cluster
def test_bad_create_requests_fail_clearly_and_change_nothing(local_stack, dagbag, conf, message, capfd):
    local_stack.seed()
    make_namespace(local_stack, "taken", {**EPHEMERAL}, owner="someone")
    before = {ns.metadata.name for ns in local_stack.core_v1().list_namespace().items}

    state, tasks = run(dagbag, "stack_create", conf)

    assert state == "failed"
    assert message in capfd.readouterr().out
    assert tasks["create_namespace"] == "upstream_failed" and tasks["deploy"] == "upstream_failed"
    after = {ns.metadata.name for ns in local_stack.core_v1().list_namespace().items if ns.status.phase != "Terminating"}
    assert after == before
    assert records(local_stack, "stacks/eve-dev/events") == []
    remove(local_stack, "taken")


@pytest.mark.parametrize("conf", [{"name": "Bad_Name", "owner": "x"}, {"name": "ok"}, {"name": "ok", "owner": "x", "ttl_days": 0}])
@pytest.mark.cluster
def test_malformed_create_params_are_refused_before_any_task_runs(dagbag, conf):
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError):
        fresh_dag(dagbag, "stack_create").test(run_conf=conf)


@pytest.mark.parametrize(
    "labels, message",
    [
        ({S.LABEL_MANAGED_BY: S.MANAGED_BY, S.LABEL_STACK_TYPE: "persistent"}, "'qa-keep' is a persistent stack"),
        ({S.LABEL_MANAGED_BY: S.MANAGED_BY, S.LABEL_STACK_TYPE: "production"}, "'qa-keep' is a production stack"),
        (None, "'qa-keep' is not labelled as a stackyard stack"),
    ],
)
@pytest.mark.cluster
def test_destroy_refuses_a_non_ephemeral_stack(local_stack, dagbag, capfd, labels, message):
    make_namespace(local_stack, "qa-keep", labels, last_activity=ago(days=99), ttl="1h")
    try:
        state, tasks = run(dagbag, "stack_destroy", {"name": "qa-keep"})
        assert state == "failed" and tasks == {"check": "failed", "destroy": "upstream_failed"}
        assert message in capfd.readouterr().out
        assert alive(local_stack, "qa-keep")
        state, tasks = run(dagbag, "stack_touch", {"name": "qa-keep"})
        assert state == "failed" and tasks["touch"] == "upstream_failed"
        assert local_stack.core_v1().read_namespace("qa-keep").metadata.annotations[S.ANNOTATION_TTL] == "1h"
    finally:
        remove(local_stack, "qa-keep")


@pytest.mark.cluster
def test_destroy_of_a_missing_stack_is_a_clear_error(local_stack, dagbag, capfd):
    state, _ = run(dagbag, "stack_destroy", {"name": "never-was"})
    assert state == "failed"
    assert "there is no stack 'never-was' on the cluster" in capfd.readouterr().out


# --- ephemeral_reaper -----------------------------------------------------------------------------

GATE = S.ephemeral_stack_metadata(owner="ci", purpose=S.Purpose.L3_GATE, manifest_version=1,
                                  created=NOW - timedelta(days=10))
MIX = {
    # name: (labels, annotations, reaped?)
    "r-fresh": (EPHEMERAL, {"last_activity": ago(days=1), "ttl": "7d"}, False),
    "r-stale": (EPHEMERAL, {"last_activity": ago(days=8), "ttl": "7d"}, True),
    "r-stale-hours": (EPHEMERAL, {"last_activity": ago(hours=3), "ttl": "2h"}, True),
    "r-extended": (EPHEMERAL, {"last_activity": ago(days=8), "ttl": "30d"}, False),
    "r-persistent": ({**EPHEMERAL, S.LABEL_STACK_TYPE: "persistent"}, {"last_activity": ago(days=99), "ttl": "1h"}, False),
    "r-production": ({**EPHEMERAL, S.LABEL_STACK_TYPE: "production"}, {"last_activity": ago(days=99), "ttl": "1h"}, False),
    "r-unlabelled": (None, {"last_activity": ago(days=99), "ttl": "1h"}, False),
    "r-garbled-ttl": (EPHEMERAL, {"last_activity": ago(days=99), "ttl": "soon"}, False),
    "r-garbled-activity": (EPHEMERAL, {"last_activity": "last tuesday", "ttl": "7d"}, False),  # created now: fresh
    "l3-0badc0de": (GATE.labels, {**GATE.annotations}, True),
}


def made_by_stackyard(local_stack, name, labels, annotations, run_id="manual__test"):
    """A namespace as stack_create makes it: its "created" record first, then the namespace
    naming that run (labels alone prove nothing: see test_faults_ownership.py)."""
    dag_id = "l3_gate" if name.startswith("l3-") else "stack_create"
    open_record_store(local_stack.settings.records_url).write(StackEvent(
        event="created", stack=name, dag_id=dag_id, run_id=run_id, at=datetime.now(timezone.utc), owner="alice"))
    make_namespace(local_stack, name, labels and dict(labels),
                   **{**annotations, S.ANNOTATION_CREATED_BY: f"{dag_id}/{run_id}"})


@pytest.fixture
def mixed_stacks(local_stack):
    for name, (labels, annotations, _) in MIX.items():
        if labels and labels.get(S.LABEL_MANAGED_BY) == S.MANAGED_BY:
            made_by_stackyard(local_stack, name, labels, annotations)
        else:
            make_namespace(local_stack, name, labels and dict(labels), **annotations)
    yield {name for name, (*_, reaped) in MIX.items() if reaped}
    for name in MIX:
        remove(local_stack, name)


def last_report(local_stack):
    return records(local_stack, "reaper/runs")[0]


def names(entries):
    return {e["name"] for e in entries} & set(MIX)


@pytest.mark.cluster
def test_reaper_removes_exactly_the_stale_ephemeral_stacks(local_stack, dagbag, mixed_stacks, capfd):
    state, tasks = run(dagbag, "ephemeral_reaper", {"dry_run": True})

    assert state == "success" and tasks["reap"] == "skipped"
    assert all(alive(local_stack, name) for name in MIX)
    dry = last_report(local_stack)
    assert names(dry["would_delete"]) == mixed_stacks and dry["dry_run"] is True

    state, tasks = run(dagbag, "ephemeral_reaper", {})

    assert state == "success", tasks
    assert {name for name in MIX if not alive(local_stack, name)} == mixed_stacks
    report = last_report(local_stack)
    assert names(report["deleted"]) == mixed_stacks
    kept = {e["name"]: e for e in report["kept"]}
    assert kept["r-fresh"]["time_left"].startswith("5d") and kept["r-extended"]["time_left"].startswith("21d")
    skipped = {e["name"]: e["reason"] for e in report["skipped"]}
    assert "does not parse" in skipped["r-garbled-ttl"]
    assert "r-persistent" not in skipped  # never even listed: the selector leaves it out
    assert any("last tuesday" in w for w in kept["r-garbled-activity"]["warnings"])
    out = capfd.readouterr().out
    assert "r-garbled-ttl" in out and "does not parse" in out
    assert events(local_stack, "r-stale") == ["created", "reaped"]
    assert events(local_stack, "l3-0badc0de") == ["created", "reaped"]

    state, _ = run(dagbag, "ephemeral_reaper", {})  # re-running is safe
    assert state == "success" and names(last_report(local_stack)["deleted"]) == set()


@pytest.mark.cluster
def test_reaper_cap_stops_before_deleting_anything(local_stack, dagbag, mixed_stacks, capfd):
    state, tasks = run(dagbag, "ephemeral_reaper", {"max_deletions": 2})

    assert state == "failed"
    assert tasks == {"plan_reaping": "failed", "reap": "upstream_failed", "report": "failed"}
    assert all(alive(local_stack, name) for name in MIX)
    assert f"would delete {len(mixed_stacks)} stacks, more than max_deletions=2" in capfd.readouterr().out
    report = last_report(local_stack)
    assert "max_deletions=2" in report["error"] and report["deleted"] == []

    state, _ = run(dagbag, "ephemeral_reaper", {"max_deletions": len(mixed_stacks)})
    assert state == "success"


def test_one_failed_deletion_does_not_stop_the_others(local_stack, dagbag, mixed_stacks, sandbox, capfd):
    sandbox.faults.fail(verb="delete", resource="namespaces", name="r-stale", status=500, times=None)
    try:
        state, tasks = run(dagbag, "ephemeral_reaper", {})
    finally:
        sandbox.faults.clear()

    assert state == "failed" and tasks["reap"] == "success" and tasks["report"] == "failed"
    assert {name for name in MIX if not alive(local_stack, name)} == mixed_stacks - {"r-stale"}
    report = last_report(local_stack)
    assert [e["name"] for e in report["failed"]] == ["r-stale"] and "HTTP 500" in report["failed"][0]["detail"]
    assert "1 deletion(s) failed: r-stale" in capfd.readouterr().out

    state, _ = run(dagbag, "ephemeral_reaper", {})  # the next run finishes the job
    assert state == "success" and not alive(local_stack, "r-stale")


@pytest.mark.cluster
def test_a_stack_touched_after_listing_is_kept(local_stack, dagbag, mixed_stacks, sandbox):
    # Between the list and the delete someone touches r-stale: the conditional delete keeps it.
    from stackyard.airflow.hooks.namespaces import StackHook

    hook = StackHook()
    [listed] = [ns for ns in hook.list(S.EPHEMERAL_SELECTOR) if ns.name == "r-stale"]
    hook.annotate("r-stale", S.touch_annotations(datetime.now(timezone.utc)))
    outcomes = hook.delete_each([("r-stale", listed.resource_version)])
    assert outcomes["r-stale"][0] is S.Outcome.CHANGED and alive(local_stack, "r-stale")
