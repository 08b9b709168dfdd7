"""The L3 gate's speculative queue, as steps over the queue's log and the L3 history.

One gate run tests one attempt of one queued change (rules: :mod:`stackyard.core.gate_queue`):

- :func:`join`: ``validate`` queues the change (a newer version of a service supersedes its
  queued older one), or a requeued run (run id ``requeue__<seq>__<n>``) takes up its change again
  with its place;
- :func:`start`: while the change is beyond the window, ``validate`` waits; inside it, its
  candidate is L3 + the changes ahead of it + itself, recorded as the change's next attempt;
- :func:`wait_turn`: once tested, ``promote`` or ``reject`` wait until every change ahead has left
  the queue, then decide on the exact combination (promote or reject), or the change is tested
  again (``requeue``) because what it was tested with is no longer what L3 will be.

A run that ends without a verdict takes its change out of the queue (:func:`abandon`), and a
waiting run takes out a change whose run has ended without doing so (``alive``), so the queue
never stalls behind a dead run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone

from stackyard.adapters.gate_queue_store import GateQueueStore
from stackyard.adapters.manifest_store import ManifestStore
from stackyard.core.fleet import GATE_DAG_ID, run_link
from stackyard.core.gate_queue import Entry, QueueItem, Settlement, Turn, lineup, open_entries, place, turn
from stackyard.core.manifest import Manifest, Provenance, ServicePin, propose
from stackyard.exceptions import InputError, NotFoundError

_REQUEUED = re.compile(r"requeue__([0-9]+)__([0-9]+)(?:__.*)?")
POLL_SECONDS = 1.0
#: Longer than any gate run takes (deploy and tests have 10 minute timeouts, tasks 2 retries).
STALE_AFTER = timedelta(hours=6)


def requeue_run_id(seq: int, attempt: int, stamp: str) -> str:
    """The run id of the run that tests change ``seq`` again (its attempt ``attempt + 1``)."""
    return f"requeue__{seq}__{attempt + 1}__{stamp}"


@dataclass(frozen=True)
class Position:
    """Where a queued change stands, for the task log, XCom and ``stackyard gate --wait``."""

    seq: int
    place: int       # 1 = head; 0 = left the queue
    queued: int      # changes in the queue
    window: int
    state: str       # "waiting for the window" | "testing" | "waiting for the changes ahead" | ...
    ahead: list[str] = field(default_factory=list)  # "<service> <version>" tested ahead of it

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        behind = f" behind {', '.join(self.ahead)}" if self.ahead else ""
        return (f"queue: change #{self.seq} is {self.place} of {self.queued} (window {self.window}): "
                f"{self.state}{behind}")


@dataclass(frozen=True)
class Started:
    """A change's new attempt: the candidate to test and the attempt's number."""

    candidate: Manifest
    attempt: int
    position: Position


def join(queue: GateQueueStore, *, service: str, version: str, pin: ServicePin, run_id: str,
         requested_by: str | None = None) -> QueueItem:
    """Queue the change behind every other (it supersedes a queued older version of its service)."""
    return queue.enqueue(service, version, run_id=run_id, pin=pin.to_dict(), requested_by=requested_by)


def taken_up(queue: GateQueueStore, *, run_id: str, service: str, version: str) -> QueueItem | None:
    """The queued change this run tests, if it has one already: a requeued run's (named by its run
    id), or the one it queued at an earlier look; None for a new request."""
    match = _REQUEUED.fullmatch(run_id)
    if match is None:
        for entry in queue.entries():
            if queue.queued(entry.item.seq).run_id == run_id:
                return entry.item
        return None
    seq = int(match[1])
    record = queue.queued(seq)
    if (record.service, record.version) != (service, version):
        raise InputError(f"run {run_id} re-tests queued change #{seq} ({record.service} {record.version}), "
                         f"but its conf asks for {service} {version}")
    settled = queue.settled(seq)
    if settled is not None:
        raise InputError(f"queued change #{seq} ({service} {version}) already left the queue: "
                         f"{settled.settlement.value}{f' ({settled.detail})' if settled.detail else ''}")
    return QueueItem(service, version, seq)


def _l3_pins(store: ManifestStore) -> dict[str, str]:
    """L3's service versions now (none before the first version is seeded)."""
    current = store.latest()
    return {name: pin.chart_version for name, pin in current.services.items()} if current else {}


