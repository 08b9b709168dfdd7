"""The L3 manifest: every service chart version that passed the L3 quality bar.

A manifest is an immutable, numbered record. Version 1 is seeded; every later version is its
parent plus exactly one service added or bumped (the pipeline upgrades one service at a time so
a breaking change is attributable). A *candidate* is a proposed next version; it becomes L3 only
when the gate passes and the store's compare-and-swap accepts it.

Identity, in three strengths:

- ``version``       the position in history, assigned as parent + 1.
- ``digest``        sha256 of the pins alone: identical pins, identical digest, whatever the
                    version, time or requester.
- ``candidate_id``  short hash of parent version + pins: the same proposal made twice gets the
                    same id, which makes promotion idempotent and names ephemeral stacks
                    (``l3-<candidate_id[:8]>``).

Pure: no Airflow, no I/O, no clock. Callers pass ``created`` in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any

from pydantic import Field, ValidationError

from stackyard.core import names
from stackyard.core.schema import Schema, problems
from stackyard.core.times import as_utc, format_utc, parse_utc
from stackyard.core.versions import compare_semver, is_semver
from stackyard.exceptions import InputError

SCHEMA = 1
CANDIDATE_ID_LENGTH = 16

#: For form validation (a JSON-schema pattern); the rule itself is :mod:`stackyard.core.names`.
SERVICE_NAME_PATTERN = names.SERVICE_NAME_PATTERN
_SHA256_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_CANDIDATE_ID = re.compile(rf"[0-9a-f]{{{CANDIDATE_ID_LENGTH}}}")


# --- field validators: each names the field it checks ------------------------------------------


def validate_service_name(name: object, where: str = "service") -> str:
    """Return ``name`` if it is a DNS-1123 label (it becomes part of Kubernetes object names)."""
    return names.service_name(name, where)


def validate_candidate_id(value: object, where: str = "candidate_id") -> str:
    if not isinstance(value, str) or not _CANDIDATE_ID.fullmatch(value):
        raise InputError(f"{where}: {value!r} is not a candidate id ({CANDIDATE_ID_LENGTH} hex digits)")
    return value


def _chart_version(value: object, where: str) -> str:
    if not is_semver(value):
        raise InputError(f"{where}: {value!r} is not a semantic version as helm accepts chart versions")
    return value  # type: ignore[return-value]


def _chart_digest(value: object, where: str) -> str | None:
    if value is not None and not (isinstance(value, str) and _SHA256_DIGEST.fullmatch(value)):
        raise InputError(f"{where}: {value!r} is not 'sha256:' followed by 64 lowercase hex digits")
    return value  # type: ignore[return-value]


def _optional_text(value: object, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InputError(f"{where}: expected a string or null, got {type(value).__name__}")
    return value  # type: ignore[return-value]


def _version_number(value: object, where: str) -> int:
    # bool is an int subclass; True must not pass as version 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{where}: expected an integer >= 1, got {value!r}")
    return value


def _utc(value: object, where: str) -> datetime:
    return as_utc(value, where)


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePin:
    """One service's chart version in a manifest; ``digest`` is the packaged chart's sha256."""

    chart_version: str
    digest: str | None = None

    def __post_init__(self) -> None:
        _chart_version(self.chart_version, "chart_version")
        _chart_digest(self.digest, "digest")

    def to_dict(self) -> dict[str, Any]:
        return {"chart_version": self.chart_version, "digest": self.digest}


@dataclass(frozen=True)
class Change:
    """The one service a manifest changed relative to its parent; ``from_version`` None = added."""

    service: str
    from_version: str | None
    to_version: str

    def __post_init__(self) -> None:
        validate_service_name(self.service, "change.service")
        if self.from_version is not None:
            _chart_version(self.from_version, "change.from_version")
        _chart_version(self.to_version, "change.to_version")

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "from_version": self.from_version,
            "to_version": self.to_version,
        }

    def __str__(self) -> str:
        return f"{self.service} {self.from_version or '(new)'} -> {self.to_version}"


@dataclass(frozen=True)
class Provenance:
    """Who and what asked for a manifest. Never put credentials here: it is stored verbatim."""

    dag_run_id: str | None = None
    requested_by: str | None = None
    ci_url: str | None = None

    def __post_init__(self) -> None:
        for name in ("dag_run_id", "requested_by", "ci_url"):
            _optional_text(getattr(self, name), f"provenance.{name}")

    def to_dict(self) -> dict[str, Any]:
        return {"dag_run_id": self.dag_run_id, "requested_by": self.requested_by, "ci_url": self.ci_url}


@dataclass(frozen=True)
class Manifest:
    """One L3 manifest (or candidate). Construct with :meth:`initial` or :func:`propose`.

    Invariants checked on construction: version 1 has neither parent nor change; any later
    version has ``parent == version - 1`` and a change whose ``to_version`` it pins.
    ``services`` is copied into a read-only mapping sorted by service name.
    """

    version: int
    services: Mapping[str, ServicePin] = field(hash=False)
    parent: int | None
    change: Change | None
    created: datetime
    provenance: Provenance

    def __post_init__(self) -> None:
        _version_number(self.version, "version")
        object.__setattr__(self, "services", _frozen_pins(self.services))
        object.__setattr__(self, "created", _utc(self.created, "created"))
        if not isinstance(self.provenance, Provenance):
            raise InputError(f"provenance: expected Provenance, got {type(self.provenance).__name__}")
        self._check_lineage()

    def _check_lineage(self) -> None:
        if self.version == 1:
            if self.parent is not None or self.change is not None:
                raise InputError("version 1 is the seed: it must have no parent and no change")
            return
        if self.parent != self.version - 1:
            raise InputError(f"parent: version {self.version} must have parent {self.version - 1}, got {self.parent!r}")
        if not isinstance(self.change, Change):
            raise InputError(f"change: version {self.version} must record the change from its parent")
        pin = self.services.get(self.change.service)
        if pin is None or pin.chart_version != self.change.to_version:
            pinned = pin.chart_version if pin else "nothing"
            raise InputError(
                f"change: records {self.change} but the manifest pins {pinned} for {self.change.service}"
            )

    @classmethod
    def initial(
        cls, services: Mapping[str, ServicePin], created: datetime, provenance: Provenance
    ) -> Manifest:
        """The seed manifest: version 1, no parent, no change."""
        return cls(version=1, services=services, parent=None, change=None, created=created, provenance=provenance)

    @property
    def digest(self) -> str:
        """``sha256:<hex>`` of the pins alone; identical pins give an identical digest."""
        return "sha256:" + hashlib.sha256(_canonical_json({"services": _pins_dict(self.services)})).hexdigest()

    @property
    def candidate_id(self) -> str:
        """Short stable id of (parent version, pins): the same proposal always gets the same id."""
        content = {"parent": self.parent, "services": _pins_dict(self.services)}
        return hashlib.sha256(_canonical_json(content)).hexdigest()[:CANDIDATE_ID_LENGTH]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; ``digest`` and ``candidate_id`` are included for readers and
        verified by :meth:`from_dict`."""
        return {
            "schema": SCHEMA,
            "version": self.version,
            "parent": self.parent,
            "created": format_utc(self.created, timespec="microseconds"),
            "services": _pins_dict(self.services),
            "change": self.change.to_dict() if self.change else None,
            "provenance": self.provenance.to_dict(),
            "digest": self.digest,
            "candidate_id": self.candidate_id,
        }

    @classmethod
    def from_dict(cls, data: object) -> Manifest:
        """Strictly rebuild a manifest from :meth:`to_dict` output; InputError names the field."""
        return _manifest_from_dict(data)


