"""A speculative L3 gate queue, as a pure model (Zuul's dependent pipeline, GitHub's merge queue).

Changes (one service version each) queue in the order they were requested. The first ``window``
of them are tested **at once**, each on L3 plus the changes ahead of it plus its own — the state
L3 will be in if everything ahead is promoted. The rules, each enforced in one place:

- **Results belong to combinations**: a test run tests one change's exact set of pins; its result
  is kept under that set and that request (:meth:`GateQueue.finish`). A new request for the same
  version is tested afresh (an earlier failure may have been a flake).
- **Nearest non-failing item**: a change whose current combination failed is *failing*; the
  changes behind it are tested without it (:meth:`GateQueue.lineup`). When something ahead of a
  failing change is ejected, the failing change's combination changes, and it is tested again.
- **Promotion is head-only and exact**: only the change at the head of the queue can be promoted
  (everything ahead of it is), and only if its combination — L3 plus its own change, nothing
  else — passed (:meth:`GateQueue.settle`). So every L3 version differs from its parent by
  exactly one service and was tested as such. A head whose exact combination failed is rejected.
- **Supersession**: a newer version of a service dequeues its queued older one.

Nothing here runs tests; the caller cancels what :meth:`GateQueue.to_cancel` returns, starts what
:meth:`GateQueue.to_start` returns (never more than the window at once) and reports back with
:meth:`GateQueue.finish`. Not modelled: Zuul's window that grows on success and shrinks on failure.

**The live queue** (the ``l3_gate`` DAG, one Airflow run per test attempt) reads the same rules
from its stored log instead of holding a :class:`GateQueue`: :class:`Entry` is one queued change
as the log tells it (its latest :class:`Attempt` and, once it left the queue, its
:class:`Settlement`); :func:`lineup` is :meth:`GateQueue.lineup` over entries (one
:func:`speculate` for both); :func:`place` says whether a change may start testing (the
window), and :func:`turn` what its run does once tested: wait for the changes ahead, decide
(promote or reject: it is the head and was tested exactly as L3 plus itself), test again (what it
was tested with is no longer what L3 will be), or stop (superseded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType

from stackyard.exceptions import InputError

Combination = frozenset[tuple[str, str]]  # (service, version) pins
RunKey = tuple[Combination, int]  # a combination tested for one request (its seq)


@dataclass(frozen=True)
class QueueItem:
    service: str
    version: str
    seq: int  # requested order


@dataclass(frozen=True)
class Candidate:
    """One test run to start: ``item`` on ``base_version`` + ``ahead`` (in queue order) + itself."""

    item: QueueItem
    ahead: tuple[QueueItem, ...]
    base_version: int
    combination: Combination

    @property
    def services(self) -> dict[str, str]:
        return dict(self.combination)

    @property
    def key(self) -> RunKey:
        return (self.combination, self.item.seq)


@dataclass(frozen=True)
class L3Version:
    version: int
    services: Mapping[str, str]
    change: QueueItem | None  # None for the first


@dataclass(frozen=True)
class Position:
    """Where a queued change stands: its place, what it is tested with, and its state."""

    item: QueueItem
    place: int  # 1 = head
    in_window: bool
    ahead: tuple[QueueItem, ...]
    state: str  # "waiting" | "testing" | "passed" | "failing"


def _combination(services: Mapping[str, str]) -> Combination:
    return frozenset(services.items())


def speculate(l3: Mapping[str, str], items: Iterable[QueueItem],
              failing: Callable[[QueueItem, Combination], bool]) -> list[tuple[QueueItem, tuple[QueueItem, ...], Combination]]:
    """Each queued change with the changes it is tested behind and the pins it is tested with:
    L3, then every change ahead that is not failing (nearest non-failing item), then its own."""
    services = dict(l3)
    ahead: list[QueueItem] = []
    out = []
    for item in items:
        combination = _combination({**services, item.service: item.version})
        out.append((item, tuple(ahead), combination))
        if not failing(item, combination):
            ahead.append(item)
            services[item.service] = item.version
    return out


@dataclass
class GateQueue:
    """The queue over one L3 history. ``window`` = candidates tested at once (at least 1)."""

    l3: Mapping[str, str]
    window: int = 3
    history: list[L3Version] = field(default_factory=list)
    queue: list[QueueItem] = field(default_factory=list)
    results: dict[RunKey, bool] = field(default_factory=dict)
    running: set[RunKey] = field(default_factory=set)
    rejected: list[QueueItem] = field(default_factory=list)
    superseded: list[QueueItem] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        if self.window < 1:
            raise InputError(f"window: {self.window} must be at least 1 candidate at a time")
        if not self.history:
            self.history.append(L3Version(1, MappingProxyType(dict(self.l3)), None))

    @property
    def latest(self) -> L3Version:
        return self.history[-1]

    # -- requests -------------------------------------------------------------------------------
    def enqueue(self, service: str, version: str) -> QueueItem:
        """Queue a change; it supersedes a queued change of the same service."""
        if self.latest.services.get(service) == version:
            raise InputError(f"{service} {version} is what L3 v{self.latest.version} pins already: no change")
        for old in [item for item in self.queue if item.service == service]:
            self.queue.remove(old)
            self.superseded.append(old)
        self._seq += 1
        item = QueueItem(service, version, self._seq)
        self.queue.append(item)
        return item

    # -- what to test ---------------------------------------------------------------------------
    def lineup(self) -> list[tuple[Candidate, bool | None]]:
        """Every queued change's current candidate and its result so far (None: not yet known)."""
        def failing(item: QueueItem, combination: Combination) -> bool:
            return self.results.get((combination, item.seq)) is False

        return [(Candidate(item, ahead, self.latest.version, combination), self.results.get((combination, item.seq)))
                for item, ahead, combination in speculate(self.latest.services, self.queue, failing)]

    def to_cancel(self) -> list[RunKey]:
        """Runs no longer worth finishing (their change was superseded or settled, or what is
        ahead of it changed); they stop counting against the window. Call before :meth:`to_start`."""
        current = {candidate.key for candidate, _ in self.lineup()[: self.window]}
        obsolete = sorted(self.running - current, key=lambda key: key[1])
        self.running -= set(obsolete)
        return obsolete

    def to_start(self) -> list[Candidate]:
        """Candidates in the window without a result and not running, as many as the window has
        room for; they are marked running."""
        starts = []
        for candidate, result in self.lineup()[: self.window]:
            if len(self.running) >= self.window:
                break
            if result is None and candidate.key not in self.running:
                self.running.add(candidate.key)
                starts.append(candidate)
        return starts

    def finish(self, candidate: Candidate, passed: bool) -> list[L3Version]:
        """Record a run's result for its combination; returns the L3 versions it let through."""
        self.running.discard(candidate.key)
        self.results[candidate.key] = passed
        return self.settle()

    # -- promotion ------------------------------------------------------------------------------
    def settle(self) -> list[L3Version]:
        """Promote or reject from the head while the head's exact combination has a result."""
        promoted = []
        while self.queue:
            head = self.queue[0]
            exact = _combination({**self.latest.services, head.service: head.version})
            result = self.results.get((exact, head.seq))
            if result is None:
                break
            self.queue.pop(0)
            if result:
                version = L3Version(self.latest.version + 1, MappingProxyType(dict(exact)), head)
                self.history.append(version)
                promoted.append(version)
            else:
                self.rejected.append(head)
        return promoted

    def positions(self) -> list[Position]:
        """What ``stackyard gate --wait`` would show for each queued change."""
        out = []
        for place, (candidate, result) in enumerate(self.lineup(), start=1):
            state = ("passed" if result else "failing" if result is False
                     else "testing" if candidate.key in self.running else "waiting")
            out.append(Position(candidate.item, place, place <= self.window, candidate.ahead, state))
        return out


