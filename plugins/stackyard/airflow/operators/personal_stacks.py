"""Tasks of the stack DAGs (stack_create, stack_destroy, stack_touch) and the nightly reaper.

Each opens what it needs from settings and connections and delegates to :mod:`stackyard.steps.personal_stacks`
and :mod:`stackyard.core.ephemeral`. Requests are checked before anything changes: bad input
fails the first task without retries, naming the field. Lifecycle events go to the record
stream ``stacks/<stack>/events``, reaper reports to ``reaper/runs``; XCom carries names, pins
and verdicts, never values.
"""

from __future__ import annotations

import logging

from pathlib import Path
from typing import Any

import yaml
from airflow.sdk import get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from stackyard.adapters import metrics
from stackyard.adapters.helm import sweep_leftovers

from stackyard.airflow import notify
from stackyard.airflow.run_notes import record_note
from stackyard.core.run_notes import stack_note
from stackyard.steps import personal_stacks as stack_steps
from stackyard.core import ephemeral as rules
from stackyard.core.cluster_objects import stack_release
from stackyard.core.records import ReaperReport, StackEvent, events_stream
from stackyard.exceptions import ConflictError, InputError
from stackyard.airflow.hooks.helm import HelmHook
from stackyard.airflow.hooks.namespaces import StackHook
from stackyard.airflow.stores import manifest_store_for, record_store_for, registry_for
from stackyard.steps.publishing import load_umbrella_template
from stackyard.settings import Settings
from stackyard.airflow.operators._base import non_retryable
from stackyard.airflow.operators._context import (
    is_admin, past_slot_reason, pulled, record_event, triggering_user, utc_now,
)

log = logging.getLogger(__name__)
#: Every night at 03:00 UTC (dags/ephemeral_reaper.py); a run for an older slot changes nothing.
REAPER_SCHEDULE = "0 3 * * *"
PLAN = "{{ ti.xcom_pull(task_ids='validate') }}"




def _stack_hook() -> StackHook:
    return StackHook(Settings.from_env().kubernetes_conn_id)


def stack_events(name: str) -> list[StackEvent]:
    """The stack's record stream, newest first (what proves stackyard created it). A record that
    is not a valid event is left out (logged): it proves nothing."""
    stored = record_store_for(Settings.from_env()).read(
        events_stream(name), StackEvent, on_invalid=lambda key, error: log.warning("%s left out: %s", key, error))
    return [item.record for item in stored]


def _created_by() -> str:
    context = get_current_context()
    return f"{context['dag'].dag_id}/{context['run_id']}"


# --- stack_create ---------------------------------------------------------------------------------


@task(retries=0)
def validate() -> dict[str, Any]:
    """Check every parameter, the name's availability, the manifest and each override.

    The owner is the signed-in user who triggered the run; the form's owner only when no user is
    known (``airflow dags test``). The name may not be a registry stack's, a system or gate
    namespace, or any namespace that exists and this run did not create."""
    context = get_current_context()
    params = dict(context["params"])
    settings = Settings.from_env()
    user = triggering_user(context)
    if user is not None:
        if params.get("owner") and params["owner"] != user:
            print(f"owner: the stack belongs to {user}, who triggered this run (the form said {params['owner']!r})")
        params["owner"] = user
    with non_retryable():
        request = stack_steps.StackRequest.from_params(params)
        rules.refuse_reserved_name(request.name, stack_steps.registry_reserved(settings.stacks_file))
        existing = _stack_hook().get(request.name)
        if existing is not None and existing.annotations.get(rules.ANNOTATION_CREATED_BY) != _created_by():
            owner = existing.annotations.get(rules.ANNOTATION_OWNER) or "unknown owner"
            raise InputError(
                f"name: a namespace {request.name!r} already exists (stack type {existing.stack_type or 'none'}, "
                f"{owner}); choose another name"
            )
        with HelmHook(None, plain_http=settings.registry_plain_http).helm() as helm:
            plan = stack_steps.resolve(request, store=manifest_store_for(settings), registry=registry_for(settings, helm))
    changes = ", ".join(f"{s} {c['from'] or '(new)'} -> {c['to']}" for s, c in plan.overrides.items())
    print(f"stack {plan.name} for {plan.owner}: L3 v{plan.manifest.version}"
          f"{' with ' + changes if changes else ''}, profile {plan.profile}, TTL {rules.format_ttl(plan.ttl)}")
    return plan.to_dict()


