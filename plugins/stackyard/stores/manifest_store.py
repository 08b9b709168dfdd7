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

- ``record_report(subject, report)``: store a JSON summary of a gate run (before/after, test
  output tail, durations) for a promoted version (``int``) or a candidate (its ``candidate_id``).
- ``record_rejection(candidate, reason, report)``: store a rejected candidate, why, and the
  report.
- ``reports(subject, limit=None)``: records for a version or candidate id, newest first; asking
  by version also returns what was recorded under that version's candidate id before it was
  promoted.
- ``rejections(limit=None)``: rejected candidates, newest first.

Reports must be plain JSON (str keys; str, int, finite float, bool, None, list, dict values) and
at most 1 MiB; anything else raises :class:`InputError`. Keeping secrets out of them is the
caller's duty: the store writes them verbatim.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from stackyard.domain.manifest import Manifest, check_candidate, validate_candidate_id
from stackyard.exceptions import AccessDeniedError, ConflictError, InputError, NotFoundError

RECORD_SCHEMA = 1
MAX_REPORT_BYTES = 1024 * 1024

MANIFESTS = "manifests"
REPORTS = "reports"
REJECTIONS = "rejections"

_MANIFEST_NAME = re.compile(r"v([0-9]{6,})\.json")
_RECORD_NAME = re.compile(r"[0-9]{8}T[0-9]{12}Z-[0-9a-f]+\.json")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def manifest_key(version: int) -> str:
    return f"{MANIFESTS}/v{version:06d}.json"


class RecordKind(str, Enum):
    REPORT = "report"
    REJECTION = "rejection"


@dataclass(frozen=True)
class GateRecord:
    """A stored gate report or rejection. ``report`` is a fresh copy on every read."""

    kind: RecordKind
    subject: str
    recorded: datetime
    report: dict[str, Any]
    reason: str | None = None
    candidate: Manifest | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": RECORD_SCHEMA,
            "kind": self.kind.value,
            "subject": self.subject,
            "recorded": self.recorded.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "reason": self.reason,
            "report": self.report,
            "candidate": self.candidate.to_dict() if self.candidate else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateRecord:
        if data.get("schema") != RECORD_SCHEMA:
            raise InputError(f"gate record schema: expected {RECORD_SCHEMA}, got {data.get('schema')!r}")
        try:
            return cls(
                kind=RecordKind(data["kind"]),
                subject=data["subject"],
                recorded=datetime.fromisoformat(data["recorded"]).astimezone(timezone.utc),
                report=data["report"],
                reason=data["reason"],
                candidate=Manifest.from_dict(data["candidate"]) if data["candidate"] else None,
            )
        except (KeyError, ValueError, TypeError) as error:
            raise InputError(f"gate record is malformed: {error!r}") from error