# -- the live queue ------------------------------------------------------------------------------


class Settlement(str, Enum):
    """Why a change left the queue (closed set)."""

    PROMOTED = "promoted"      # it is in L3
    REJECTED = "rejected"      # its exact combination (L3 + itself) failed
    SUPERSEDED = "superseded"  # a newer version of the same service was queued
    ABANDONED = "abandoned"    # its run ended without a verdict (an error, or it was stopped)


class Turn(str, Enum):
    """What a tested change's run does next (:func:`turn`)."""

    WAIT = "wait"              # changes ahead of it are still in the queue
    DECIDE = "decide"          # it is the head and was tested exactly as L3 + itself: promote or reject
    RETEST = "retest"          # what it was tested with is no longer what L3 will be: test again
    SUPERSEDED = "superseded"  # a newer version of its service replaced it: stop


@dataclass(frozen=True)
class Attempt:
    """One test run of a queued change: the pins it tests and, once known, whether they passed."""

    number: int
    run_id: str
    base_version: int            # the L3 version it is built on
    ahead: tuple[int, ...]       # seqs of the changes it is tested behind, in queue order
    services: Mapping[str, str]  # every pin it tests (service → chart version)
    result: bool | None = None

    @property
    def combination(self) -> Combination:
        return _combination(self.services)