@task
def build_umbrella(plan: dict[str, Any]) -> dict[str, str]:
    settings = Settings.from_env()
    with non_retryable():
        with HelmHook(None, plain_http=settings.registry_plain_http).helm() as helm:
            built = stack_steps.publish_package(
                stack_steps.StackPlan.from_dict(plan), registry=registry_for(settings, helm),
                template=load_umbrella_template(settings.umbrella_template_dir),
            )
    print(f"stack umbrella {built['chart_ref']} {built['digest']}")
    return built


@task
def create_namespace(plan: dict[str, Any]) -> dict[str, str]:
    """The namespace with stackyard's labels and annotations: all the reaper needs to remove it."""
    stack = stack_steps.StackPlan.from_dict(plan)
    metadata = rules.ephemeral_stack_metadata(
        owner=stack.owner, purpose=rules.Purpose.PERSONAL, manifest_version=stack.manifest.version,
        created=utc_now(), ttl=stack.ttl, created_by=_created_by(),
    )
    hook = _stack_hook()
    # Recorded before the namespace exists: the record is the proof (for the reaper and
    # stack_destroy) that stackyard made it; an unwritable store stops here, with nothing made.
    record_event(stack.name, "created", owner=stack.owner, manifest_version=stack.manifest.version,
                 overrides=dict(stack.overrides), profile=stack.profile, ttl=rules.format_ttl(stack.ttl))
    with non_retryable():
        try:
            created = hook.create(stack.name, metadata)
        except ConflictError as exc:
            raise InputError(f"name: {exc}") from None
        if not created:
            existing = hook.get(stack.name)
            if existing is None or existing.annotations.get(rules.ANNOTATION_CREATED_BY) != _created_by():
                raise InputError(f"name: stack {stack.name!r} was just created by another run")
    print(f"{'created' if created else 'reusing (retry of this run)'} namespace {stack.name}")
    return {"namespace": stack.name, "release": stack_release(stack.name)}


@task
def ready(plan: dict[str, Any], built: dict[str, str], deployed: dict[str, Any]) -> dict[str, Any]:
    """Mark activity, record the deployment and tell the user how to reach the stack."""
    stack = stack_steps.StackPlan.from_dict(plan)
    _stack_hook().annotate(stack.name, rules.touch_annotations(utc_now()))
    record_event(stack.name, "ready", owner=stack.owner, chart_ref=built["chart_ref"], digest=built["digest"],
                 release=deployed["release"], revision=deployed["revision"], values_digest=deployed["values_digest"])
    print(stack_steps.access_instructions(name=stack.name, release=deployed["release"], context=_kube_context()))
    record_note(get_current_context(), stack_note("created", stack.name, manifest_version=stack.manifest.version,
                                                  overrides=stack.overrides) + f" ({built['chart_ref']})")
    return {"namespace": stack.name, "release": deployed["release"], "chart_ref": built["chart_ref"],
            "context": _kube_context()}


@task(trigger_rule="one_failed", retries=1)
def clean_up_failed() -> dict[str, Any]:
    """A stack that did not become ready is removed, so the name is free for another try."""
    made = pulled("create_namespace")
    if not made:
        raise AirflowSkipException("no namespace was created by this run")
    name = made["namespace"]
    _remove(name)
    record_event(name, "destroyed", reason="stack_create failed (see its deploy log)")
    print(f"stack_create failed; removed the half-made stack {name}")
    record_note(get_current_context(), f"{name}: create failed; the half-made stack was removed")
    return {"removed": name}


def _kube_context() -> str | None:
    """The kubectl context users should pass: the connection's, else its kubeconfig's current one."""
    hook = HelmHook(Settings.from_env().kubernetes_conn_id)
    extras = hook.extras
    if extras.get("cluster_context"):
        return extras["cluster_context"]
    path = extras.get("kube_config_path")
    try:
        return (yaml.safe_load(Path(path).read_text()) or {}).get("current-context") if path else None
    except (OSError, yaml.YAMLError):
        return None


