"""Interrupted helm operations: who holds a release, and what to do with one left pending.

helm marks a release ``pending-install``/``pending-upgrade``/``pending-rollback`` while it works
and refuses every other operation until the mark is gone. A helm (or a whole task) killed in
flight leaves the mark forever. Before each upgrade, rollback or uninstall stackyard takes a
lease on the release (``stackyard-helm-<release>``, renewed while helm runs, released after) and
decides with :func:`plan_recovery` whether a pending mark is an abandoned operation to undo:

- a holder that is alive (on this host: its process exists; elsewhere: its lease was renewed
  within its duration) is never disturbed: wait for it, then fail naming its run;
- a pending revision written while stackyard's last holder had the lease, and that holder is gone
  (released or stale), is abandoned: roll back to the newest deployed revision, or uninstall a
  release that was never deployed;
- a pending revision stackyard did not write (no lease, or written after the lease was released:
  someone ran helm by hand) is left alone until it is older than ``foreign_grace``; even then a
  never-deployed release of someone else is not uninstalled.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from stackyard.exceptions import InputError

PENDING = frozenset({"pending-install", "pending-upgrade", "pending-rollback"})
#: Statuses of a revision that was, or still is, running on the cluster.
WAS_DEPLOYED = ("deployed", "superseded")
LEASE_PREFIX = "stackyard-helm-"
DEFAULT_LEASE_SECONDS = 30
#: How long a pending revision stackyard did not write is assumed to belong to a live operator.
DEFAULT_FOREIGN_GRACE = timedelta(minutes=30)
_FRACTION = re.compile(r"(\.\d{6})\d+")
#: Clock difference allowed between helm's timestamps and the lease's (different hosts).
CLOCK_SKEW = timedelta(seconds=5)


def lease_name(release: str) -> str:
    return f"{LEASE_PREFIX}{release}"


@dataclass(frozen=True)
class Holder:
    """Who runs a helm operation: the task try and the process (``pid`` on ``host``)."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    pid: int
    host: str

    @property
    def identity(self) -> str:
        """The Lease's ``holderIdentity``: dag/run/task/try/pid/host."""
        return "/".join([self.dag_id, self.run_id, self.task_id, str(self.try_number), str(self.pid), self.host])

    def describe(self) -> str:
        return (f"run {self.run_id} of {self.dag_id} (task {self.task_id}, try {self.try_number}, "
                f"pid {self.pid} on {self.host})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Holder:
        try:
            return cls(dag_id=str(data["dag_id"]), run_id=str(data["run_id"]), task_id=str(data["task_id"]),
                       try_number=int(data["try_number"]), pid=int(data["pid"]), host=str(data["host"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"lease holder {dict(data)!r} is not a stackyard holder: {exc}") from None


@dataclass(frozen=True)
class LeaseView:
    """A release's lease as read: the current (or, when released, the last) holder."""

    holder: Holder | None
    held: bool  # False once the holder released it
    acquired: datetime | None
    renewed: datetime | None
    duration_seconds: int = DEFAULT_LEASE_SECONDS


def holder_alive(lease: LeaseView, *, now: datetime, process_alive: bool | None) -> bool:
    """Is the lease's holder still working? ``process_alive`` is known only on the holder's host."""
    if not lease.held:
        return False
    if process_alive is not None:
        return process_alive
    if lease.renewed is None:
        return False
    return now - lease.renewed < timedelta(seconds=lease.duration_seconds)


@dataclass(frozen=True)
class Revision:
    revision: int
    status: str
    updated: datetime | None
    chart: str = ""

    @classmethod
    def from_history_row(cls, row: Mapping[str, Any]) -> Revision:
        return cls(revision=int(row["revision"]), status=str(row.get("status", "")),
                   updated=parse_helm_time(row.get("updated")), chart=str(row.get("chart") or ""))


def parse_helm_time(text: object) -> datetime | None:
    """helm's RFC 3339 timestamps carry nanoseconds; Python reads at most microseconds."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class Action(enum.Enum):
    PROCEED = "proceed"      # nothing pending: go ahead
    ROLLBACK = "rollback"    # abandoned: back to the newest deployed revision
    UNINSTALL = "uninstall"  # abandoned and never deployed: remove it
    REFUSE = "refuse"        # pending, not provably abandoned: change nothing, say why


@dataclass(frozen=True)
class Recovery:
    action: Action
    reason: str
    pending: Revision | None = None
    to_revision: int | None = None


def plan_recovery(
    history: Sequence[Revision],
    previous: LeaseView | None,
    *,
    now: datetime,
    foreign_grace: timedelta = DEFAULT_FOREIGN_GRACE,
) -> Recovery:
    """What to do with a release before operating on it, once this operation holds its lease.

    ``previous`` is the lease as it was before this operation took it (its holder is gone: a live
    one is waited for, never taken over); None when stackyard never held this release.
    """
    if not history:
        return Recovery(Action.PROCEED, "no release yet")
    latest = max(history, key=lambda r: r.revision)
    if latest.status not in PENDING:
        return Recovery(Action.PROCEED, f"revision {latest.revision} is {latest.status}")
    deployed = _last_deployed(history, below=latest.revision)
    ours = previous is not None and previous.holder is not None and _written_by(latest, previous)
    since = f" since {latest.updated:%Y-%m-%dT%H:%M:%SZ}" if latest.updated else ""
    if ours:
        who = previous.holder.describe()
        how = "released the lease" if not previous.held else "stopped renewing its lease"
        cause = f"revision {latest.revision} is {latest.status}{since}, left by {who}, which {how} without finishing"
    else:
        age = now - latest.updated if latest.updated else None
        if age is None or age < foreign_grace:
            return Recovery(
                Action.REFUSE,
                f"revision {latest.revision} is {latest.status}{since}, written by an operation stackyard did not "
                f"start (helm run by hand?); wait for it to finish or recover it by hand "
                f"(helm rollback / helm uninstall); stackyard recovers it itself once it is older than {foreign_grace}",
                pending=latest,
            )
        cause = f"revision {latest.revision} is {latest.status}{since}, older than {foreign_grace}, by an unknown operation"
    if deployed is not None:
        return Recovery(Action.ROLLBACK, f"{cause}: rolling back to revision {deployed.revision}", latest, deployed.revision)
    if ours:
        return Recovery(Action.UNINSTALL, f"{cause}: it was never deployed, uninstalling it", latest)
    return Recovery(Action.REFUSE, f"{cause}: it was never deployed and stackyard did not install it; "
                                   "uninstall it by hand (helm uninstall)", latest)


def _last_deployed(history: Sequence[Revision], *, below: int) -> Revision | None:
    for status in WAS_DEPLOYED:
        candidates = [r for r in history if r.status == status and r.revision < below]
        if candidates:
            return max(candidates, key=lambda r: r.revision)
    return None


def _written_by(pending: Revision, lease: LeaseView) -> bool:
    """Was ``pending`` written while ``lease``'s holder had it? A revision written after a release
    (or with no times to compare) is not provably stackyard's."""
    if pending.updated is None or lease.acquired is None:
        return False
    if pending.updated < lease.acquired - CLOCK_SKEW:
        return False
    return lease.held or (lease.renewed is not None and pending.updated <= lease.renewed + CLOCK_SKEW)