def _frozen_pins(services: object) -> Mapping[str, ServicePin]:
    if not isinstance(services, Mapping):
        raise InputError(f"services: expected a mapping of service name to ServicePin, got {type(services).__name__}")
    for name, pin in services.items():
        validate_service_name(name, "services")
        if not isinstance(pin, ServicePin):
            raise InputError(f"services.{name}: expected ServicePin, got {type(pin).__name__}")
    # A fresh sorted dict behind a read-only view: later changes to the caller's mapping can't leak in.
    return MappingProxyType(dict(sorted(services.items())))


def _pins_dict(services: Mapping[str, ServicePin]) -> dict[str, dict[str, Any]]:
    return {name: pin.to_dict() for name, pin in services.items()}


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


# --- strict decoding: the stored form's schema --------------------------------------------------


class _PinRecord(Schema):
    chart_version: str
    digest: str | None


class _ChangeRecord(Schema):
    service: str
    from_version: str | None
    to_version: str


class _ProvenanceRecord(Schema):
    dag_run_id: str | None
    requested_by: str | None
    ci_url: str | None


class ManifestRecord(Schema):
    """A manifest as stored (:meth:`Manifest.to_dict`): every field present, nothing else.
    ``digest`` and ``candidate_id`` are derived; when present they must match the content."""

    schema_version: int = Field(alias="schema")
    version: int
    parent: int | None
    created: str
    services: dict[str, _PinRecord]
    change: _ChangeRecord | None
    provenance: _ProvenanceRecord
    digest: str | None = None
    candidate_id: str | None = None