def _remove(name: str) -> list[str]:
    """Uninstall every release in the stack (runs helm's hooks, removes cluster-wide objects),
    then delete the namespace. Both are no-ops when already gone."""
    settings = Settings.from_env()
    with HelmHook(settings.kubernetes_conn_id).helm() as helm:
        releases = [release.name for release in helm.list(namespace=name)]
        for release in releases:
            helm.uninstall(release, namespace=name)
    StackHook(settings.kubernetes_conn_id).delete(name)
    return releases


# --- stack_destroy / stack_touch ------------------------------------------------------------------


@task(retries=0)
def check_ephemeral(action: str) -> dict[str, Any]:
    """The named stack, if stackyard provably created it and the triggering user owns it (or is an
    admin); otherwise fail, changing nothing. Never a system or registry namespace."""
    context = get_current_context()
    params = context["params"]
    settings = Settings.from_env()
    user = triggering_user(context)
    with non_retryable():
        name = rules.validate_stack_name(params.get("name"))
        ttl_days = params.get("ttl_days")
        ttl = None if ttl_days is None else rules.ttl_from_days(ttl_days)
        reason = rules.never_deleted_reason(name, stack_steps.registry_reserved(settings.stacks_file))
        if reason:
            raise InputError(f"name: {reason}; {action} only applies to stacks stackyard created. Nothing was changed.")
        stack = rules.require_ephemeral(_stack_hook().get(name), name, action)
        record, why = rules.creation_record(stack, stack_events(name))
        if record is None:
            raise InputError(f"name: {name!r} is labelled as a stackyard stack but {why}; {action} only applies to "
                             "stacks stackyard created. Nothing was changed.")
        rules.may_act_on(record, user=user, admin=is_admin(user), action=action, name=name)
    print(f"stack {name}: {why}, owner {record.owner}; {action} by {user or 'a shell user (no signed-in user)'}")
    return {
        "namespace": stack.name, "owner": record.owner,
        "purpose": stack.labels.get(rules.LABEL_PURPOSE), "ttl_days": ttl.days if ttl else None,
    }


@task
def destroy(stack: dict[str, Any]) -> dict[str, Any]:
    name = stack["namespace"]
    releases = _remove(name)
    record_event(name, "destroyed", owner=stack.get("owner"), releases=releases)
    print(f"destroyed stack {name} (releases uninstalled: {', '.join(releases) or 'none'})")
    record_note(get_current_context(), stack_note("destroyed", name, releases=releases))
    return {"namespace": name, "releases": releases}


@task
def touch(stack: dict[str, Any]) -> dict[str, Any]:
    name, now = stack["namespace"], utc_now()
    ttl = rules.ttl_from_days(stack["ttl_days"]) if stack.get("ttl_days") else None
    _stack_hook().annotate(name, rules.touch_annotations(now, ttl))
    current = _stack_hook().get(name)
    ttl_text = (current.annotations.get(rules.ANNOTATION_TTL) if current else None) or rules.format_ttl(rules.DEFAULT_TTL)
    record_event(name, "touched", owner=stack.get("owner"), ttl=ttl_text)
    record_note(get_current_context(), stack_note("touched", name, ttl=ttl_text))
    print(f"stack {name}: last activity {rules.timestamp(now)}, TTL {ttl_text}")
    return {"namespace": name, "last_activity": rules.timestamp(now), "ttl": ttl_text}


# --- ephemeral_reaper -----------------------------------------------------------------------------


@task
def plan_reaping() -> dict[str, Any]:
    """One list call, then the pure decision; the cap is checked before anything is deleted."""
    context = get_current_context()
    params, ti = context["params"], context["ti"]
    for path in sweep_leftovers():
        log.warning("removed %s, left behind by a killed task", path)
    stale = past_slot_reason(context, REAPER_SCHEDULE)
    if stale:
        ti.xcom_push(key="past_slot", value=stale)
        raise AirflowSkipException(stale)
    namespaces = _stack_hook().list(rules.EPHEMERAL_SELECTOR)
    now = utc_now()
    registry = stack_steps.registry_reserved(Settings.from_env().stacks_file)
    due = [ns for ns in namespaces if rules.decide(ns, now).action is rules.Action.DELETE]
    verdicts = rules.plan(namespaces, now, registry=registry, proofs={ns.name: _proof(ns) for ns in due})
    for verdict in verdicts:
        for warning in verdict.warnings:
            log.warning("%s: %s", verdict.name, warning)
        print(f"{verdict.action.value:6} {verdict.name}: {verdict.reason}")
    ti.xcom_push(key="verdicts", value=[v.to_dict() for v in verdicts])
    try:
        deletions = rules.check_cap(verdicts, params["max_deletions"])
    except (rules.DeletionCapExceeded, InputError) as exc:
        ti.xcom_push(key="error", value=str(exc))
        raise AirflowFailException(str(exc)) from None
    return {"delete": [[v.name, v.resource_version, v.reason] for v in deletions], "dry_run": bool(params["dry_run"])}


