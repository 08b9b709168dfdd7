"""Append-only JSON records: what happened to stacks, for people and the Stacks view.

A record store keeps *streams*; each append creates one immutable JSON object named by its time
(plus a random tail), so name order is time order and nothing is ever overwritten. Same backends
as the manifest store (:mod:`stackyard.adapters.backends`): a local directory or S3.

Each stream holds one model of :mod:`stackyard.core.records` (the table there: rollout records,
stack events, reaper reports). :meth:`RecordStore.write` is their one writer and
:meth:`RecordStore.read` their one reader; ``append``/``list`` are the untyped layer beneath.

Records are plain JSON (at most 1 MiB) and never hold secrets: callers store digests, not values.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from stackyard.core.records import RolloutRecord, R, ReaperReport, StackEvent, Stored
from stackyard.exceptions import ConflictError, InputError
from stackyard.adapters.backends import Backend, open_backend

MAX_RECORD_BYTES = 1024 * 1024
RECORD_NAME = re.compile(r"[0-9]{8}T[0-9]{12}Z-[0-9a-f]+\.json")
_STREAM = re.compile(r"^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def record_name(recorded: datetime) -> str:
    # The timestamp first makes name order time order; the random tail makes names unique.
    return f"{recorded:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:12]}.json"


def newest_first(items: list, limit: int | None) -> list:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit: expected None or an integer >= 0, got {limit!r}")
    newest = list(reversed(items))
    return newest if limit is None else newest[:limit]


def load_json(body: bytes, key: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise InputError(f"{key} is not valid JSON: {error}") from error


def plain_json_object(value: object, where: str) -> dict[str, Any]:
    """A deep copy of ``value`` as a plain JSON object, or InputError naming the offending path."""
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: expected a JSON object, got {type(value).__name__}")
    copy = _plain_json(value, where)
    size = len(json.dumps(copy))
    if size > MAX_RECORD_BYTES:
        raise InputError(f"{where}: {size} bytes is over {MAX_RECORD_BYTES}; store a summary and an output tail")
    return copy


def _plain_json(value: object, where: str) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{where}: {value} is not representable in JSON")
        return value
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise InputError(f"{where}: key {key!r} is not a string")
        return {key: _plain_json(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise InputError(f"{where}: {type(value).__name__} is not JSON-serialisable")


@dataclass(frozen=True)
class Record:
    stream: str
    key: str
    recorded: datetime
    data: dict[str, Any]


class RecordStore:
    def __init__(self, backend: Backend, *, clock: Clock = utc_now) -> None:
        self.backend = backend
        self._clock = clock

    def __repr__(self) -> str:
        return f"RecordStore({self.backend.location!r})"

    def append(self, stream: str, data: Mapping[str, Any]) -> Record:
        """Store ``data`` as the newest record of ``stream``."""
        _check_stream(stream)
        recorded = self._clock()
        body = {"recorded": recorded.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "data": plain_json_object(data, "record")}
        key = f"{stream}/{record_name(recorded)}"
        if not self.backend.create(key, json.dumps(body, sort_keys=True).encode()):
            raise ConflictError(f"record {key} already exists")
        return Record(stream, key, recorded, body["data"])

    def list(self, stream: str, limit: int | None = None) -> list[Record]:
        """Records of ``stream``, newest first, at most ``limit``."""
        _check_stream(stream)
        names = sorted(k.rsplit("/", 1)[-1] for k in self.backend.list_keys(stream))
        records = []
        for name in newest_first([n for n in names if RECORD_NAME.fullmatch(n)], limit):
            key = f"{stream}/{name}"
            body = load_json(self.backend.read(key), key)
            recorded = datetime.fromisoformat(body["recorded"].replace("Z", "+00:00"))
            records.append(Record(stream, key, recorded, body["data"]))
        return records

    def write(self, record: RolloutRecord | StackEvent | ReaperReport) -> Stored:
        """Store a typed record as the newest of its own stream (``record.stream``)."""
        stored = self.append(record.stream, record.to_json())
        return Stored(stored.recorded, record, stored.key)

    def read(self, stream: str, model: type[R], limit: int | None = None, *,
             on_invalid: Callable[[str, InputError], None] | None = None) -> list[Stored[R]]:
        """The records of ``stream`` as ``model``, newest first. A record that is not a valid
        ``model`` raises InputError naming its key, or with ``on_invalid`` is reported to it and
        left out (a page must not fail on one bad record)."""
        out = []
        for raw in self.list(stream, limit):
            try:
                out.append(Stored(raw.recorded, model.from_json(raw.data, raw.key), raw.key))
            except InputError as error:
                if on_invalid is None:
                    raise
                on_invalid(raw.key, error)
        return out

    def streams(self, prefix: str) -> list[str]:
        """Streams under ``prefix`` (e.g. ``stacks/`` → ``stacks/qa1/rollouts``, …), sorted."""
        found, pending = [], [prefix.strip("/")]
        while pending:
            folder = pending.pop()
            if self.backend.list_keys(folder):
                found.append(folder)
            pending.extend(self.backend.list_folders(folder))
        return sorted(f for f in found if f)


def _check_stream(stream: str) -> None:
    if not isinstance(stream, str) or not _STREAM.match(stream):
        raise InputError(f"stream {stream!r}: expected lowercase path segments like 'stacks/qa1/rollouts'")


def open_record_store(url: str, *, s3_client_factory: Callable[[], Any] | None = None,
                      clock: Clock = utc_now) -> RecordStore:
    """A record store for ``file:///path``, a plain path, or ``s3://bucket/prefix``."""
    return RecordStore(open_backend(url, s3_client_factory=s3_client_factory, what="record store"), clock=clock)