class ManifestStore(ABC):
    """The L3 history contract; see the module docstring for layout and semantics."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock

    # --- backend primitives --------------------------------------------------------------------

    @abstractmethod
    def _list_keys(self, folder: str) -> list[str]:
        """Keys directly under ``folder`` (relative to the store root), in any order."""

    @abstractmethod
    def _read(self, key: str) -> bytes:
        """The bytes at ``key``; :class:`NotFoundError` if absent."""

    @abstractmethod
    def _create(self, key: str, body: bytes) -> bool:
        """Atomically create ``key`` unless it exists; False (and nothing written) if it does."""

    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Serialise read-check-write sections where the backend can (the CAS holds regardless)."""
        return contextlib.nullcontext()

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
        manifest = Manifest.from_dict(_load_json(body, key))
        if manifest.version != version:
            raise InputError(f"{key} holds version {manifest.version}, not {version}")
        return manifest

    def history(self, limit: int | None = None) -> list[Manifest]:
        """Manifests newest first, at most ``limit`` of them."""
        return [self.get(version) for version in _newest_first(self.versions(), limit)]

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

    def record_report(self, subject: int | str, report: Mapping[str, Any]) -> GateRecord:
        """Store ``report`` for a promoted version (int, must exist) or a candidate id (str)."""
        folder = self._report_folder(subject, must_exist=True)
        record = GateRecord(RecordKind.REPORT, folder.rsplit("/", 1)[-1], self._clock(), _json_report(report))
        return self._write_record(folder, record)

    def record_rejection(self, candidate: Manifest, reason: str, report: Mapping[str, Any]) -> GateRecord:
        """Store a rejected candidate with why it was rejected and the gate's report."""
        _require_manifest(candidate)
        if not isinstance(reason, str) or not reason.strip():
            raise InputError("reason: a rejection needs a non-empty reason")
        record = GateRecord(
            RecordKind.REJECTION, candidate.candidate_id, self._clock(), _json_report(report), reason, candidate
        )
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
        # The timestamp first makes name order time order; the random tail makes names unique.
        name = f"{record.recorded:%Y%m%dT%H%M%S%f}Z-{uuid.uuid4().hex[:12]}.json"
        body = json.dumps(record.to_dict(), sort_keys=True, indent=1).encode()
        if not self._create(f"{folder}/{name}", body):
            raise ConflictError(f"gate record {folder}/{name} already exists")
        return record

    def _read_records(self, keys: list[str], limit: int | None) -> list[GateRecord]:
        named = {key.rsplit("/", 1)[-1]: key for key in keys if _RECORD_NAME.fullmatch(key.rsplit("/", 1)[-1])}
        newest = _newest_first(sorted(named), limit)
        return [GateRecord.from_dict(_load_json(self._read(named[name]), named[name])) for name in newest]


# --- helpers shared by the backends ---------------------------------------------------------------


def _require_manifest(value: object) -> None:
    if not isinstance(value, Manifest):
        raise InputError(f"expected a Manifest, got {type(value).__name__}")


def _manifest_bytes(manifest: Manifest) -> bytes:
    return json.dumps(manifest.to_dict(), sort_keys=True, indent=1).encode() + b"\n"