def _pin(queue: GateQueueStore, seq: int) -> ServicePin:
    record = queue.queued(seq)
    return ServicePin(record.pin["chart_version"], record.pin.get("digest"), record.pin.get("images") or {})


def position(entries: list[Entry], seq: int, window: int, state: str, ahead: tuple[QueueItem, ...] = ()) -> Position:
    return Position(seq=seq, place=place(entries, seq), queued=len(open_entries(entries)), window=window,
                    state=state, ahead=[f"{item.service} {item.version}" for item in ahead])


def start(queue: GateQueueStore, store: ManifestStore, item: QueueItem, *, window: int, run_id: str,
          now: datetime, provenance: Provenance) -> Started | Position:
    """The change's candidate when it is inside the window (its attempt recorded), else where it
    waits (place 0: it left the queue meanwhile, superseded)."""
    entries = queue.entries(include=(item.seq,))
    mine = next(entry for entry in entries if entry.item.seq == item.seq)
    if mine.settled is not None:  # superseded while it waited for the window
        detail = queue.settled(item.seq)
        return position(entries, item.seq, window,
                        f"left the queue: {mine.settled.value}{f' ({detail.detail})' if detail and detail.detail else ''}")
    if place(entries, item.seq) > window:
        return position(entries, item.seq, window, "waiting for the window")
    current = store.latest()
    if current is None:
        raise InputError("there is no L3 manifest yet: seed version 1 first (stackyard manifest seed)")
    l3 = {name: pin.chart_version for name, pin in current.services.items()}
    _, ahead, combination = next(row for row in lineup(l3, entries) if row[0].item.seq == item.seq)
    base = current
    for change in ahead:  # a change ahead already in L3 (promoted a moment ago) adds nothing
        if l3.get(change.service) != change.version:
            pin = _pin(queue, change.seq)
            base = propose(base, change.service, change.version, pin.digest, created=now, provenance=Provenance(),
                           images=pin.images)
    pin = _pin(queue, item.seq)
    candidate = propose(base, item.service, item.version, pin.digest, created=now, provenance=provenance,
                        images=pin.images)
    attempt = queue.start_attempt(item.seq, run_id=run_id, base_version=current.version,
                                  ahead=tuple(change.seq for change in ahead), services=dict(combination),
                                  candidate_id=candidate.candidate_id, candidate_version=candidate.version)
    return Started(candidate, attempt.number, position(entries, item.seq, window, "testing", ahead))


