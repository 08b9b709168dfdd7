"""In-memory object store: one global resourceVersion, per-resource/per-namespace indexes,
cached JSON encodings, an event log for watches and an owner index for garbage collection."""

from __future__ import annotations

import bisect
import json
import threading
from typing import Callable, Iterable


Key = tuple[str, str]  # (group, plural)

RESTART_GAP = 1_000_000  # resourceVersions skipped at a restart from a snapshot
EVENT_LOG = 20000  # watch events kept for resumption; older resourceVersions get 410 Expired


def dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Entry:
    """A stored object and its JSON encoding.  Stored objects are never mutated in place."""

    __slots__ = ("obj", "_raw")

    def __init__(self, obj: dict):
        self.obj = obj
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = dumps(self.obj)
        return self._raw


class Event:
    __slots__ = ("rv", "key", "ns", "type", "entry", "old")

    def __init__(self, rv: int, key: Key, ns: str, type_: str, entry: Entry, old: dict | None):
        self.rv, self.key, self.ns, self.type, self.entry, self.old = rv, key, ns, type_, entry, old


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 1
        self._data: dict[Key, dict[str, dict[str, Entry]]] = {}
        self._events: list[Event] = []
        self._event_rvs: list[int] = []
        self.compacted_rv = 1  # events with rv <= this are gone
        self._owners: dict[str, set[tuple[Key, str, str]]] = {}
        # (resource, label key, label value) -> {(namespace, name)}: equality selectors skip scans
        self._labels: dict[tuple[Key, str, str], set[tuple[str, str]]] = {}
        self.listeners: list[Callable[[str, Key, dict, dict | None], None]] = []
        self.dirty = False

    # ----------------------------------------------------------------- reads
    def get(self, key: Key, ns: str, name: str) -> dict | None:
        e = self._data.get(key, {}).get(ns, {}).get(name)
        return e.obj if e else None

    def entry(self, key: Key, ns: str, name: str) -> Entry | None:
        return self._data.get(key, {}).get(ns, {}).get(name)

    def entries(self, key: Key, ns: str | None) -> Iterable[Entry]:
        """Entries of a resource in one namespace (``None`` = all namespaces), unordered."""
        buckets = self._data.get(key)
        if not buckets:
            return []
        if ns is not None:
            return list(buckets.get(ns, {}).values())
        return [e for b in buckets.values() for e in b.values()]

    def namespace_contents(self, ns: str) -> list[tuple[Key, Entry]]:
        return [(key, e) for key, buckets in self._data.items() for e in buckets.get(ns, {}).values()]

    def by_label(self, key: Key, label: str, value: str) -> list[Entry]:
        out = []
        buckets = self._data.get(key, {})
        for ns, name in self._labels.get((key, label, value), ()):
            e = buckets.get(ns, {}).get(name)
            if e is not None:
                out.append(e)
        return out

    def label_count(self, key: Key, label: str, value: str) -> int:
        return len(self._labels.get((key, label, value), ()))

    def dependents(self, uid: str) -> list[tuple[Key, str, str]]:
        return list(self._owners.get(uid, ()))

    def count(self) -> int:
        return sum(len(b) for buckets in self._data.values() for b in buckets.values())

    # ----------------------------------------------------------------- writes (caller holds lock)
    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def put(self, key: Key, obj: dict, type_: str) -> Entry:
        """Store ``obj`` (whose metadata.resourceVersion the caller set from next_rv())."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        bucket = self._data.setdefault(key, {}).setdefault(ns, {})
        old = bucket.get(name)
        if old is not None:
            self._unindex(key, ns, name, old.obj)
        entry = Entry(obj)
        bucket[name] = entry
        self._index(key, ns, name, obj)
        self._record(key, ns, type_, entry, old.obj if old else None)
        return entry

    def remove(self, key: Key, ns: str, name: str, final: dict) -> None:
        bucket = self._data.get(key, {}).get(ns, {})
        old = bucket.pop(name, None)
        if old is None:
            return
        if not bucket:
            del self._data[key][ns]
        self._unindex(key, ns, name, old.obj)
        self._record(key, ns, "DELETED", Entry(final), old.obj)

    def _index(self, key, ns, name, obj) -> None:
        meta = obj["metadata"]
        for ref in meta.get("ownerReferences") or ():
            self._owners.setdefault(ref.get("uid", ""), set()).add((key, ns, name))
        for lk, lv in (meta.get("labels") or {}).items():
            self._labels.setdefault((key, lk, lv), set()).add((ns, name))

    def _unindex(self, key, ns, name, obj) -> None:
        for lk, lv in ((obj.get("metadata") or {}).get("labels") or {}).items():
            s = self._labels.get((key, lk, lv))
            if s:
                s.discard((ns, name))
                if not s:
                    del self._labels[(key, lk, lv)]
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
            s = self._owners.get(ref.get("uid", ""))
            if s:
                s.discard((key, ns, name))
                if not s:
                    del self._owners[ref.get("uid", "")]

    def _record(self, key, ns, type_, entry, old) -> None:
        rv = int(entry.obj["metadata"]["resourceVersion"])
        self._events.append(Event(rv, key, ns, type_, entry, old if type_ == "MODIFIED" else None))
        self._event_rvs.append(rv)
        if len(self._events) > 2 * EVENT_LOG:
            cut = len(self._events) - EVENT_LOG
            self.compacted_rv = self._event_rvs[cut - 1]
            del self._events[:cut]
            del self._event_rvs[:cut]
        self.dirty = True
        for fn in self.listeners:
            fn(type_, key, entry.obj, old)
        self.cond.notify_all()

    def events_since(self, rv: int) -> list[Event]:
        i = bisect.bisect_right(self._event_rvs, rv)
        return self._events[i:]

    # ----------------------------------------------------------------- snapshot
    def dump(self) -> dict:
        with self.lock:
            return {"resourceVersion": self.rv,
                    "objects": [{"group": k[0], "plural": k[1], "object": e.obj}
                                for k, buckets in self._data.items() for b in buckets.values() for e in b.values()]}

    def load(self, data: dict) -> None:
        with self.lock:
            for item in data.get("objects", []):
                obj = item["object"]
                key = (item["group"], item["plural"])
                meta = obj["metadata"]
                ns = meta.get("namespace", "")
                self._data.setdefault(key, {}).setdefault(ns, {})[meta["name"]] = Entry(obj)
                self._index(key, ns, meta["name"], obj)
            # A new incarnation: clients may hold resourceVersions newer than the snapshot (writes after
            # its last save). Jump past them and treat everything before as compacted, so resuming
            # watches get 410 Expired and re-list instead of waiting for versions that will never come.
            self.rv = max(self.rv, int(data.get("resourceVersion", 1))) + RESTART_GAP
            self.compacted_rv = self.rv
            self.dirty = False
