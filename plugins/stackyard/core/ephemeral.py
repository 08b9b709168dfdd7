"""Stacks as Kubernetes namespaces: the labels and annotations that describe them, and the
nightly reaper's decision.

A stack is a namespace that stackyard labels. Labels select (the reaper lists with one label
selector); annotations carry values labels cannot hold (timestamps). These keys are the contract
between the gate, ``stack_create``, the reaper and the Stacks view: defined here only.

Pure: no Airflow, no Kubernetes client, no clock. Callers pass ``now`` in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

from stackyard.core import names
from stackyard.core.records import EventKind, ReaperCounts, ReaperEntry, ReaperReport, StackEvent
from stackyard.core.times import format_utc, parse_utc
from stackyard.exceptions import InputError, StackyardError

PREFIX = "stackyard.io"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "stackyard"
LABEL_STACK_TYPE = f"{PREFIX}/stack-type"
LABEL_PURPOSE = f"{PREFIX}/purpose"
LABEL_OWNER = f"{PREFIX}/owner"
LABEL_MANIFEST_VERSION = f"{PREFIX}/manifest-version"
ANNOTATION_CREATED = f"{PREFIX}/created"
ANNOTATION_LAST_ACTIVITY = f"{PREFIX}/last-activity"
ANNOTATION_TTL = f"{PREFIX}/ttl"
ANNOTATION_CREATED_BY = f"{PREFIX}/created-by"
ANNOTATION_OWNER = f"{PREFIX}/owner"

DEFAULT_TTL = timedelta(days=7)
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_TTL = re.compile(r"(\d+)([dh])")


class StackType(str, Enum):
    EPHEMERAL = "ephemeral"
    PERSISTENT = "persistent"
    PRODUCTION = "production"


class Purpose(str, Enum):
    L3_GATE = "l3-gate"
    PERSONAL = "personal"


@dataclass(frozen=True)
class StackMetadata:
    labels: dict[str, str]
    annotations: dict[str, str]


def validate_stack_name(name: str) -> str:
    return names.stack_name(name, "stack name")


#: Names a personal stack may not take: the gate's ``l3-<id>`` stacks and the cluster's own.
RESERVED_PREFIXES = ("l3-", "kube-", "openshift-")
RESERVED_NAMES = frozenset({"default", "l3"})


def validate_personal_stack_name(name: object) -> str:
    """A name for ``stack_create``: a DNS-1123 label that no gate stack or system namespace uses."""
    validate_stack_name(name)  # type: ignore[arg-type]
    if name in RESERVED_NAMES or str(name).startswith(RESERVED_PREFIXES):
        raise InputError(
            f"name: {name!r} is reserved (names starting with {', '.join(RESERVED_PREFIXES)} "
            f"and {', '.join(sorted(RESERVED_NAMES))} belong to the L3 gate or the cluster)"
        )
    return name  # type: ignore[return-value]


#: Namespaces the cluster owns: never a personal stack, never deleted by stackyard, whatever labels say.
SYSTEM_NAMESPACES = frozenset({"default"})
SYSTEM_PREFIXES = ("kube-", "openshift-")
GATE_PREFIX = "l3-"
#: How long after its "created" record a namespace may appear and still be that record's
#: (create_namespace retries in between).
CREATE_WINDOW = timedelta(hours=1)
LIFECYCLE_EVENTS = ("created", "destroyed", "reaped")


def is_system_namespace(name: str) -> bool:
    return name in SYSTEM_NAMESPACES or name.startswith(SYSTEM_PREFIXES)


def never_deleted_reason(name: str, registry: Mapping[str, str]) -> str | None:
    """Why stackyard must never delete ``name`` (a system or registry namespace); None otherwise.

    ``registry`` maps every namespace and stack name of the stack registry to its stack."""
    if is_system_namespace(name):
        return f"{name!r} is a system namespace"
    if name in registry:
        return f"{name!r} belongs to the registry stack {registry[name]!r} (include/stacks.yaml)"
    return None


def refuse_reserved_name(name: str, registry: Mapping[str, str]) -> None:
    """InputError when a personal stack may not take ``name``: a system namespace, a registry
    stack's name or namespace, or the gate's ``l3-*`` (besides :func:`validate_personal_stack_name`)."""
    reason = never_deleted_reason(name, registry)
    if reason is None and name.startswith(GATE_PREFIX):
        reason = f"{name!r} is an L3 gate stack name ({GATE_PREFIX}*)"
    if reason:
        raise InputError(f"name: {reason}; a personal stack cannot take it. Nothing was changed.")


@dataclass(frozen=True)
class CreationRecord:
    """The "created" record stackyard wrote for a stack, in ``stacks/<name>/events``."""

    owner: str | None
    created_by: str  # dag_id/run_id, as in the namespace's created-by annotation
    at: datetime


def creation_record(ns: NamespaceSummary, events: Sequence[StackEvent]) -> tuple[CreationRecord | None, str]:
    """(the record proving stackyard created ``ns``, why) — or (None, why not).

    ``events`` is the stack's record stream, newest first. Labels and annotations anyone can
    write; the record store only stackyard does. Proven when the newest lifecycle record is
    "created", by the run the namespace names in its created-by annotation, and the namespace
    appeared within :data:`CREATE_WINDOW` after it (a namespace made after a destroy or a reap is
    another one)."""
    lifecycle = [e for e in events if e.event.value in LIFECYCLE_EVENTS]
    if not lifecycle:
        return None, f"no record of stackyard creating it (stacks/{ns.name}/events)"
    newest = lifecycle[0]
    if newest.event is not EventKind.CREATED:
        return None, f"its newest record is {newest.event.value!r} at {timestamp(newest.at)}: this namespace came after"
    created_by = f"{newest.dag_id}/{newest.run_id}"
    if ns.annotations.get(ANNOTATION_CREATED_BY) != created_by:
        return None, (f"its created-by annotation {ns.annotations.get(ANNOTATION_CREATED_BY)!r} is not the run that "
                      f"created it ({created_by})")
    at = newest.at
    created = _aware(ns.created)
    if created is None or not (at - CLOCK_SKEW <= created <= at + CREATE_WINDOW):
        return None, (f"the namespace was created at {timestamp(created) if created else 'an unknown time'}, "
                      f"not by the run recorded at {timestamp(at)}")
    return CreationRecord(newest.owner, created_by, at), f"created by {created_by}"


def may_act_on(record: CreationRecord, *, user: str | None, admin: bool, action: str, name: str) -> None:
    """Only the stack's owner or an admin may touch or destroy it; ``user`` None: no
    authenticated user is known (``airflow dags test`` by an operator with shell access)."""
    if user is None or admin or user == record.owner:
        return
    raise InputError(f"name: stack {name!r} belongs to {record.owner or 'an unknown owner'}; {user} may not "
                     f"{action} it (only its owner or an admin). Nothing was changed.")


def label_value(value: str) -> str:
    """``value`` made safe for a label (63 chars, alphanumerics, '-', '_', '.'); the full value
    also goes into an annotation where it matters (the owner)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", value)[:63].strip("-_.")
    return cleaned if _LABEL_VALUE.fullmatch(cleaned) else ""