@dataclass(frozen=True)
class Entry:
    """One queued change as the queue's log tells it."""

    item: QueueItem
    attempt: Attempt | None = None
    settled: Settlement | None = None


def open_entries(entries: Iterable[Entry]) -> list[Entry]:
    """The changes still queued, in the order they were requested."""
    return sorted((entry for entry in entries if entry.settled is None), key=lambda entry: entry.item.seq)


def lineup(l3: Mapping[str, str], entries: Iterable[Entry]) -> list[tuple[Entry, tuple[QueueItem, ...], Combination]]:
    """Every queued change, the changes it is to be tested behind and its pins now
    (:meth:`GateQueue.lineup` over stored entries: a change is failing when its latest attempt
    failed on exactly the combination it would be tested with now)."""
    queued = open_entries(entries)
    by_seq = {entry.item.seq: entry for entry in queued}

    def failing(item: QueueItem, combination: Combination) -> bool:
        attempt = by_seq[item.seq].attempt
        return attempt is not None and attempt.result is False and attempt.combination == combination

    return [(by_seq[item.seq], ahead, combination)
            for item, ahead, combination in speculate(l3, [entry.item for entry in queued], failing)]


def place(entries: Iterable[Entry], seq: int) -> int:
    """A queued change's place (1 = head); 0 when it is no longer queued."""
    for number, entry in enumerate(open_entries(entries), start=1):
        if entry.item.seq == seq:
            return number
    return 0


def turn(l3: Mapping[str, str], entries: Sequence[Entry], seq: int) -> Turn:
    """What the run that tested change ``seq`` (its latest attempt) does now; ``l3`` is L3's pins.

    The same rules as :meth:`GateQueue.to_cancel` and :meth:`GateQueue.settle`: a change whose
    tested pins differ from those :func:`lineup` gives it now tests again at once; one that was
    tested as lined up waits while anything is ahead of it; the head decides, and its lineup is
    L3 plus itself, so what it promotes is exactly what it tested."""
    entry = next((entry for entry in entries if entry.item.seq == seq), None)
    if entry is None:
        raise InputError(f"queue: there is no queued change #{seq}")
    if entry.settled is Settlement.SUPERSEDED:
        return Turn.SUPERSEDED
    if entry.settled is not None or entry.attempt is None:
        raise InputError(f"queue: change #{seq} is {entry.settled.value if entry.settled else 'not tested yet'}")
    for queued, ahead, combination in lineup(l3, entries):
        if queued.item.seq == seq:
            if combination != entry.attempt.combination:
                return Turn.RETEST
            return Turn.WAIT if place(entries, seq) > 1 else Turn.DECIDE
    raise AssertionError("unreachable: an open entry is in its own lineup")