_RECORD_EXPECTED = {
    "schema": f"expected {SCHEMA}",
    "version": "expected an integer >= 1",
    "parent": "expected an integer >= 1 or null",
    "created": "expected an ISO 8601 timestamp string",
    "services": "expected an object of service name to pin",
    "change": "expected an object or null",
    "provenance": "expected an object",
}


def _manifest_from_dict(data: object) -> Manifest:
    if not isinstance(data, Mapping):
        raise InputError(f"manifest: expected an object, got {type(data).__name__}")
    try:
        record = ManifestRecord.model_validate(data)
    except ValidationError as exc:
        raise InputError("; ".join(problems(exc, root="manifest", expected=_RECORD_EXPECTED))) from None
    if record.schema_version != SCHEMA:
        raise InputError(f"schema: expected {SCHEMA}, got {record.schema_version!r}")
    version = _version_number(record.version, "version")
    parent = None if record.parent is None else _version_number(record.parent, "parent")
    change = record.change
    manifest = Manifest(
        version=version,
        services={
            validate_service_name(name, "services"): ServicePin(
                chart_version=_chart_version(pin.chart_version, f"services.{name}.chart_version"),
                digest=_chart_digest(pin.digest, f"services.{name}.digest"),
            )
            for name, pin in record.services.items()
        },
        parent=parent,
        change=None if change is None else Change(
            service=validate_service_name(change.service, "change.service"),
            from_version=None if change.from_version is None
            else _chart_version(change.from_version, "change.from_version"),
            to_version=_chart_version(change.to_version, "change.to_version"),
        ),
        created=parse_utc(record.created, "created"),
        provenance=Provenance(**record.provenance.model_dump()),
    )
    # The derived ids are stored for readers; a mismatch means the file was edited by hand.
    for key in ("digest", "candidate_id"):
        stored = getattr(record, key)
        if key in data and stored != getattr(manifest, key):
            raise InputError(f"{key}: stored {stored!r} does not match the content ({getattr(manifest, key)})")
    return manifest


# --- proposing and checking candidates -----------------------------------------------------------


def propose(
    parent: Manifest,
    service: str,
    chart_version: str,
    digest: str | None,
    created: datetime,
    provenance: Provenance,
) -> Manifest:
    """The candidate ``parent`` + ``service`` added or moved to ``chart_version``.

    Refuses a version that is not SemVer, a service name that is not a DNS-1123 label, and a
    version equal in precedence to the one ``parent`` already pins (``1.2.0+b`` is not a new
    release of ``1.2.0+a``). Downgrades are allowed: rolling back a bad chart goes through the
    same gate.
    """
    validate_service_name(service, "service")
    _chart_version(chart_version, f"{service}: chart_version")
    _chart_digest(digest, f"{service}: digest")
    current = parent.services.get(service)
    if current is not None and compare_semver(current.chart_version, chart_version) == 0:
        raise InputError(
            f"{service}: L3 v{parent.version} already pins {current.chart_version}; "
            f"proposing {chart_version} changes nothing (build metadata is ignored)"
        )
    services = {**parent.services, service: ServicePin(chart_version, digest)}
    return Manifest(
        version=parent.version + 1,
        services=services,
        parent=parent.version,
        change=Change(service, current.chart_version if current else None, chart_version),
        created=created,
        provenance=provenance,
    )


class DiffKind(str, Enum):
    """How one service differs between two manifests."""

    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True)
