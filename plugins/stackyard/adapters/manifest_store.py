"""Where L3 manifests live: an append-only history with compare-and-swap promotion.

One contract, two backends. :class:`ManifestStore` implements the contract once on top of four
small primitives a backend provides (list keys under a folder, read a key, create a key at most
once, and optionally an exclusive section). Both backends share one layout, relative to their
root (a directory, or ``s3://bucket/prefix``)::

    manifests/v000001.json               one immutable object per L3 version
    reports/<subject>/<stamp>-<id>.json  gate reports; subject is v000005 or a candidate id
    rejections/<stamp>-<id>.json         rejected candidates with reason and report

The latest L3 manifest is the highest version present. There is no separate "latest" pointer
that could disagree with history. Promotion is a compare-and-swap: it creates
``manifests/v<parent+1>.json`` only if that key does not exist yet, so of two promotions from
the same parent exactly one wins and the other gets :class:`ConflictError`. A version, once
written, is never overwritten.

Gate records (the API callers use around a gate run):

- ``record_report(subject, report)``: store a gate run's :class:`~stackyard.core.records.GateReport`
  (outcome, before/after, tests, reason, durations) for a promoted version (``int``) or a
  candidate (its ``candidate_id``).
- ``record_rejection(candidate, reason, report)``: store a rejected candidate, why, and its
  :class:`~stackyard.core.records.RejectionReport`.
- ``reports(subject, limit=None)``: records for a version or candidate id, newest first; asking
  by version also returns what was recorded under that version's candidate id before it was
  promoted.
- ``rejections(limit=None)``: rejected candidates, newest first.

Records are the typed models of :mod:`stackyard.core.records` (the envelope ``GateRecord`` and
its report), at most 1 MiB; anything else raises :class:`InputError`. Keeping secrets out of
them is the caller's duty: the store writes them verbatim.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from stackyard.core.manifest import Manifest, check_candidate, validate_candidate_id
from stackyard.core.records import GateRecord, GateReport, RecordKind, RejectionReport  # noqa: F401 (GateRecord, RecordKind: re-exported)
from stackyard.adapters.backends import Backend, LocalBackend, S3Backend, open_backend
from stackyard.adapters.record_store import RECORD_NAME, load_json, newest_first, plain_json_object, record_name, utc_now
from stackyard.exceptions import ConflictError, InputError, NotFoundError

MANIFESTS = "manifests"
REPORTS = "reports"
REJECTIONS = "rejections"

_MANIFEST_NAME = re.compile(r"v([0-9]{6,})\.json")

Clock = Callable[[], datetime]


def manifest_key(version: int) -> str:
    return f"{MANIFESTS}/v{version:06d}.json"


class ManifestStore:
    """The L3 history contract; see the module docstring for layout and semantics."""

    def __init__(self, backend: Backend, *, clock: Clock = utc_now) -> None:
        self.backend = backend
        self._clock = clock

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend.location!r})"

    # --- backend primitives (see stackyard.adapters.backends) ------------------------------------

    def _list_keys(self, folder: str) -> list[str]:
        return self.backend.list_keys(folder)

    def _read(self, key: str) -> bytes:
        return self.backend.read(key)

    def _create(self, key: str, body: bytes) -> bool:
        return self.backend.create(key, body)

    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self.backend.exclusive()

    # --- history -------------------------------------------------------------------------------

    def versions(self) -> list[int]:
        """Every version present, ascending."""
        names = (key.rsplit("/", 1)[-1] for key in self._list_keys(MANIFESTS))
        return sorted(int(match[1]) for match in map(_MANIFEST_NAME.fullmatch, names) if match)

    def latest(self) -> Manifest | None:
        """The current L3 manifest: the highest version present, or None for an empty store."""
        versions = self.versions()
        return self.get(versions[-1]) if versions else None

    def get(self, version: int) -> Manifest:
        """Manifest ``version``; :class:`NotFoundError` if there is none."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InputError(f"version: expected an integer >= 1, got {version!r}")
        key = manifest_key(version)
        try:
            body = self._read(key)
        except NotFoundError as error:
            raise NotFoundError(f"L3 manifest v{version} not found in {self!r}") from error
        manifest = Manifest.from_dict(load_json(body, key))
        if manifest.version != version:
            raise InputError(f"{key} holds version {manifest.version}, not {version}")
        return manifest

    def history(self, limit: int | None = None) -> list[Manifest]:
        """Manifests newest first, at most ``limit`` of them."""
        return [self.get(version) for version in newest_first(self.versions(), limit)]

    def seed(self, manifest: Manifest) -> Manifest:
        """Store the first manifest (version 1) into an empty store and return what is stored.

        Seeding the same pins again is a no-op; anything else on a non-empty store raises
        :class:`ConflictError`.
        """
        _require_manifest(manifest)
        if manifest.version != 1:
            raise InputError(f"only version 1 can be seeded, got v{manifest.version}")
        with self._exclusive():
            if not self.versions() and self._create(manifest_key(1), _manifest_bytes(manifest)):
                return manifest
            first = self._existing(1)
            if first is not None and first.candidate_id == manifest.candidate_id:
                return first
            stored = f"v1 {first.digest}" if first else f"versions {self.versions()} without v1"
            raise ConflictError(f"{self!r} is already seeded ({stored}); refusing to seed {manifest.digest}")

    def promote(self, candidate: Manifest) -> Manifest:
        """Make ``candidate`` the new L3 manifest if its parent is still the latest.

        Returns the stored manifest. A retry of a candidate already promoted (same candidate id
        at its version) returns the stored one instead of promoting twice. Raises
        :class:`ConflictError` if L3 moved past the candidate's parent, and :class:`InputError`
        if the candidate is not its parent plus exactly one service change.
        """
        _require_manifest(candidate)
        if candidate.parent is None:
            raise InputError("version 1 has no parent: seed it, don't promote it")
        with self._exclusive():
            latest = self.latest()
            if latest is None:
                raise NotFoundError(f"{self!r} is empty: seed version 1 before promoting")
            # Read latest first, then the candidate's slot: history only grows, so a slot at or
            # below latest is settled. (Checking the slot first races with a concurrent identical
            # promote on a lock-free backend and reports a false conflict.)
            if latest.version >= candidate.version:
                already = self.get(candidate.version)
                if already.candidate_id == candidate.candidate_id:
                    return already
            if latest.version != candidate.parent:
                raise ConflictError(
                    f"L3 moved: current version is v{latest.version}, candidate "
                    f"{candidate.candidate_id} expected v{candidate.parent}"
                )
            check_candidate(latest, candidate)
            if self._create(manifest_key(candidate.version), _manifest_bytes(candidate)):
                return candidate
            # Lost the race (a backend without a lock): the conditional create is the arbiter.
            winner = self.get(candidate.version)
            if winner.candidate_id == candidate.candidate_id:
                return winner
            raise ConflictError(
                f"L3 moved: current version is v{winner.version} ({winner.candidate_id}), "
                f"candidate {candidate.candidate_id} expected v{candidate.parent}"
            )

    def _existing(self, version: int) -> Manifest | None:
        try:
            return self.get(version)
        except NotFoundError:
            return None

    # --- gate records --------------------------------------------------------------------------

    def record_report(self, subject: int | str, report: GateReport) -> GateRecord:
        """Store ``report`` for a promoted version (int, must exist) or a candidate id (str)."""
        if not isinstance(report, GateReport):
            raise InputError(f"report: expected a GateReport, got {type(report).__name__}")
        folder = self._report_folder(subject, must_exist=True)
        plain_json_object(report.to_json(), "report")  # the size limit
        record = GateRecord(RecordKind.REPORT, folder.rsplit("/", 1)[-1], self._clock(), report)
        return self._write_record(folder, record)

    def record_rejection(self, candidate: Manifest, reason: str, report: RejectionReport) -> GateRecord:
        """Store a rejected candidate with why it was rejected and the gate's report."""
        _require_manifest(candidate)
        if not isinstance(reason, str) or not reason.strip():
            raise InputError("reason: a rejection needs a non-empty reason")
        if not isinstance(report, RejectionReport):
            raise InputError(f"report: expected a RejectionReport, got {type(report).__name__}")
        plain_json_object(report.to_json(), "report")
        record = GateRecord(RecordKind.REJECTION, candidate.candidate_id, self._clock(), report, reason, candidate)
        return self._write_record(REJECTIONS, record)

    def reports(self, subject: int | str, limit: int | None = None) -> list[GateRecord]:
        """Reports for a version or candidate id, newest first; a version includes its candidate's."""
        folders = [self._report_folder(subject, must_exist=False)]
        if isinstance(subject, int):
            manifest = self._existing(subject)
            if manifest is not None:
                folders.append(f"{REPORTS}/{manifest.candidate_id}")
        return self._read_records([key for folder in folders for key in self._list_keys(folder)], limit)

    def rejections(self, limit: int | None = None) -> list[GateRecord]:
        """Rejected candidates, newest first."""
        return self._read_records(self._list_keys(REJECTIONS), limit)

    def _report_folder(self, subject: int | str, *, must_exist: bool) -> str:
        if isinstance(subject, bool) or not isinstance(subject, (int, str)):
            raise InputError(f"subject: expected a version number or candidate id, got {subject!r}")
        if isinstance(subject, str):
            return f"{REPORTS}/{validate_candidate_id(subject, 'subject')}"
        if must_exist:
            self.get(subject)
        elif subject < 1:
            raise InputError(f"subject: expected a version >= 1, got {subject}")
        return f"{REPORTS}/v{subject:06d}"

    def _write_record(self, folder: str, record: GateRecord) -> GateRecord:
        name = record_name(record.recorded)
        body = json.dumps(record.to_dict(), sort_keys=True, indent=1).encode()
        if not self._create(f"{folder}/{name}", body):
            raise ConflictError(f"gate record {folder}/{name} already exists")
        return record

    def _read_records(self, keys: list[str], limit: int | None) -> list[GateRecord]:
        named = {key.rsplit("/", 1)[-1]: key for key in keys if RECORD_NAME.fullmatch(key.rsplit("/", 1)[-1])}
        newest = newest_first(sorted(named), limit)
        return [GateRecord.from_dict(load_json(self._read(named[name]), named[name]), named[name]) for name in newest]


