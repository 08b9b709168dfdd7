"""Key-value backends for stackyard's append-only stores (L3 manifests, records).

Four primitives are all a store needs: list the keys under a folder, read a key, create a key at
most once (atomically), and an optional exclusive section. Two backends provide them:

- :class:`LocalBackend` — a local directory: each key is written to a temporary file in its final
  directory, flushed, then hard-linked to its name; ``link`` fails if the name exists, so a key
  is created at most once and never seen half-written. An ``flock`` on ``<root>/.lock``
  serialises read-check-write sections across threads and processes on one host (do not share the
  directory over NFS).
- :class:`S3Backend` — ``s3://bucket/prefix`` with an injected boto3 client: keys are created
  with ``PutObject`` and ``If-None-Match: *``; S3 answers 412 if the key exists, which is the
  compare-and-swap (no lock needed, any number of writers). A 409 ``ConditionalRequestConflict``
  (a concurrent conditional write in flight) is retried briefly, then resolves to a win or a 412.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from stackyard.exceptions import AccessDeniedError, ConflictError, InputError, NotFoundError


class Backend(ABC):
    """The primitives; keys are ``/``-separated paths relative to the backend's root."""

    location: str

    @abstractmethod
    def list_keys(self, folder: str) -> list[str]:
        """Keys directly under ``folder``, in any order (temporary files excluded)."""

    @abstractmethod
    def list_folders(self, folder: str) -> list[str]:
        """Sub-folders directly under ``folder`` (as keys relative to the root)."""

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The bytes at ``key``; :class:`NotFoundError` if absent."""

    @abstractmethod
    def create(self, key: str, body: bytes) -> bool:
        """Atomically create ``key`` unless it exists; False (and nothing written) if it does."""

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Serialise read-check-write sections where the backend can (CAS holds regardless)."""
        return contextlib.nullcontext()


class LocalBackend(Backend):
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.root = Path(path)
        self.location = str(self.root)

    def list_keys(self, folder: str) -> list[str]:
        try:
            entries = list(os.scandir(self.root / folder))
        except FileNotFoundError:
            return []
        return [f"{folder}/{e.name}" for e in entries if not e.name.startswith(".") and e.is_file()]

    def list_folders(self, folder: str) -> list[str]:
        try:
            entries = list(os.scandir(self.root / folder))
        except FileNotFoundError:
            return []
        return [f"{folder}/{e.name}".lstrip("/") for e in entries if not e.name.startswith(".") and e.is_dir()]

    def read(self, key: str) -> bytes:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError as error:
            raise NotFoundError(f"{key} not found under {self.root}") from error

    def create(self, key: str, body: bytes) -> bool:
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
    def exclusive(self) -> Iterator[None]:
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


class S3Backend(Backend):
    conflict_retries = 5

    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        if not bucket or "/" in bucket:
            raise InputError(f"bucket: {bucket!r} is not a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.location = f"s3://{bucket}/{self.prefix}"

    def _object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _list(self, folder: str) -> tuple[list[str], list[str]]:
        from botocore.exceptions import ClientError  # botocore ships with every boto3 client

        listed = self._object_key(folder).rstrip("/") + "/" if folder else self._object_key("")
        strip = len(self._object_key(""))
        keys: list[str] = []
        folders: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=listed, Delimiter="/"
            )
            for page in pages:
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
                folders.extend(p["Prefix"][strip:].rstrip("/") for p in page.get("CommonPrefixes", []))
        except ClientError as error:
            _raise_if_access_denied(error, f"list s3://{self.bucket}/{listed}")
            raise
        return keys, folders

    def list_keys(self, folder: str) -> list[str]:
        return self._list(folder)[0]

    def list_folders(self, folder: str) -> list[str]:
        return self._list(folder)[1]

    def read(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        object_key = self._object_key(key)
        try:
            return self.client.get_object(Bucket=self.bucket, Key=object_key)["Body"].read()
        except ClientError as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                raise NotFoundError(f"s3://{self.bucket}/{object_key} not found") from error
            _raise_if_access_denied(error, f"read s3://{self.bucket}/{object_key}")
            raise

    def create(self, key: str, body: bytes) -> bool:
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


def open_backend(url: str, *, s3_client_factory: Callable[[], Any] | None = None, what: str = "store") -> Backend:
    """``file:///path``, a plain path, or ``s3://bucket/prefix``."""
    if not isinstance(url, str) or not url:
        raise InputError(f"{what} URL: expected a non-empty string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if parts.query or parts.fragment:
            raise InputError(f"{what} URL {url!r}: query and fragment are not supported")
        client = s3_client_factory() if s3_client_factory else _default_s3_client()
        return S3Backend(parts.netloc, unquote(parts.path), client)
    if parts.scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise InputError(f"{what} URL {url!r}: file URLs must name a local path (file:///path)")
        return LocalBackend(unquote(parts.path))
    if parts.scheme == "":
        return LocalBackend(url)
    raise InputError(f"{what} URL {url!r}: scheme must be file or s3, or give a plain path")


def _default_s3_client() -> Any:
    import boto3  # deferred: only S3 users need it

    return boto3.client("s3")
