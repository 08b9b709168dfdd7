"""Trust boundaries of personal stacks, with the real stack DAGs on the kube sandbox.

- squatting: a personal stack may not take a registry stack's name or namespace, a system or
  gate namespace, or an existing namespace stackyard did not create; nothing is created;
- look-alikes: ``kube-public`` given the ephemeral labels and an old activity, and a namespace
  created with kubectl carrying the same labels, are never deleted by the reaper or
  ``stack_destroy``; a real stale stack next to them is;
- migration: a stack made by the previous version (its "created" record written just after the
  namespace) is still recognised.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.core import ephemeral as S
from stackyard.adapters.record_store import open_record_store
from stackyard.core.records import StackEvent

from tests.e2e.test_stacks import (  # noqa: F401 (fixtures)
    EPHEMERAL, alive, events, make_namespace, made_by_stackyard, records, remove, run,
)

OLD = S.timestamp(datetime.now(timezone.utc) - timedelta(days=30))


@pytest.fixture
def registry_file(local_stack, tmp_path, monkeypatch):
    path = tmp_path / "stacks.yaml"
    path.write_text(
        "stacks:\n"
        "  stage:\n    owner: team-release\n    type: persistent\n    profile: stage\n    namespace: shop-stage\n"
        "    source: l3\n    services: all\n    triggerers: {roles: [release-managers]}\n"
        "  production:\n    owner: team-release\n    type: production\n    profile: production\n"
        "    source: {healthy_on: stage, for_hours: 24}\n    services: all\n    triggerers: {roles: [prod-deployers]}\n"
    )
    monkeypatch.setenv("STACKYARD_STACKS", str(path))
    return path


@pytest.mark.parametrize("name, message", [
    ("stage", "belongs to the registry stack 'stage'"),
    ("shop-stage", "belongs to the registry stack 'stage'"),
    ("production", "belongs to the registry stack 'production'"),
    ("kube-lookalike", "reserved"),
    ("default", "reserved"),
    ("l3-0123abcd", "reserved"),
    ("squatted", "already exists"),
])
def test_a_personal_stack_cannot_take_a_namespace_it_does_not_own(local_stack, dagbag, registry_file, capfd,
                                                                 name, message):
    if name == "squatted":
        make_namespace(local_stack, name)
    before = _metadata(local_stack, name)  # "default" exists (the sandbox makes it, as a cluster does)
    try:
        state, tasks = run(dagbag, "stack_create", {"name": name, "owner": "mallory"})
        assert state == "failed" and tasks["validate"] == "failed"
        assert tasks["create_namespace"] == "upstream_failed" and tasks["deploy"] == "upstream_failed"
        assert message in capfd.readouterr().out
        assert _metadata(local_stack, name) == before  # nothing created, nothing relabelled or annotated
        assert records(local_stack, f"stacks/{name}/events") == []
    finally:
        if name == "squatted":
            remove(local_stack, name)


def _metadata(local_stack, name):
    """(labels, annotations) of namespace ``name``, or None when there is none."""
    if not alive(local_stack, name):
        return None
    meta = local_stack.core_v1().read_namespace(name).metadata
    return dict(meta.labels or {}), dict(meta.annotations or {})


@pytest.fixture
def lookalikes(local_stack):
    """kube-public made to look like a stale stack, a kubectl look-alike, and one real stale stack
    (plus one made by the previous version: record after the namespace)."""
    core = local_stack.core_v1()
    before = core.read_namespace("kube-public").metadata
    core.patch_namespace("kube-public", {"metadata": {
        "labels": dict(EPHEMERAL), "annotations": {S.ANNOTATION_LAST_ACTIVITY: OLD, S.ANNOTATION_TTL: "1h",
                                                   S.ANNOTATION_CREATED_BY: "stack_create/manual__x"}}})
    make_namespace(local_stack, "lookalike", dict(EPHEMERAL), last_activity=OLD, ttl="1h",
                   **{S.ANNOTATION_CREATED_BY: "stack_create/manual__x"})
    made_by_stackyard(local_stack, "real-stale", EPHEMERAL, {"last_activity": OLD, "ttl": "1h"})
    make_namespace(local_stack, "old-version", dict(EPHEMERAL), last_activity=OLD, ttl="1h",
                   **{S.ANNOTATION_CREATED_BY: "stack_create/manual__old"})
    open_record_store(local_stack.settings.records_url).write(StackEvent(
        event="created", stack="old-version", dag_id="stack_create", run_id="manual__old",
        at=datetime.now(timezone.utc), owner="bob"))
    yield
    core.patch_namespace("kube-public", {"metadata": {"labels": {k: None for k in EPHEMERAL},
                                                      "annotations": {k: None for k in (
                                                          S.ANNOTATION_LAST_ACTIVITY, S.ANNOTATION_TTL,
                                                          S.ANNOTATION_CREATED_BY)}}})
    assert core.read_namespace("kube-public").metadata.labels == before.labels
    for name in ("lookalike", "real-stale", "old-version"):
        remove(local_stack, name)


def test_the_reaper_deletes_only_what_stackyard_provably_created(local_stack, dagbag, lookalikes):
    state, tasks = run(dagbag, "ephemeral_reaper", {})

    assert state == "success", tasks
    assert alive(local_stack, "kube-public") and alive(local_stack, "lookalike")
    assert not alive(local_stack, "real-stale") and not alive(local_stack, "old-version")
    report = records(local_stack, "reaper/runs")[0]
    skipped = {e["name"]: e["reason"] for e in report["skipped"]}
    assert "system namespace" in skipped["kube-public"]
    assert "no record of stackyard creating it" in skipped["lookalike"]
    assert events(local_stack, "real-stale") == ["created", "reaped"]


@pytest.mark.parametrize("name, message", [
    ("kube-public", "is a system namespace"),
    ("lookalike", "no record of stackyard creating it"),
])
def test_stack_destroy_refuses_system_and_look_alike_namespaces(local_stack, dagbag, lookalikes, capfd, name, message):
    state, tasks = run(dagbag, "stack_destroy", {"name": name})
    assert state == "failed" and tasks == {"check": "failed", "destroy": "upstream_failed"}
    assert message in capfd.readouterr().out and alive(local_stack, name)


def test_a_namespace_recreated_after_a_destroy_is_not_the_destroyed_stack(local_stack, dagbag, lookalikes, capfd):
    state, _ = run(dagbag, "stack_destroy", {"name": "real-stale"})
    assert state == "success"
    remove(local_stack, "real-stale")
    make_namespace(local_stack, "real-stale", dict(EPHEMERAL), last_activity=OLD, ttl="1h",
                   **{S.ANNOTATION_CREATED_BY: "stack_create/manual__test"})  # the old run's name, copied
    state, tasks = run(dagbag, "stack_destroy", {"name": "real-stale"})
    assert state == "failed" and "newest record is 'destroyed'" in capfd.readouterr().out
    assert alive(local_stack, "real-stale")


def test_a_stack_made_and_destroyed_leaves_no_plaintext_in_airflow(local_stack, dagbag, sops_bin):
    """The real stack_create (decrypting the ephemeral secrets) then stack_destroy; afterwards the
    session's whole AIRFLOW_HOME (metadata DB with XCom and rendered fields, logs) and the state
    folder hold none of the example plaintexts."""
    from tests.conftest import SESSION_AIRFLOW_HOME
    from tests.e2e.test_faults import scan
    from tests.support.secrets import example_plaintexts

    local_stack.seed()
    state, tasks = run(dagbag, "stack_create", {"name": "owned", "owner": "alice"})
    try:
        assert state == "success", tasks
        created = [e for e in records(local_stack, "stacks/owned/events") if e["event"] == "created"]
        assert created and created[0]["owner"] == "alice"  # no signed-in user under dags test: the form's
        state, _ = run(dagbag, "stack_destroy", {"name": "owned"})
        assert state == "success"
    finally:
        remove(local_stack, "owned")
    plaintexts = example_plaintexts(sops_bin)
    assert len(plaintexts) >= 6
    assert scan(SESSION_AIRFLOW_HOME, plaintexts) == []
    assert scan(local_stack.settings.home, plaintexts) == []
