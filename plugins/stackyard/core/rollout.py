"""Rollouts to persistent and production stacks: what to change, when, and how a canary goes.

- :func:`make_plan` — the target versions (from the source) against what the stack runs (its
  helm releases, one per service), as steps applied one at a time in a deterministic order:
  the registry's list order, or alphabetical for ``services: all``.
- :func:`window_decision` — whether a deployment window is open now (time zones, windows past
  midnight, freeze dates).
- :func:`qualified_targets` — the production quality level: for each service, the newest
  version that ran on another stack (stage) for at least N hours, from that stack's rollout
  records. Only a ``succeeded`` record changes what a stack runs; rolled-back, failed and
  aborted attempts leave the running version (and its healthy-since time) as it was.
- :func:`canary_release` and :func:`canary_values` — the canary release (its steps: :mod:`stackyard.core.canary`).
- :func:`rollout_record` — the record kept per upgrade attempt (stream ``stacks/<stack>/rollouts``).

Pure: no Airflow, no I/O, no clock (callers pass ``now``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from stackyard.core.stack_registry import DAYS, MAX_RELEASE_NAME, HealthySource, Stack, Windows
from stackyard.core.ephemeral import (
    ANNOTATION_CREATED, ANNOTATION_CREATED_BY, ANNOTATION_OWNER, LABEL_MANAGED_BY, LABEL_OWNER, LABEL_STACK_TYPE,
    MANAGED_BY, StackMetadata, label_value, timestamp,
)
from stackyard.core.records import CanaryInfo, RolloutRecord, RolloutStatus, rollouts_stream  # noqa: F401 (re-exported)
from stackyard.core.versions import compare_semver
from stackyard.exceptions import InputError

CANARY_SUFFIX = "-canary"


# --- what is deployed, what should be --------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """One helm release of the stack, keyed by the service it runs (:func:`release_service`)."""

    service: str
    chart_name: str
    chart_version: str
    revision: int
    status: str
    release: str = ""  # the release's own name; "" = the service's name (releases made before)


def service_release(namespace: str, service: str) -> str:
    """The release of ``service`` on the persistent stack in ``namespace``: ``<namespace>-<service>``,
    its own per stack so two stacks' cluster-wide objects (named after the release) never
    collide (docs/chart-contract.md); past helm's limit (less room for ``-canary``) its first
    characters and 8 hex of its hash."""
    name = f"{namespace}-{service}"
    limit = MAX_RELEASE_NAME - len(CANARY_SUFFIX)
    if len(name) <= limit:
        return name
    return f"{name[:limit - 9].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def release_service(namespace: str, release: str, chart: str) -> str:
    """What a release of the stack is, for planning: ``chart`` for its service's release (named
    ``<namespace>-<service>``, or ``<service>`` as stacks were deployed before), ``<chart>-canary``
    for that service's canary, else the release's own name (not stackyard's: left alone)."""
    if release in (service_release(namespace, chart), chart):
        return chart
    if release in (canary_release(service_release(namespace, chart)), f"{chart}{CANARY_SUFFIX}"):
        return f"{chart}{CANARY_SUFFIX}"
    return release


@dataclass(frozen=True)
class Target:
    """The version a service should run, and the L3 manifest it comes from."""

    version: str
    manifest_version: int | None = None


@dataclass(frozen=True)
class PlanStep:
    service: str
    from_version: str | None
    to_version: str
    action: str  # install | upgrade | downgrade | repair
    canary: bool = False
    manifest_version: int | None = None
    release_name: str = ""  # "" = the service's name (plans made before releases were per stack)

    @property
    def release(self) -> str:
        return self.release_name or self.service

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "from_version": self.from_version, "to_version": self.to_version,
                "action": self.action, "canary": self.canary, "manifest_version": self.manifest_version,
                "chart_ref": f"{self.service}:{self.to_version}", "release": self.release_name or None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanStep:
        return cls(data["service"], data["from_version"], data["to_version"], data["action"],
                   bool(data.get("canary")), data.get("manifest_version"), data.get("release") or "")

    def __str__(self) -> str:
        return f"{self.service} {self.from_version or '(new)'} -> {self.to_version} ({self.action}{', canary' if self.canary else ''})"


@dataclass(frozen=True)
class Plan:
    stack: str
    source: str
    steps: tuple[PlanStep, ...]
    held: tuple[tuple[str, str], ...] = ()  # (service, why it is not in the plan)
    unmanaged: tuple[str, ...] = ()         # releases on the stack that the source does not name

    def summary(self) -> str:
        if not self.steps:
            head = f"stack {self.stack} is up to date with the {self.source}"
        else:
            head = (f"stack {self.stack}: {len(self.steps)} service(s) to change, one at a time: "
                    + "; ".join(map(str, self.steps)))
        notes = [f"held back: {service}: {why}" for service, why in self.held]
        if self.unmanaged:
            notes.append("left as they are (not in the source): " + ", ".join(self.unmanaged))
        return "\n".join([head, *notes])

    def to_dict(self) -> dict[str, Any]:
        return {"stack": self.stack, "source": self.source, "steps": [s.to_dict() for s in self.steps],
                "held": [list(item) for item in self.held], "unmanaged": list(self.unmanaged)}


def deployed_services(releases: Iterable[Deployed]) -> dict[str, Deployed]:
    """Service releases by name; ``<service>-canary`` releases are the canary machinery's, not services."""
    found = {r.service: r for r in releases}
    return {name: r for name, r in found.items()
            if not (name.endswith(CANARY_SUFFIX) and name.removesuffix(CANARY_SUFFIX) in found)}


def make_plan(stack: Stack, targets: Mapping[str, Target], deployed: Mapping[str, Deployed], *,
              held: Mapping[str, str] | None = None, allow_downgrade: bool = True) -> Plan:
    """The steps that bring ``deployed`` to ``targets`` for the stack's services, in order."""
    held_back = dict(held or {})
    if stack.services is None:
        order = [(name, False) for name in sorted(set(targets) | set(held_back))]
    else:
        order = [(entry.name, entry.canary) for entry in stack.services]
    steps = []
    for service, canary in order:
        target = targets.get(service)
        if target is None:
            held_back.setdefault(service, "not in the source")
            continue
        current = deployed.get(service)
        action = _action(current, target.version, service)
        if action is None:
            continue
        if action == "downgrade" and not allow_downgrade:
            held_back[service] = (f"runs {current.chart_version}, newer than {target.version}: "  # type: ignore[union-attr]
                                  "not downgraded automatically")
            continue
        # A release that exists keeps its name (stacks deployed before have ``<service>``).
        release = (current.release or current.service) if current else service_release(stack.namespace, service)
        steps.append(PlanStep(service, current.chart_version if current else None, target.version, action,
                              canary, target.manifest_version, release))
    named = {service for service, _ in order}
    unmanaged = tuple(sorted(name for name in deployed if name not in named))
    held_items = tuple((s, held_back[s]) for s, _ in order if s in held_back)
    return Plan(stack.name, stack.source.describe(), tuple(steps), held_items, unmanaged)


def _action(current: Deployed | None, version: str, service: str) -> str | None:
    if current is None:
        return "install"
    if current.chart_name != service or current.chart_version != version:
        order = compare_semver(version, current.chart_version) if current.chart_name == service else 1
        return "upgrade" if order >= 0 else "downgrade"
    if current.status != "deployed":
        return "repair"  # same version, but the release is failed or stuck pending
    return None


# --- deployment windows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowDecision:
    open: bool
    reason: str


def window_decision(windows: Windows | None, now: datetime) -> WindowDecision:
    """Open or closed at ``now`` (timezone-aware), with the reason in words."""
    if now.tzinfo is None:
        raise InputError("now: expected a timezone-aware datetime")
    if windows is None:
        return WindowDecision(True, "no deployment window configured: always open")
    zone = ZoneInfo(windows.timezone)
    local = now.astimezone(zone)
    stamp = f"{DAYS[local.weekday()].capitalize()} {local:%Y-%m-%d %H:%M} {windows.timezone}"
    for freeze in windows.freeze:
        if freeze.first <= local.date() <= freeze.last:
            span = str(freeze.first) if freeze.first == freeze.last else f"{freeze.first}..{freeze.last}"
            return WindowDecision(False, f"freeze {span}: no deployments (now is {stamp})")
    if not windows.allow:
        return WindowDecision(True, f"not a freeze date (now is {stamp})")
    minute = local.hour * 60 + local.minute
    today, yesterday = DAYS[local.weekday()], DAYS[(local.weekday() - 1) % 7]
    for window in windows.allow:
        if window.start < window.end:
            inside = today in window.days and window.start <= minute < window.end
        else:  # past midnight: the part before midnight belongs to today, the rest to yesterday's window
            inside = (today in window.days and minute >= window.start) or (yesterday in window.days and minute < window.end)
        if inside:
            return WindowDecision(True, f"inside the deployment window {describe_window(window)} (now is {stamp})")
    allowed = "; ".join(describe_window(w) for w in windows.allow)
    return WindowDecision(False, f"outside the deployment windows ({allowed}, {windows.timezone}); now is {stamp}")


def describe_window(window) -> str:
    def hhmm(minutes: int) -> str:
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    return f"{','.join(window.days)} {hhmm(window.start)}-{hhmm(window.end)}"


# --- production quality level --------------------------------------------------------------------------


@dataclass(frozen=True)
class Qualified:
    version: str
    healthy_since: datetime
    healthy_until: datetime | None  # None: still running
    manifest_version: int | None


def qualified_targets(records: Iterable[RolloutRecord], source: HealthySource, *, now: datetime,
                      services: Iterable[str] | None = None) -> tuple[dict[str, Target], dict[str, str]]:
    """Per service, the newest version that ran on ``source.stack`` for at least ``source.hours``.

    ``records`` are that stack's rollout records (any order). A version "ran" from its
    ``succeeded`` record until the next ``succeeded`` record of another version (or ``now``).
    Returns (targets, held) where ``held`` says for each unqualified service why.
    """
    if now.tzinfo is None:
        raise InputError("now: expected a timezone-aware datetime")
    need = timedelta(hours=source.hours)
    runs = _running_intervals(records, now)
    names = sorted(runs) if services is None else list(services)
    targets: dict[str, Target] = {}
    held: dict[str, str] = {}
    for service in names:
        intervals = runs.get(service, [])
        good = [q for q in intervals if (q.healthy_until or now) - q.healthy_since >= need]
        if good:
            best = good[-1]
            targets[service] = Target(best.version, best.manifest_version)
        elif intervals:
            latest = intervals[-1]
            hours = ((latest.healthy_until or now) - latest.healthy_since).total_seconds() / 3600
            held[service] = (f"{latest.version} has run on {source.stack} for {hours:.1f} h of the required "
                             f"{source.hours:g} h (since {latest.healthy_since:%Y-%m-%d %H:%M} UTC)")
        else:
            held[service] = f"no successful rollout recorded on {source.stack}"
    return targets, held


def _running_intervals(records: Iterable[RolloutRecord], now: datetime) -> dict[str, list[Qualified]]:
    # Sorted by time only: two records may finish in the same second (records are not comparable).
    succeeded = sorted((r for r in records if r.status is RolloutStatus.SUCCEEDED), key=lambda r: r.finished)
    runs: dict[str, list[Qualified]] = {}
    for record in succeeded:
        finished = record.finished
        if finished > now:
            continue
        service, version = record.service, record.to_version
        intervals = runs.setdefault(service, [])
        if intervals and intervals[-1].version == version and intervals[-1].healthy_until is None:
            continue  # a repair or re-run of the version already running: it keeps its start
        if intervals:
            last = intervals[-1]
            intervals[-1] = Qualified(last.version, last.healthy_since, finished, last.manifest_version)
        intervals.append(Qualified(version, finished, None, record.manifest_version))
    return runs




# --- canaries ----------------------------------------------------------------------------------------


def canary_release(release: str) -> str:
    """The canary of a service's (stable) ``release`` runs as its own release, so the stable one is
    never touched until promotion."""
    name = f"{release}{CANARY_SUFFIX}"
    if len(name) > MAX_RELEASE_NAME:
        raise InputError(f"{release}: canary release {name} is longer than helm's {MAX_RELEASE_NAME} characters")
    return name


def canary_values(weight: int) -> dict[str, Any]:
    """Values of the canary release (docs/chart-contract.md, "Canary"): only the ``-canary``
    Deployment runs (one pod; ``canary.weight``, the first step's, is informational — the traffic
    provider sets the share); the release's stable-track Deployment is scaled to zero."""
    return {"canary": {"enabled": True, "weight": weight}, "replicaCount": 0}


def stack_namespace_metadata(stack: Stack, *, created: datetime, created_by: str) -> StackMetadata:
    """Labels of a persistent/production stack's namespace when a rollout creates it: typed, so
    the reaper (which removes only ``stack-type=ephemeral``) never touches it."""
    return StackMetadata(
        labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_STACK_TYPE: stack.kind.value,
                LABEL_OWNER: label_value(stack.owner) or "unknown"},
        annotations={ANNOTATION_CREATED: timestamp(created), ANNOTATION_OWNER: stack.owner,
                     ANNOTATION_CREATED_BY: created_by},
    )