def wait_turn(queue: GateQueueStore, store: ManifestStore, seq: int, *, window: int,
              alive: Callable[[str], bool], deadline: float, report: Callable[[Position], None] = print,
              sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> Turn:
    """Wait until change ``seq``'s tested attempt may be decided on (or must be tested again).

    ``alive(run_id)`` says whether a run is still going: a change ahead whose run ended without
    settling it is taken out of the queue (abandoned), so that no run waits for a dead one. So is
    the head when its run has not moved for :data:`STALE_AFTER` (a run nothing watches, like a killed
    ``airflow dags test``, stays "running" in the metadata DB for ever)."""
    last = None
    while True:
        entries = queue.entries(include=(seq,))
        decision = turn(_l3_pins(store), entries, seq)
        if decision is not Turn.WAIT:
            return decision
        for number, entry in enumerate(open_entries(entries), start=1):
            if entry.item.seq >= seq:
                break
            # Only the head waits for nobody: it alone can be judged stale by the time it stood still.
            now = datetime.now(timezone.utc) if number == 1 else None
            if _ended_unsettled(queue, store, entry, alive, now=now):
                queue.settle(entry.item.seq, Settlement.ABANDONED,
                             detail="its gate run ended without a verdict")
        ahead = tuple(entry.item for entry in open_entries(entries) if entry.item.seq < seq)
        now = position(entries, seq, window, "waiting for the changes ahead", ahead)
        if now != last:
            report(now)
            last = now
        if clock() >= deadline:
            raise TimeoutError(f"queue: change #{seq} still waits for {', '.join(now.ahead)}")
        sleep(POLL_SECONDS)


def outdated(queue: GateQueueStore, store: ManifestStore, seq: int) -> str | None:
    """Why change ``seq``'s attempt under test will be tested again whatever its result (what it
    is tested with is no longer what L3 will be), or None while it still counts."""
    entries = queue.entries(include=(seq,))
    mine = next((entry for entry in entries if entry.item.seq == seq), None)
    if mine is None or mine.settled is not None or mine.attempt is None:
        return None
    return retest_reason(queue, store, seq) if turn(_l3_pins(store), entries, seq) is Turn.RETEST else None


def retest_reason(queue: GateQueueStore, store: ManifestStore, seq: int) -> str:
    """Why change ``seq`` must be tested again, in words (for the log, the report and the alert)."""
    entries = queue.entries(include=(seq,))
    mine = next(entry for entry in entries if entry.item.seq == seq)
    attempt = mine.attempt
    for ahead in attempt.ahead if attempt else ():
        settled = queue.settled(ahead)
        if settled is not None and settled.settlement is not Settlement.PROMOTED:
            record = queue.queued(ahead)
            return (f"{record.service} {record.version} (#{ahead}), tested ahead of it, left the queue: "
                    f"{settled.settlement.value}")
    failing = [entry for entry in open_entries(entries) if entry.item.seq < seq and entry.attempt
               and entry.attempt.result is False]
    if failing:
        return f"{failing[0].item.service} {failing[0].item.version} (#{failing[0].item.seq}) ahead of it failed"
    current = store.latest()
    return (f"L3 moved: current version is v{current.version if current else '?'}, "
            f"change #{seq} was tested on v{attempt.base_version if attempt else '?'} and the changes ahead of it")


def _ended_unsettled(queue: GateQueueStore, store: ManifestStore, entry: Entry, alive: Callable[[str], bool],
                     now: datetime | None = None) -> bool:
    """Whether ``entry``'s run has ended (or gone stale) without settling it (a promotion it made
    still counts)."""
    number = entry.attempt.number if entry.attempt else 0
    run_id = (queue.handover(entry.item.seq, number)
              or (entry.attempt.run_id if entry.attempt else queue.queued(entry.item.seq).run_id))
    moved = queue.attempt(entry.item.seq, number).started if entry.attempt else queue.queued(entry.item.seq).queued
    stale = now is not None and now - moved > STALE_AFTER
    if alive(run_id) and not stale:
        return False
    if entry.attempt is not None:  # it may have promoted and died before saying so
        record = queue.attempt(entry.item.seq, entry.attempt.number)
        version = record.candidate_version
        try:
            promoted = store.get(version).candidate_id == record.candidate_id
        except NotFoundError:
            promoted = False
        if promoted:
            queue.settle(entry.item.seq, Settlement.PROMOTED, run_id=run_id, l3_version=version,
                         detail="found in the L3 history")
            return False
    return True


def abandon(queue: GateQueueStore, seq: int, *, run_id: str, reason: str) -> None:
    """Take the change out of the queue when its run ends without a verdict (an error)."""
    queue.settle(seq, Settlement.ABANDONED, run_id=run_id, detail=reason)


def queue_view(queue: GateQueueStore, store: ManifestStore, *, window: int) -> dict:
    """The gate queue as the Stacks view shows it: every queued change in order, where it stands
    and what it is tested behind."""
    entries = queue.entries()
    changes = []
    for number, (entry, ahead, _) in enumerate(lineup(_l3_pins(store), entries), start=1):
        record = queue.queued(entry.item.seq)
        attempt = entry.attempt
        if attempt is None:
            state = "waiting for the window" if number > window else "starting"
        elif attempt.result is None:
            state = "testing" if attempt.number == 1 else f"testing again (attempt {attempt.number})"
        else:
            state = f"{'passed' if attempt.result else 'failed'}, waiting for its turn"
        changes.append({"place": number, "seq": entry.item.seq, "service": entry.item.service,
                        "version": entry.item.version, "state": state, "in_window": number <= window,
                        "ahead": [f"{item.service} {item.version}" for item in ahead],
                        "run": run_link(GATE_DAG_ID, attempt.run_id if attempt else record.run_id),
                        "requested_by": record.requested_by, "queued": record.queued.isoformat()})
    return {"window": window, "changes": changes}