class ServiceDiff:
    """One service that differs; ``before``/``after`` None where it is absent."""

    service: str
    kind: DiffKind
    before: ServicePin | None
    after: ServicePin | None

    @property
    def direction(self) -> str | None:
        """For CHANGED: ``upgrade``, ``downgrade`` or ``rebuild`` (same precedence, other pin)."""
        if self.kind is not DiffKind.CHANGED or self.before is None or self.after is None:
            return None
        order = compare_semver(self.after.chart_version, self.before.chart_version)
        return {1: "upgrade", -1: "downgrade", 0: "rebuild"}[order]

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "kind": self.kind.value,
            "before": self.before.to_dict() if self.before else None,
            "after": self.after.to_dict() if self.after else None,
            "direction": self.direction,
        }

    def __str__(self) -> str:
        before = self.before.chart_version if self.before else "(absent)"
        after = self.after.chart_version if self.after else "(absent)"
        return f"{self.service} {before} -> {after}"


@dataclass(frozen=True)
class ManifestDiff:
    """Per-service differences from manifest ``a`` to manifest ``b``, sorted by service."""

    entries: tuple[ServiceDiff, ...]

    def of_kind(self, kind: DiffKind) -> tuple[ServiceDiff, ...]:
        return tuple(entry for entry in self.entries if entry.kind is kind)

    @property
    def added(self) -> tuple[ServiceDiff, ...]:
        return self.of_kind(DiffKind.ADDED)

    @property
    def removed(self) -> tuple[ServiceDiff, ...]:
        return self.of_kind(DiffKind.REMOVED)

    @property
    def changed(self) -> tuple[ServiceDiff, ...]:
        return self.of_kind(DiffKind.CHANGED)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(entry.service for entry in self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [entry.to_dict() for entry in self.entries]}


def diff(a: Manifest, b: Manifest) -> ManifestDiff:
    """What changed from ``a`` to ``b``. A pin counts as changed if its version or digest differs."""
    entries = []
    for service in sorted(a.services.keys() | b.services.keys()):
        before, after = a.services.get(service), b.services.get(service)
        if before == after:
            continue
        kind = DiffKind.ADDED if before is None else DiffKind.REMOVED if after is None else DiffKind.CHANGED
        entries.append(ServiceDiff(service, kind, before, after))
    return ManifestDiff(tuple(entries))


def check_candidate(parent: Manifest, candidate: Manifest) -> None:
    """Refuse ``candidate`` unless it is ``parent`` plus exactly one service added or bumped.

    Every problem found is reported in one :class:`InputError` whose message names all the
    services involved, so a gate log shows the whole story at once.
    """
    problems = candidate_problems(parent, candidate)
    if problems:
        involved = sorted(set(diff(parent, candidate).services) | _change_services(candidate))
        raise InputError(
            f"candidate {candidate.candidate_id} (v{candidate.version}, parent {candidate.parent}) "
            f"is not L3 v{parent.version} plus exactly one service change: "
            + "; ".join(problems)
            + (f" [services involved: {', '.join(involved)}]" if involved else "")
        )


def candidate_problems(parent: Manifest, candidate: Manifest) -> list[str]:
    """Every reason ``candidate`` is not a valid successor of ``parent`` (empty when valid)."""
    problems = []
    if candidate.parent != parent.version:
        problems.append(f"its parent is v{candidate.parent}, not v{parent.version}")
    if candidate.version != parent.version + 1:
        problems.append(f"its version is {candidate.version}, expected {parent.version + 1}")
    changes = diff(parent, candidate)
    if changes.removed:
        problems.append("removes " + ", ".join(entry.service for entry in changes.removed))
    rebuilt = [entry for entry in changes.changed if entry.direction == "rebuild"]
    if rebuilt:
        problems.append("changes a pin without a new version: " + ", ".join(map(str, rebuilt)))
    moved = sorted(changes.added + changes.changed, key=lambda entry: entry.service)
    if not moved:
        problems.append("changes no service")
    elif len(moved) > 1:
        problems.append(f"changes {len(moved)} services: " + ", ".join(map(str, moved)))
    elif candidate.change is not None:
        (entry,) = moved
        actual = Change(entry.service, entry.before.chart_version if entry.before else None, entry.after.chart_version)  # type: ignore[union-attr]
        if candidate.change != actual:
            problems.append(f"its change record says {candidate.change} but the pins say {actual}")
    return problems


def _change_services(manifest: Manifest) -> set[str]:
    return {manifest.change.service} if manifest.change else set()