def _proof(ns: rules.NamespaceSummary) -> tuple[rules.CreationRecord | None, str]:
    try:
        return rules.creation_record(ns, stack_events(ns.name))
    except Exception as exc:  # an unreadable store proves nothing: the stack is kept this run
        return None, f"its records could not be read ({type(exc).__name__}: {exc})"


@task(retries=0)  # per-stack failures are reported, not raised: report fails the run
def reap(planned: dict[str, Any]) -> dict[str, Any]:
    if planned["dry_run"]:
        raise AirflowSkipException(f"dry run: would delete {len(planned['delete'])} stack(s)")
    reasons = {name: reason for name, _, reason in planned["delete"]}
    outcomes = _stack_hook().delete_each((name, rv) for name, rv, _ in planned["delete"])
    for name, (outcome, detail) in sorted(outcomes.items()):
        print(f"{outcome.value:8} {name}: {detail}")
        if outcome in (rules.Outcome.DELETED, rules.Outcome.GONE):
            record_event(name, "reaped", outcome=outcome.value, reason=reasons[name])
    return {name: [outcome.value, detail] for name, (outcome, detail) in outcomes.items()}


def _announce(result: ReaperReport) -> None:
    """Metrics for every run; warnings to owners whose stack goes within a day; alert on failure."""
    if not result.dry_run:
        metrics.stacks_reaped(result.counts.deleted)
        metrics.live_ephemeral_stacks(result.counts.kept)
    for entry in notify.expiring(result.kept):
        notify.send(notify.stack_expiring(entry.name, owner=entry.owner, seconds_left=entry.time_left_seconds,
                                          ttl=entry.ttl, dag_id=result.dag_id, run_id=result.run_id))
    if result.error or result.failed:
        notify.send(notify.reaper_failed(result))


@task(trigger_rule="all_done", retries=0)
def report() -> dict[str, Any]:
    """The run's report, kept in ``reaper/runs``; the run fails if the cap stopped it or any
    deletion failed."""
    context = get_current_context()
    params = context["params"]
    if pulled("plan_reaping", "past_slot"):
        raise AirflowSkipException(pulled("plan_reaping", "past_slot"))
    verdicts = [rules.Verdict.from_dict(v) for v in (pulled("plan_reaping", "verdicts") or [])]
    outcomes = {name: (rules.Outcome(o), detail) for name, (o, detail) in (pulled("reap") or {}).items()}
    error = pulled("plan_reaping", "error")
    if error is None and pulled("plan_reaping") is None:
        error = "listing the namespaces failed: see the plan_reaping log"
    result = rules.reaper_report(verdicts, outcomes, now=utc_now(), dry_run=bool(params["dry_run"]),
                                 max_deletions=params["max_deletions"], dag_id=context["dag"].dag_id,
                                 run_id=context["run_id"], error=error)
    record_store_for(Settings.from_env()).write(result)
    _announce(result)
    counts = result.counts
    record_note(context, f"reaper: deleted {counts.deleted}, would delete {counts.would_delete}, "
                         f"kept {counts.kept}{', failed ' + str(len(result.failed)) if result.failed else ''}"
                         f"{' (dry run)' if result.dry_run else ''}{': ' + result.error if result.error else ''}")
    print(f"reaper: deleted {counts.deleted}, would delete {counts.would_delete}, kept {counts.kept}, "
          f"skipped {counts.skipped}, failed {counts.failed}{' (dry run)' if result.dry_run else ''}")
    for entry in result.kept:
        print(f"  kept {entry.name}: {entry.reason}")
    if error:
        raise AirflowFailException(f"reaper: {error}")
    if result.failed:
        failed = ", ".join(f"{e.name} ({e.detail})" for e in result.failed)
        raise AirflowFailException(f"reaper: {counts.failed} deletion(s) failed: {failed}")
    return result.to_json()
