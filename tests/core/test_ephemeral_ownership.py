"""Who may take, touch and delete a personal stack: names, creation records, owners."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.core import ephemeral as S
from stackyard.core.records import StackEvent
from stackyard.exceptions import InputError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
REGISTRY = {"stage": "stage", "shop-stage": "stage", "production": "production"}
EPHEMERAL = {S.LABEL_MANAGED_BY: S.MANAGED_BY, S.LABEL_STACK_TYPE: "ephemeral"}


def ns(name="alice-dev", created=NOW, created_by="stack_create/manual__1", **annotations):
    return S.NamespaceSummary(name, dict(EPHEMERAL), {S.ANNOTATION_CREATED_BY: created_by, **annotations}, created)


def created(at=NOW, run="manual__1", owner="alice", event="created"):
    return StackEvent(event=event, stack="alice-dev", dag_id="stack_create", run_id=run, at=at, owner=owner)


@pytest.mark.parametrize("name, why", [
    ("stage", "registry stack 'stage'"), ("shop-stage", "registry stack 'stage'"),
    ("production", "registry stack 'production'"), ("kube-public", "system namespace"),
    ("default", "system namespace"), ("l3-0badc0de", "L3 gate stack"),
])
def test_reserved_names_are_refused(name, why):
    with pytest.raises(InputError, match=why):
        S.refuse_reserved_name(name, REGISTRY)


def test_a_free_name_passes():
    S.refuse_reserved_name("alice-dev", REGISTRY)


def test_gate_stacks_may_be_deleted_but_system_and_registry_namespaces_never():
    assert S.never_deleted_reason("l3-0badc0de", REGISTRY) is None
    assert "system" in S.never_deleted_reason("kube-system", REGISTRY)
    assert "registry" in S.never_deleted_reason("shop-stage", REGISTRY)


def test_a_creation_record_by_the_annotated_run_proves_the_namespace():
    record, why = S.creation_record(ns(created=NOW + timedelta(seconds=2)), [created()])
    assert record is not None and record.owner == "alice" and "stack_create/manual__1" in why


def test_a_record_written_just_after_the_namespace_proves_it_too():  # the previous version's order
    record, _ = S.creation_record(ns(created=NOW - timedelta(seconds=1)), [created()])
    assert record is not None


@pytest.mark.parametrize("namespace, events, why", [
    (ns(), [], "no record"),
    (ns(), [created(event="destroyed"), created()], "newest record is 'destroyed'"),
    (ns(), [created(event="reaped"), created()], "newest record is 'reaped'"),
    (ns(created_by="stack_create/other"), [created()], "created-by annotation"),
    (ns(created=NOW + timedelta(hours=2)), [created()], "not by the run recorded"),
    (ns(created=NOW - timedelta(days=3)), [created()], "not by the run recorded"),
    (ns(created=None), [created()], "unknown time"),
])
def test_labels_without_a_matching_record_prove_nothing(namespace, events, why):
    record, reason = S.creation_record(namespace, events)
    assert record is None and why in reason


def test_only_the_owner_or_an_admin_may_act_unless_no_user_is_known():
    record = S.CreationRecord("alice", "stack_create/manual__1", NOW)
    S.may_act_on(record, user="alice", admin=False, action="destroy", name="alice-dev")
    S.may_act_on(record, user="root", admin=True, action="destroy", name="alice-dev")
    S.may_act_on(record, user=None, admin=False, action="destroy", name="alice-dev")
    with pytest.raises(InputError, match="belongs to alice; mallory may not destroy it"):
        S.may_act_on(record, user="mallory", admin=False, action="destroy", name="alice-dev")


def test_the_reaper_skips_unproven_and_protected_namespaces():
    stale = {S.ANNOTATION_LAST_ACTIVITY: S.timestamp(NOW - timedelta(days=30)), S.ANNOTATION_TTL: "1d"}
    real = ns("real", created=NOW - timedelta(days=40), **stale)
    fake = ns("fake", created=NOW - timedelta(days=40), **stale)
    public = ns("kube-public", created=NOW - timedelta(days=40), **stale)
    proofs = {"real": (S.CreationRecord("alice", "x/y", NOW), "ok"), "fake": (None, "no record")}
    verdicts = {v.name: v for v in S.plan([real, fake, public], NOW, registry=REGISTRY, proofs=proofs)}
    assert verdicts["real"].action is S.Action.DELETE
    assert verdicts["fake"].action is S.Action.SKIP and "not proven" in verdicts["fake"].reason
    assert verdicts["kube-public"].action is S.Action.SKIP and "system namespace" in verdicts["kube-public"].reason