# --- helpers shared by the backends ---------------------------------------------------------------


def _require_manifest(value: object) -> None:
    if not isinstance(value, Manifest):
        raise InputError(f"expected a Manifest, got {type(value).__name__}")


def _manifest_bytes(manifest: Manifest) -> bytes:
    return json.dumps(manifest.to_dict(), sort_keys=True, indent=1).encode() + b"\n"


# --- the two backends, by name -------------------------------------------------------------------


class LocalManifestStore(ManifestStore):
    """The zero-setup store: the layout above under a local directory (see LocalBackend)."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = utc_now) -> None:
        super().__init__(LocalBackend(path), clock=clock)

    @property
    def root(self) -> Path:
        return self.backend.root


class S3ManifestStore(ManifestStore):
    """The layout above under ``s3://bucket/prefix`` (see S3Backend: conditional writes)."""

    def __init__(self, bucket: str, prefix: str, client: Any, *, clock: Clock = utc_now) -> None:
        super().__init__(S3Backend(bucket, prefix, client), clock=clock)

    bucket = property(lambda self: self.backend.bucket)
    prefix = property(lambda self: self.backend.prefix)
    client = property(lambda self: self.backend.client)


def open_manifest_store(
    url: str, *, s3_client_factory: Callable[[], Any] | None = None, clock: Clock = utc_now
) -> ManifestStore:
    """A store for ``file:///path``, a plain path, or ``s3://bucket/prefix``.

    ``s3_client_factory`` builds the boto3 S3 client (the Airflow hook passes one built from an
    AWS connection); without it ``boto3.client("s3")`` uses the default credential chain.
    """
    return ManifestStore(open_backend(url, s3_client_factory=s3_client_factory, what="manifest store"), clock=clock)
