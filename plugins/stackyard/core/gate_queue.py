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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
        services = dict(self.latest.services)
        ahead: list[QueueItem] = []
        lineup = []
        for item in self.queue:
            combination = _combination({**services, item.service: item.version})
            result = self.results.get((combination, item.seq))
            lineup.append((Candidate(item, tuple(ahead), self.latest.version, combination), result))
            if result is not False:  # nearest non-failing item: behind it, a failing change is left out
                ahead.append(item)
                services[item.service] = item.version
        return lineup

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