def _load_json(body: bytes, key: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise InputError(f"{key} is not valid JSON: {error}") from error


def _newest_first(items: list, limit: int | None) -> list:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise InputError(f"limit: expected None or an integer >= 0, got {limit!r}")
    newest = list(reversed(items))
    return newest if limit is None else newest[:limit]


def _json_report(report: object) -> dict[str, Any]:
    """A deep copy of ``report`` as plain JSON, or InputError naming the offending path."""
    if not isinstance(report, Mapping):
        raise InputError(f"report: expected a JSON object, got {type(report).__name__}")
    copy = _plain_json(report, "report")
    size = len(json.dumps(copy))
    if size > MAX_REPORT_BYTES:
        raise InputError(f"report: {size} bytes is over {MAX_REPORT_BYTES}; store a summary and an output tail")
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


# --- local directory backend ----------------------------------------------------------------------


class LocalManifestStore(ManifestStore):
    """The zero-setup backend: the layout above under a local directory.

    Each key is written to a temporary file in its final directory, flushed, then hard-linked
    to its name: ``link`` fails if the name exists, so a key is created at most once and is
    never seen half-written. An ``flock`` on ``<root>/.lock`` serialises promotions across
    threads and processes on one host (do not share the directory over NFS).
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        self.root = Path(path)

    def __repr__(self) -> str:
        return f"LocalManifestStore({str(self.root)!r})"

    def _list_keys(self, folder: str) -> list[str]:
        try:
            names = os.listdir(self.root / folder)
        except FileNotFoundError:
            return []
        return [f"{folder}/{name}" for name in names if not name.startswith(".")]

    def _read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError as error:
            raise NotFoundError(f"{key} not found under {self.root}") from error

    def _create(self, key: str, body: bytes) -> bool:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, target)
        except FileExistsError:
            return False
        finally:
            os.unlink(temporary)
        _fsync_directory(target.parent)
        return True

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)  # closing the descriptor releases the lock


def _fsync_directory(path: Path) -> None:
    # Makes the new name itself durable, not only the file's bytes.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- S3 backend -----------------------------------------------------------------------------------


class S3ManifestStore(ManifestStore):
    """The layout above under ``s3://bucket/prefix``, using an injected boto3 S3 client.

    Keys are created with ``PutObject`` and ``If-None-Match: *``: S3 answers 412 if the key
    exists, which is the compare-and-swap (no lock needed, any number of writers). A 409
    ``ConditionalRequestConflict`` (a concurrent conditional write still in flight) is retried
    briefly, then resolves to a win or a 412.
    """

    conflict_retries = 5

    def __init__(self, bucket: str, prefix: str, client: Any, *, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        if not bucket or "/" in bucket:
            raise InputError(f"bucket: {bucket!r} is not a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client

    def __repr__(self) -> str:
        return f"S3ManifestStore('s3://{self.bucket}/{self.prefix}')"

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _list_keys(self, folder: str) -> list[str]:
        from botocore.exceptions import ClientError  # botocore ships with every boto3 client

        listed = self._object_key(folder) + "/"
        strip = len(self._object_key(""))
        keys = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=listed, Delimiter="/"
            )
            for page in pages:
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        except ClientError as error:
            _raise_if_access_denied(error, f"list s3://{self.bucket}/{listed}")
            raise
        return keys

    def _read(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        object_key = self._object_key(key)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=object_key)["Body"].read()
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise NotFoundError(f"s3://{self.bucket}/{object_key} not found") from error
            _raise_if_access_denied(error, f"read s3://{self.bucket}/{object_key}")
            raise

    def _create(self, key: str, body: bytes) -> bool:
        object_key = self._object_key(key)
        for attempt in range(self.conflict_retries):
            outcome = self._put_if_absent(object_key, body)
            if outcome is not None:
                return outcome
            time.sleep(0.05 * 2**attempt)
        raise ConflictError(f"s3://{self.bucket}/{object_key}: concurrent conditional writes kept conflicting")

    def _put_if_absent(self, object_key: str, body: bytes) -> bool | None:
        """True if created, False if it already existed, None if S3 asks to retry (409)."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=object_key, Body=body, ContentType="application/json", IfNoneMatch="*"
            )
            return True
        except ClientError as error:
            code = _error_code(error)
            if code in {"PreconditionFailed", "412"}:
                return False
            if code in {"ConditionalRequestConflict", "409"}:
                return None
            _raise_if_access_denied(error, f"write s3://{self.bucket}/{object_key}")
            raise


def _error_code(error: Any) -> str:
    """The S3 error code, or the HTTP status as text when the body had none (HEAD-style errors)."""
    response = getattr(error, "response", {})
    code = response.get("Error", {}).get("Code")
    return str(code or response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _raise_if_access_denied(error: Any, action: str) -> None:
    if _error_code(error) in {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        raise AccessDeniedError(f"{action}: {error}") from error


# --- opening a store by URL -----------------------------------------------------------------------


def open_manifest_store(
    url: str, *, s3_client_factory: Callable[[], Any] | None = None, clock: Clock = utc_now
) -> ManifestStore:
    """A store for ``file:///path``, a plain path, or ``s3://bucket/prefix``.

    ``s3_client_factory`` builds the boto3 S3 client (the Airflow hook passes one built from an
    AWS connection); without it ``boto3.client("s3")`` uses the default credential chain.
    """
    if not isinstance(url, str) or not url:
        raise InputError(f"manifest store URL: expected a non-empty string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if parts.query or parts.fragment:
            raise InputError(f"manifest store URL {url!r}: query and fragment are not supported")
        client = s3_client_factory() if s3_client_factory else _default_s3_client()
        return S3ManifestStore(parts.netloc, unquote(parts.path), client, clock=clock)
    if parts.scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise InputError(f"manifest store URL {url!r}: file URLs must name a local path (file:///path)")
        return LocalManifestStore(unquote(parts.path), clock=clock)
    if parts.scheme == "":
        return LocalManifestStore(url, clock=clock)
    raise InputError(f"manifest store URL {url!r}: scheme must be file or s3, or give a plain path")


def _default_s3_client() -> Any:
    import boto3  # deferred: only S3 users need it

    return boto3.client("s3")
