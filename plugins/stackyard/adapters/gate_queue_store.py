"""The live gate queue's log, beside the L3 history on the manifest store's backend.

Append-only, like the history: every fact is one object created at most once, so two gate runs
that write the same fact at the same time cannot both win (the backend's create-once is the
compare-and-swap), and nothing is ever overwritten::

    queue/items/00000007.json          change #7 was queued (service, version, its pin, the run)
    queue/attempts/00000007-002.json   its 2nd test run: the run, the pins it tests, what is ahead
    queue/results/00000007-002.json    that run's result (passed or not)
    queue/handovers/00000007-002.json  after attempt 2, the run that tests it again (a requeue)
    queue/settled/00000007.json        it left the queue: promoted, rejected, superseded, abandoned

:meth:`GateQueueStore.entries` folds the log into :class:`~stackyard.core.gate_queue.Entry`
values for :mod:`stackyard.core.gate_queue`'s rules; reading costs two listings plus a few small
reads per queued change (settled changes are not read again).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from stackyard.adapters.backends import Backend
from stackyard.adapters.record_store import load_json, utc_now
from stackyard.core.gate_queue import Attempt, Entry, QueueItem, Settlement
from stackyard.core.schema import Schema, problems
from stackyard.exceptions import ConflictError, InputError, NotFoundError

QUEUE = "queue"
_SEQ = re.compile(r"([0-9]{8})\.json")
_ATTEMPT = re.compile(r"([0-9]{8})-([0-9]{3})\.json")
MAX_CREATE_TRIES = 50


class QueuedRecord(Schema):
    seq: int
    service: str
    version: str
    run_id: str
    requested_by: str | None = None
    queued: datetime
    pin: dict[str, Any]  # the manifest's ServicePin of the change (chart digest, images)


class AttemptRecord(Schema):
    seq: int
    number: int
    run_id: str
    base_version: int
    ahead: list[int]
    services: dict[str, str]
    candidate_id: str
    candidate_version: int  # the L3 version it becomes if promoted
    started: datetime


class ResultRecord(Schema):
    passed: bool
    run_id: str
    finished: datetime


class HandoverRecord(Schema):
    run_id: str
    handed_over: datetime


class SettledRecord(Schema):
    settlement: Settlement
    run_id: str | None = None
    detail: str | None = None
    l3_version: int | None = None
    settled: datetime


def _key(folder: str, seq: int, number: int | None = None) -> str:
    return f"{QUEUE}/{folder}/{seq:08d}{'' if number is None else f'-{number:03d}'}.json"


class GateQueueStore:
    """The queue's log on ``backend`` (the manifest store's: one place for the gate's facts)."""

    def __init__(self, backend: Backend, *, clock=utc_now) -> None:
        self.backend = backend
        self._clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend.location!r})"

    # -- reading --------------------------------------------------------------------------------
    def _names(self, folder: str) -> list[str]:
        return [key.rsplit("/", 1)[-1] for key in self.backend.list_keys(f"{QUEUE}/{folder}")]

    def _load(self, model: type[Schema], key: str) -> Any:
        data = load_json(self.backend.read(key), key)
        try:
            return model.model_validate(data, strict=False)
        except ValidationError as exc:
            raise InputError(f"{key}: " + "; ".join(problems(exc))) from None

    def queued(self, seq: int) -> QueuedRecord:
        try:
            return self._load(QueuedRecord, _key("items", seq))
        except NotFoundError:
            raise NotFoundError(f"queue: there is no queued change #{seq} in {self!r}") from None

    def attempt(self, seq: int, number: int) -> AttemptRecord:
        return self._load(AttemptRecord, _key("attempts", seq, number))

    def settled(self, seq: int) -> SettledRecord | None:
        try:
            return self._load(SettledRecord, _key("settled", seq))
        except NotFoundError:
            return None

    def seqs(self) -> list[int]:
        """Every change ever queued, settled or not, in order."""
        return sorted(int(m[1]) for m in map(_SEQ.fullmatch, self._names("items")) if m)

    def attempts(self, seq: int) -> list[AttemptRecord]:
        """Change ``seq``'s test runs, first to last."""
        numbers = sorted(int(m[2]) for m in map(_ATTEMPT.fullmatch, self._names("attempts")) if m and int(m[1]) == seq)
        return [self.attempt(seq, number) for number in numbers]

    def result(self, seq: int, number: int) -> bool | None:
        """Whether attempt ``number`` of change ``seq`` passed (None: no result recorded)."""
        record = self.result_record(seq, number)
        return None if record is None else record.passed

    def result_record(self, seq: int, number: int) -> ResultRecord | None:
        """Attempt ``number``'s result as recorded (who recorded it and when), if any."""
        try:
            return self._load(ResultRecord, _key("results", seq, number))
        except NotFoundError:
            return None

    def entries(self, *, include: tuple[int, ...] = ()) -> list[Entry]:
        """Every queued change (and the changes ``include`` names, settled or not), folded."""
        settled = {int(m[1]) for m in map(_SEQ.fullmatch, self._names("settled")) if m}
        wanted = sorted({int(m[1]) for m in map(_SEQ.fullmatch, self._names("items")) if m} - settled
                        | set(include))
        attempts: dict[int, int] = {}
        for match in filter(None, map(_ATTEMPT.fullmatch, self._names("attempts"))):
            seq, number = int(match[1]), int(match[2])
            attempts[seq] = max(number, attempts.get(seq, 0))
        results = {name for name in self._names("results")}
        entries = []
        for seq in wanted:
            item = self.queued(seq)
            attempt = None
            if seq in attempts:
                record = self.attempt(seq, attempts[seq])
                result = None
                if _key("results", seq, record.number).rsplit("/", 1)[-1] in results:
                    result = self._load(ResultRecord, _key("results", seq, record.number)).passed
                attempt = Attempt(record.number, record.run_id, record.base_version, tuple(record.ahead),
                                  MappingProxyType(dict(record.services)), result)
            settlement = self.settled(seq).settlement if seq in settled else None
            entries.append(Entry(QueueItem(item.service, item.version, seq), attempt, settlement))
        return entries

    # -- writing (each fact created once) -------------------------------------------------------
    def _create(self, key: str, record: Schema) -> bool:
        return self.backend.create(key, json.dumps(record.model_dump(mode="json"), sort_keys=True).encode() + b"\n")

    def enqueue(self, service: str, version: str, *, run_id: str, pin: Mapping[str, Any],
                requested_by: str | None = None) -> QueueItem:
        """Queue a change behind every other; a change of the same service still queued is
        settled as superseded (a newer version replaces it). Returns the new item."""
        with self._exclusive():
            for _ in range(MAX_CREATE_TRIES):
                names = [m for m in map(_SEQ.fullmatch, self._names("items")) if m]
                seq = max((int(m[1]) for m in names), default=0) + 1
                record = QueuedRecord(seq=seq, service=service, version=version, run_id=run_id,
                                      requested_by=requested_by, queued=self._clock(), pin=dict(pin))
                if self._create(_key("items", seq), record):
                    break
            else:  # pragma: no cover - needs MAX_CREATE_TRIES concurrent winners in a row
                raise ConflictError(f"queue: could not take a place in {self!r} after {MAX_CREATE_TRIES} tries")
        for entry in self.entries():
            if entry.item.service == service and entry.item.seq < seq:
                self.settle(entry.item.seq, Settlement.SUPERSEDED, run_id=run_id,
                            detail=f"superseded by {service} {version} (#{seq})")
        return QueueItem(service, version, seq)

    def start_attempt(self, seq: int, *, run_id: str, base_version: int, ahead: tuple[int, ...],
                      services: Mapping[str, str], candidate_id: str, candidate_version: int) -> AttemptRecord:
        """Record a new test run of change ``seq``. The same run asking again (a retried task)
        gets its attempt back; another run starting at the same moment gets ConflictError."""
        numbers = [int(m[2]) for m in map(_ATTEMPT.fullmatch, self._names("attempts")) if m and int(m[1]) == seq]
        if numbers:
            latest = self.attempt(seq, max(numbers))
            if latest.run_id == run_id:
                return latest
        record = AttemptRecord(seq=seq, number=max(numbers, default=0) + 1, run_id=run_id, base_version=base_version,
                               ahead=list(ahead), services=dict(services), candidate_id=candidate_id,
                               candidate_version=candidate_version, started=self._clock())
        if not self._create(_key("attempts", seq, record.number), record):
            raise ConflictError(f"queue: change #{seq} attempt {record.number} was started by another run")
        return record

    def record_result(self, seq: int, number: int, *, passed: bool, run_id: str) -> None:
        """The attempt's result; recording the same result again is a no-op, a different one is refused."""
        record = ResultRecord(passed=passed, run_id=run_id, finished=self._clock())
        if not self._create(_key("results", seq, number), record):
            stored = self._load(ResultRecord, _key("results", seq, number))
            if stored.passed != passed:
                raise ConflictError(f"queue: change #{seq} attempt {number} already has a result "
                                    f"({'passed' if stored.passed else 'failed'})")

    def hand_over(self, seq: int, number: int, *, run_id: str) -> None:
        """Say which run tests change ``seq`` after its attempt ``number`` (before triggering it)."""
        self._create(_key("handovers", seq, number), HandoverRecord(run_id=run_id, handed_over=self._clock()))

    def handover(self, seq: int, number: int) -> str | None:
        """The run that took change ``seq`` over after attempt ``number`` (0: before its first), if any."""
        try:
            return self._load(HandoverRecord, _key("handovers", seq, number)).run_id
        except NotFoundError:
            return None

    def settle(self, seq: int, settlement: Settlement, *, run_id: str | None = None, detail: str | None = None,
               l3_version: int | None = None) -> SettledRecord:
        """Take change ``seq`` out of the queue; the first settlement stands (returned)."""
        record = SettledRecord(settlement=settlement, run_id=run_id, detail=detail, l3_version=l3_version,
                               settled=self._clock())
        if self._create(_key("settled", seq), record):
            return record
        return self.settled(seq) or record

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self.backend.exclusive():
            yield