def format_ttl(ttl: timedelta) -> str:
    hours = int(ttl.total_seconds() // 3600)
    return f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h"


def parse_ttl(text: str) -> timedelta:
    """``7d`` or ``36h``; anything else raises InputError (the reaper then keeps the stack)."""
    match = _TTL.fullmatch(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise InputError(f"TTL {text!r} is not like '7d' or '36h'")
    amount = int(match.group(1))
    try:
        return timedelta(days=amount) if match.group(2) == "d" else timedelta(hours=amount)
    except OverflowError:
        raise InputError(f"TTL {text!r} is too large") from None


MAX_TTL_DAYS = 90


def ttl_from_days(days: object) -> timedelta:
    """The ``ttl_days`` parameter of stack_create/stack_touch: a whole number of days, 1 to 90."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TTL_DAYS:
        raise InputError(f"ttl_days: expected a whole number of days from 1 to {MAX_TTL_DAYS}, got {days!r}")
    return timedelta(days=days)


def parse_timestamp(text: object) -> datetime:
    """An annotation timestamp (``2024-05-01T03:00:00Z`` or any ISO 8601 with an offset) in UTC."""
    return parse_utc(text, "timestamp")


def timestamp(moment: datetime) -> str:
    """How annotations write a moment: RFC 3339 in UTC, to the second (``...T03:00:00Z``)."""
    return format_utc(moment)


def ephemeral_stack_metadata(
    *, owner: str, purpose: Purpose, manifest_version: int, created: datetime,
    ttl: timedelta = DEFAULT_TTL, created_by: str = "",
) -> StackMetadata:
    """Labels and annotations of a new ephemeral stack: everything the reaper needs to remove it."""
    return StackMetadata(
        labels={
            LABEL_MANAGED_BY: MANAGED_BY,
            LABEL_STACK_TYPE: StackType.EPHEMERAL.value,
            LABEL_PURPOSE: purpose.value,
            LABEL_OWNER: label_value(owner) or "unknown",
            LABEL_MANIFEST_VERSION: str(manifest_version),
        },
        annotations={
            ANNOTATION_CREATED: timestamp(created),
            ANNOTATION_LAST_ACTIVITY: timestamp(created),
            ANNOTATION_TTL: format_ttl(ttl),
            ANNOTATION_OWNER: owner,
            ANNOTATION_CREATED_BY: created_by,
        },
    )


def gate_stack_name(candidate_id: str) -> str:
    """The gate's ephemeral stack for a candidate: ``l3-<first 8 of its id>``."""
    return f"l3-{candidate_id[:8]}"


# --- stacks as the cluster shows them ------------------------------------------------------------

#: The one list the reaper makes: every namespace stackyard labelled ephemeral. The decision below
#: checks these labels again, so a server that ignored the selector still could not widen it.
EPHEMERAL_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_STACK_TYPE}={StackType.EPHEMERAL.value}"
TERMINATING = "Terminating"
#: A last-activity this far ahead of ``now`` is not believed (clock skew tolerated, a "keep
#: forever" annotation is not): the creation time is used instead.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class NamespaceSummary:
    """What the reaper and the stack DAGs read of a namespace."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None  # metadata.creationTimestamp, set by the API server
    phase: str | None = None
    resource_version: str | None = None

    @property
    def stack_type(self) -> str | None:
        return self.labels.get(LABEL_STACK_TYPE)

    @property
    def is_stackyard_ephemeral(self) -> bool:
        return (self.labels.get(LABEL_MANAGED_BY) == MANAGED_BY
                and self.labels.get(LABEL_STACK_TYPE) == StackType.EPHEMERAL.value)


def require_ephemeral(stack: NamespaceSummary | None, name: str, action: str) -> NamespaceSummary:
    """The stack, if stackyard created it as ephemeral; otherwise an InputError saying why not."""
    if stack is None:
        raise InputError(f"name: there is no stack {name!r} on the cluster")
    if not stack.is_stackyard_ephemeral:
        kind = stack.stack_type if stack.labels.get(LABEL_MANAGED_BY) == MANAGED_BY else None
        what = f"a {kind} stack" if kind else "not labelled as a stackyard stack"
        raise InputError(
            f"name: {name!r} is {what}; {action} only applies to ephemeral stacks "
            f"({LABEL_MANAGED_BY}={MANAGED_BY}, {LABEL_STACK_TYPE}={StackType.EPHEMERAL.value}). Nothing was changed."
        )
    return stack


def touch_annotations(now: datetime, ttl: timedelta | None = None) -> dict[str, str]:
    """The patch that marks activity on a stack (and optionally sets a new TTL)."""
    annotations = {ANNOTATION_LAST_ACTIVITY: timestamp(now)}
    if ttl is not None:
        annotations[ANNOTATION_TTL] = format_ttl(ttl)
    return annotations


# --- the reaper's decision ----------------------------------------------------------------------


class Action(str, Enum):
    DELETE = "delete"
    KEEP = "keep"
    SKIP = "skip"  # never deleted by this rule set, whatever the clock says (reason says why)


@dataclass(frozen=True)
class Verdict:
    """What the reaper decided about one namespace, and why."""

    name: str
    action: Action
    reason: str
    last_activity: datetime | None = None
    ttl: timedelta | None = None
    time_left: timedelta | None = None  # KEEP only
    warnings: tuple[str, ...] = ()
    resource_version: str | None = None  # the delete is conditional on it: a touch in between wins
    owner: str | None = None  # who gets the "about to be reaped" warning

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action.value,
            "reason": self.reason,
            "last_activity": timestamp(self.last_activity) if self.last_activity else None,
            "ttl": format_ttl(self.ttl) if self.ttl else None,
            "time_left_seconds": int(self.time_left.total_seconds()) if self.time_left is not None else None,
            "time_left": format_duration(self.time_left) if self.time_left is not None else None,
            "warnings": list(self.warnings),
            "resource_version": self.resource_version,
            "owner": self.owner,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Back from :meth:`to_dict` (verdicts travel between tasks as XCom)."""
        seconds = data.get("time_left_seconds")
        return cls(
            name=data["name"], action=Action(data["action"]), reason=data["reason"],
            last_activity=parse_timestamp(data["last_activity"]) if data.get("last_activity") else None,
            ttl=parse_ttl(data["ttl"]) if data.get("ttl") else None,
            time_left=timedelta(seconds=seconds) if seconds is not None else None,
            warnings=tuple(data.get("warnings") or ()), resource_version=data.get("resource_version"),
            owner=data.get("owner"),
        )


def format_duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d{hours}h" if days else f"{hours}h{rest // 60}m"


def decide(ns: NamespaceSummary, now: datetime) -> Verdict:
    """Delete ``ns`` only if stackyard labelled it ephemeral and its last activity is older than
    its TTL. The rules, in order:

    1. not labelled ``managed-by=stackyard`` and ``stack-type=ephemeral`` → skip (persistent,
       production and unlabelled namespaces are never touched, whatever their annotations say);
    2. already terminating → skip;
    3. TTL annotation missing → the default (7d), with a warning; present but unparseable → skip
       ("do not delete"), with a warning;
    4. last-activity missing, unparseable or in the future → the namespace's creation time, with a
       warning; no usable time at all → skip;
    5. inactive for longer than the TTL → delete; otherwise keep, with the time left.
    """
    rv = ns.resource_version
    if not ns.is_stackyard_ephemeral:
        return Verdict(ns.name, Action.SKIP, f"not a stackyard ephemeral stack (stack-type={ns.stack_type!r})",
                       resource_version=rv)
    if ns.phase == TERMINATING:
        return Verdict(ns.name, Action.SKIP, "already terminating", resource_version=rv)
    warnings: list[str] = []
    raw_ttl = ns.annotations.get(ANNOTATION_TTL)
    if raw_ttl is None:
        ttl = DEFAULT_TTL
        warnings.append(f"no {ANNOTATION_TTL} annotation; using the default {format_ttl(DEFAULT_TTL)}")
    else:
        try:
            ttl = parse_ttl(raw_ttl)
        except InputError:
            warning = f"{ANNOTATION_TTL} {raw_ttl!r} does not parse; not deleting"
            return Verdict(ns.name, Action.SKIP, warning, warnings=(warning,), resource_version=rv)
    created = _aware(ns.created)
    activity = _last_activity(ns.annotations.get(ANNOTATION_LAST_ACTIVITY), now, warnings)
    if activity is None:
        if created is None:
            return Verdict(ns.name, Action.SKIP, "no usable last-activity and no creation time; not deleting",
                           ttl=ttl, warnings=tuple(warnings), resource_version=rv)
        warnings.append("using the namespace's creation time instead")
        activity = created
    idle = now - activity
    owner = ns.annotations.get(ANNOTATION_OWNER) or ns.labels.get(LABEL_OWNER)
    if idle > ttl:
        return Verdict(ns.name, Action.DELETE, f"idle {format_duration(idle)}, longer than its TTL {format_ttl(ttl)}",
                       last_activity=activity, ttl=ttl, warnings=tuple(warnings), resource_version=rv, owner=owner)
    left = ttl - idle
    return Verdict(ns.name, Action.KEEP, f"{format_duration(left)} left of its TTL {format_ttl(ttl)}",
                   last_activity=activity, ttl=ttl, time_left=left, warnings=tuple(warnings), resource_version=rv,
                   owner=owner)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
        return None
    return moment.astimezone(timezone.utc)


def _last_activity(raw: str | None, now: datetime, warnings: list[str]) -> datetime | None:
    if raw is None:
        warnings.append(f"no {ANNOTATION_LAST_ACTIVITY} annotation")
        return None
    try:
        activity = parse_timestamp(raw)
    except InputError as exc:
        warnings.append(f"{ANNOTATION_LAST_ACTIVITY}: {exc}")
        return None
    if activity > now + CLOCK_SKEW:
        warnings.append(f"{ANNOTATION_LAST_ACTIVITY} {raw!r} is in the future")
        return None
    return activity


def plan(namespaces: Iterable[NamespaceSummary], now: datetime, *, registry: Mapping[str, str] | None = None,
         proofs: Mapping[str, tuple[CreationRecord | None, str]] | None = None) -> list[Verdict]:
    """Every namespace's verdict, by name.

    Before the rules of :func:`decide`: a system or registry namespace (``registry``) is skipped
    whatever its labels; with ``proofs`` (:func:`creation_record` per name) a deletion needs
    stackyard's own record of creating the namespace, else it is skipped saying why."""
    verdicts = []
    for ns in namespaces:
        reason = never_deleted_reason(ns.name, registry or {})
        if reason:
            verdicts.append(Verdict(ns.name, Action.SKIP, f"never deleted: {reason}", resource_version=ns.resource_version))
            continue
        verdict = decide(ns, now)
        if verdict.action is Action.DELETE and proofs is not None:
            record, why = proofs.get(ns.name, (None, "its records could not be read"))
            if record is None:
                verdict = Verdict(ns.name, Action.SKIP, f"not proven created by stackyard: {why}",
                                  warnings=(*verdict.warnings, f"labelled ephemeral but {why}"),
                                  resource_version=ns.resource_version)
        verdicts.append(verdict)
    return sorted(verdicts, key=lambda v: v.name)


class DeletionCapExceeded(StackyardError):
    """A reaper run would delete more stacks than its ``max_deletions`` cap; nothing was deleted."""


def check_cap(verdicts: Iterable[Verdict], max_deletions: int) -> list[Verdict]:
    """The deletions of a plan, or DeletionCapExceeded before anything is deleted."""
    if isinstance(max_deletions, bool) or not isinstance(max_deletions, int) or max_deletions < 0:
        raise InputError(f"max_deletions: expected a whole number >= 0, got {max_deletions!r}")
    deletions = [v for v in verdicts if v.action is Action.DELETE]
    if len(deletions) > max_deletions:
        names = ", ".join(v.name for v in deletions[:10]) + (" …" if len(deletions) > 10 else "")
        raise DeletionCapExceeded(
            f"this run would delete {len(deletions)} stacks, more than max_deletions={max_deletions} "
            f"({names}); nothing was deleted. If that is expected, trigger the reaper with a higher max_deletions."
        )
    return deletions


class Outcome(str, Enum):
    DELETED = "deleted"
    GONE = "gone"  # deleted meanwhile by someone else: nothing to do
    CHANGED = "changed"  # touched between the list and the delete: kept this time
    FAILED = "failed"


def reaper_report(
    verdicts: Iterable[Verdict], outcomes: Mapping[str, tuple[Outcome, str]], *, now: datetime,
    dry_run: bool, max_deletions: int, dag_id: str, run_id: str | None, error: str | None = None,
) -> ReaperReport:
    """The run's report (log and ``reaper/runs``): what went, what stays and for how long, why."""
    buckets: dict[str, list[ReaperEntry]] = {key: [] for key in ("deleted", "would_delete", "kept", "skipped", "failed")}
    for verdict in verdicts:
        entry = verdict.to_dict()
        if verdict.action is Action.KEEP:
            bucket = "kept"
        elif verdict.action is Action.SKIP:
            bucket = "skipped"
        elif dry_run or verdict.name not in outcomes:
            bucket = "would_delete"
        else:
            outcome, detail = outcomes[verdict.name]
            entry["outcome"], entry["detail"] = outcome.value, detail
            bucket = {Outcome.DELETED: "deleted", Outcome.GONE: "deleted", Outcome.CHANGED: "kept",
                      Outcome.FAILED: "failed"}[outcome]
        buckets[bucket].append(ReaperEntry(**entry))
    return ReaperReport(
        dag_id=dag_id, run_id=run_id, at=now, dry_run=dry_run, max_deletions=max_deletions,
        selector=EPHEMERAL_SELECTOR, error=error, **buckets,
        counts=ReaperCounts(**{key: len(entries) for key, entries in buckets.items()}),
    )