# --- records -----------------------------------------------------------------------------------------


def rollout_record(*, stack: Stack, step: PlanStep, status: RolloutStatus, run_id: str, started: datetime,
                   finished: datetime, values_digest: str | None = None, revision: int | None = None,
                   reason: str = "", canary: Mapping[str, Any] | None = None,
                   triggered_by: str | None = None) -> RolloutRecord:
    """One upgrade attempt as stored in ``stacks/<stack>/rollouts`` (no values: their digest)."""
    return RolloutRecord(
        stack=stack.name, type=stack.kind.value, dag_id=stack.dag_id, namespace=stack.namespace, profile=stack.profile,
        service=step.service, from_version=step.from_version, to_version=step.to_version,
        action=step.action, manifest_version=step.manifest_version, run_id=run_id,
        status=status, started=started, finished=finished,
        values_digest=values_digest, revision=revision, reason=reason,
        canary=CanaryInfo(**canary) if canary else None, triggered_by=triggered_by,
    )


def failed_before(outcomes: Sequence[Mapping[str, Any] | None]) -> str | None:
    """Given the outcomes of the steps before this one (None = no outcome yet), why this one must
    not start, or None. One service at a time: a step starts only after every earlier one succeeded."""
    for outcome in outcomes:
        if outcome is None:
            return "an earlier service has not finished"
        if outcome.get("status") != RolloutStatus.SUCCEEDED.value:
            return f"{outcome.get('service')} {outcome.get('status')} earlier in this run"
    return None
