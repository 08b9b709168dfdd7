"""The records stackyard writes: one model per stream, one writer, one reader, a schema version.

=============================  ============================  ========================================
stream                         model                         written by
=============================  ============================  ========================================
``stacks/<stack>/rollouts``    :class:`RolloutRecord`        each service upgrade attempt (rollouts)
``stacks/<stack>/events``      :class:`StackEvent`           stack lifecycle (create, touch, destroy,
                                                             reap)
``reaper/runs``                :class:`ReaperReport`         each ``ephemeral_reaper`` run
manifest store ``reports/``    :class:`GateRecord` holding   each ``l3_gate`` run (its summary)
                               a :class:`GateReport`
manifest store ``rejections/`` :class:`GateRecord` holding   each rejected candidate
                               a :class:`RejectionReport`
=============================  ============================  ========================================

The writer is ``record.to_json()`` (the stored JSON object) and the reader is
``Model.from_json(data)``; :meth:`RecordStore.write <stackyard.adapters.record_store.RecordStore.write>`
and ``read`` use exactly these. Models are frozen and refuse unknown fields, so a reader never
guesses a field's name and nothing unnamed (by mistake, a secret) is ever passed on.

Schema versions: every record carries ``schema_version`` (:data:`SCHEMA_VERSION`). Records
written before versions existed have none (version 0, :data:`UNVERSIONED`); their fields are
version 1's except where a model fills in a known fact (the reaper report gained ``dag_id``), and
they are read as version 1 records. A version newer than this code knows is refused with a clear error rather
than half-read. Field names on disk never change: other tools read these files.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, ValidationError

from stackyard.core.manifest import Manifest
from stackyard.core.times import format_utc
from stackyard.core.versions import is_semver
from stackyard.exceptions import InputError

SCHEMA_VERSION = 1
#: The version of records written before records carried one.
UNVERSIONED = 0
READABLE_VERSIONS = (UNVERSIONED, SCHEMA_VERSION)

REAPER_RUNS = "reaper/runs"
#: The only DAG that wrote reaper reports before they carried their ``dag_id``.
REAPER_DAG_ID = "ephemeral_reaper"


def rollouts_stream(stack: str) -> str:
    return f"stacks/{stack}/rollouts"


def events_stream(stack: str) -> str:
    return f"stacks/{stack}/events"


def _chart_version(value: str) -> str:
    if not is_semver(value):
        raise ValueError("not a chart version (an override pins a version, nothing else)")  # no value: it may be a secret
    return value


#: A chart version (what an override pins; never any other value).
ChartVersion = Annotated[str, AfterValidator(_chart_version)]

#: A time as records store it: ``2026-11-26T12:00:00Z`` (UTC, seconds); naive times are refused.
UtcTime = Annotated[AwareDatetime, PlainSerializer(lambda moment: format_utc(moment), return_type=str)]


def _problems(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(part) for part in item["loc"]) or "(record)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class _Part(BaseModel):
    """A nested part of a record: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class StoredRecord(_Part):
    """What every record has: its schema version, a writer and a reader."""

    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """The stored JSON object. Fields the writer did not set are left out, as they always were
        (an event records only its own details); ``schema_version`` is always written."""
        return {**self.model_dump(mode="json", exclude_unset=True), "schema_version": self.schema_version}

    @classmethod
    def from_json(cls: type[R], data: object, where: str = "record") -> R:
        """The record stored as ``data``, or InputError naming ``where`` and each wrong field."""
        if not isinstance(data, Mapping):
            raise InputError(f"{where}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version", UNVERSIONED)
        if isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise InputError(f"{where}: schema_version {version!r} is not one this stackyard reads "
                             f"({', '.join(map(str, READABLE_VERSIONS))}); is a newer stackyard writing here?")
        # Read into the current schema: an unversioned record gets what it lacks, then version 1.
        fields = cls._upgrade(dict(data)) if version == UNVERSIONED else dict(data)
        try:
            return cls.model_validate({**fields, "schema_version": SCHEMA_VERSION})
        except ValidationError as error:
            raise InputError(f"{where}: not a valid {cls.__name__}: {_problems(error)}") from None

    @classmethod
    def _upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Fill what an unversioned record lacks (only facts, never guesses)."""
        return data


R = TypeVar("R", bound=StoredRecord)


@dataclass(frozen=True)
class Stored(Generic[R]):
    """A record as read from a store: when it was recorded, the record, and its key."""

    recorded: datetime
    record: R
    key: str = ""


# --- stacks/<stack>/rollouts ----------------------------------------------------------------------


class RolloutStatus(str, Enum):
    """Outcome of one service's upgrade attempt, as recorded."""

    SUCCEEDED = "succeeded"            # new version deployed, ready and tested
    FAILED = "failed"                  # nothing changed on the cluster (e.g. secrets not decryptable)
    ROLLED_BACK = "rolled_back"        # upgrade or tests failed; the previous revision is back
    CANARY_ABORTED = "canary_aborted"  # the canary failed; it was removed, stable untouched


class CanaryInfo(_Part):
    release: str
    weight: int
    check: str
    state: str | None = None
    check_detail: str | None = None


class RolloutRecord(StoredRecord):
    """One upgrade attempt of one service on a persistent or production stack (no values: a digest)."""

    stack: str
    type: str
    dag_id: str
    namespace: str
    profile: str
    service: str
    from_version: str | None
    to_version: str
    action: str
    manifest_version: int | None
    run_id: str
    status: RolloutStatus
    started: UtcTime
    finished: UtcTime
    values_digest: str | None = None
    revision: int | None = None
    reason: str = ""
    canary: CanaryInfo | None = None
    triggered_by: str | None = None

    @property
    def stream(self) -> str:
        return rollouts_stream(self.stack)

    @property
    def failed(self) -> bool:
        return self.status is not RolloutStatus.SUCCEEDED


# --- stacks/<stack>/events ------------------------------------------------------------------------


class EventKind(str, Enum):
    CREATED = "created"      # stack_create made the namespace
    READY = "ready"          # stack_create deployed it
    TOUCHED = "touched"      # stack_touch
    DESTROYED = "destroyed"  # stack_destroy, or stack_create cleaning up after a failure
    REAPED = "reaped"        # ephemeral_reaper deleted it
    RELEASE_RECOVERED = "release_recovered"  # a release an interrupted helm operation left pending was
                                             # rolled back or removed first (core.release_recovery)


class OverrideChange(_Part):
    """One override of a personal stack: the service's L3 version (None: not in L3) and its own."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, serialize_by_alias=True)

    from_version: ChartVersion | None = Field(alias="from")
    to: ChartVersion


class OperationHolder(_Part):
    """Who ran a helm operation (:class:`stackyard.core.release_recovery.Holder`)."""

    dag_id: str
    run_id: str
    task_id: str
    try_number: int
    pid: int
    host: str


class StackEvent(StoredRecord):
    """One lifecycle event of a personal stack. Beyond the common fields each kind records its own
    details: created (owner, purpose, manifest_version, overrides, profile, ttl); ready (owner, chart_ref,
    digest, release, revision, values_digest); touched (owner, ttl); destroyed (owner and
    releases, or reason); reaped (outcome, reason); release_recovered (release, namespace, before: the
    operation about to run, action, pending_revision, pending_status, to_revision, reason,
    interrupted_by, recovered_by)."""

    event: EventKind
    stack: str
    run_id: str
    dag_id: str
    at: UtcTime
    owner: str | None = None
    purpose: str | None = None
    manifest_version: int | None = None
    overrides: dict[str, OverrideChange] | None = None  # service → {"from", "to"}
    profile: str | None = None
    ttl: str | None = None
    chart_ref: str | None = None
    digest: str | None = None
    release: str | None = None
    revision: int | None = None
    values_digest: str | None = None
    releases: list[str] | None = None
    outcome: str | None = None
    reason: str | None = None
    namespace: str | None = None
    before: str | None = None
    action: str | None = None
    pending_revision: int | None = None
    pending_status: str | None = None
    to_revision: int | None = None
    interrupted_by: OperationHolder | None = None
    recovered_by: OperationHolder | None = None

    @property
    def stream(self) -> str:
        return events_stream(self.stack)


# --- reaper/runs ----------------------------------------------------------------------------------


class ReaperEntry(_Part):
    """One namespace in a reaper report: the verdict, and for a deletion tried its outcome."""

    name: str
    action: str
    reason: str
    last_activity: str | None = None
    ttl: str | None = None
    time_left_seconds: int | None = None
    time_left: str | None = None
    warnings: list[str] = Field(default_factory=list)
    resource_version: str | None = None
    owner: str | None = None
    outcome: str | None = None
    detail: str | None = None


class ReaperCounts(_Part):
    deleted: int
    would_delete: int
    kept: int
    skipped: int
    failed: int


class ReaperReport(StoredRecord):
    """One reaper run: what went, what stays and for how long, what failed, and which run it was."""

    dag_id: str
    run_id: str | None
    at: UtcTime
    dry_run: bool
    max_deletions: int
    selector: str
    error: str | None = None
    deleted: list[ReaperEntry] = Field(default_factory=list)
    would_delete: list[ReaperEntry] = Field(default_factory=list)
    kept: list[ReaperEntry] = Field(default_factory=list)
    skipped: list[ReaperEntry] = Field(default_factory=list)
    failed: list[ReaperEntry] = Field(default_factory=list)
    counts: ReaperCounts

    stream: ClassVar[str] = REAPER_RUNS

    @classmethod
    def _upgrade(cls, data: dict[str, Any]) -> dict[str, Any]:
        return {"dag_id": REAPER_DAG_ID, **data}


# --- the gate's records (manifest store) ----------------------------------------------------------


class GateOutcome(str, Enum):
    """How a gate run ended (closed set; docs/l3-gate.md, "Outcomes")."""

    PROMOTED = "promoted"  # the candidate is the new L3
    REJECTED = "rejected"  # the candidate failed to deploy or its tests failed: a verdict on the chart
    REQUEUED = "requeued"  # what it was tested with is no longer what L3 will be; a new run tests it again
    SUPERSEDED = "superseded"  # a newer version of the same service was queued: it replaces this one
    ERROR = "error"        # infrastructure failed (store, registry, cluster, KMS): no verdict


class FailureKind(str, Enum):
    """Why a deploy failed, from helm's own error (:func:`stackyard.core.deploy_errors.classify`)."""

    RENDER = "render"          # the chart, its values or its secrets are invalid: not retried, rejected
    CONFLICT = "conflict"      # an object exists that another owner holds: not retried, an error
    NOT_READY = "not_ready"    # the workloads did not become ready in time: rejected
    TRANSIENT = "transient"    # the API server failed or was unreachable: retried, then an error
    UNKNOWN = "unknown"        # helm failed in a way not recognised: retried, then an error

    @property
    def rejects(self) -> bool:
        """A verdict on the candidate (a rejection), or an infrastructure failure (an error)."""
        return self in (FailureKind.RENDER, FailureKind.NOT_READY)


class VersionRef(_Part):
    version: int | None


class GateTests(_Part):
    passed: bool | None = None
    failed: list[str] = Field(default_factory=list)


class GateChange(_Part):
    service: str
    from_version: str | None
    to_version: str


class Teardown(_Part):
    action: str
    namespace: str | None = None
    reason: str | None = None
    ttl: str | None = None


class DeployFailure(_Part):
    """What helm said when the candidate's deploy failed, classified; no values, secrets redacted."""

    kind: FailureKind
    service: str | None = None     # the service whose object failed (may not be the one gated)
    objects: list[str] = Field(default_factory=list)  # e.g. ["Deployment/l3-orders"]
    helm_error: str = ""           # helm's own first lines


class GateReport(StoredRecord):
    """The summary of one gate run, kept under the promoted version or the candidate id."""

    outcome: GateOutcome
    change: GateChange | None
    before: VersionRef
    after: VersionRef
    candidate_id: str
    candidate_package: str | None = None
    tests: GateTests = Field(default_factory=GateTests)
    reason: str | None = None
    teardown: Teardown | None = None
    run_id: str | None = None
    duration_seconds: float | None = None
    failure: DeployFailure | None = None


class TestRecord(_Part):
    """One system test of a gate run (:meth:`stackyard.core.system_tests.TestResult.to_dict`);
    a passing test's logs stay in the task log only."""

    __test__ = False  # not a pytest test class
    name: str
    service: str | None = None
    kind: str
    weight: int = 0
    phase: str
    seconds: float
    reason: str | None = None
    logs: str = ""


class RejectionReport(StoredRecord):
    """Why a candidate was rejected: the failed tests, their output tail and each test's record,
    or the deploy failure."""

    failed_tests: list[str] = Field(default_factory=list)
    test_output: str = ""
    tests: list[TestRecord] = Field(default_factory=list)
    failure: DeployFailure | None = None


class RecordKind(str, Enum):
    REPORT = "report"
    REJECTION = "rejection"


#: The gate record envelope's own version (its key is ``schema``, as it has always been).
GATE_RECORD_SCHEMA = 1


@dataclass(frozen=True)
class GateRecord:
    """A stored gate report or rejection (the manifest store's ``reports/`` and ``rejections/``)."""

    kind: RecordKind
    subject: str
    recorded: datetime
    report: GateReport | RejectionReport
    reason: str | None = None
    candidate: Manifest | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": GATE_RECORD_SCHEMA,
            "kind": self.kind.value,
            "subject": self.subject,
            "recorded": self.recorded.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "reason": self.reason,
            "report": self.report.to_json(),
            "candidate": self.candidate.to_dict() if self.candidate else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "gate record") -> GateRecord:
        if not isinstance(data, Mapping) or data.get("schema") != GATE_RECORD_SCHEMA:
            got = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
            raise InputError(f"{where}: schema: expected {GATE_RECORD_SCHEMA}, got {got!r}")
        try:
            kind = RecordKind(data["kind"])
            model = GateReport if kind is RecordKind.REPORT else RejectionReport
            return cls(
                kind=kind,
                subject=data["subject"],
                recorded=datetime.fromisoformat(data["recorded"].replace("Z", "+00:00")).astimezone(timezone.utc),
                report=model.from_json(data["report"], f"{where}: report"),
                reason=data["reason"],
                candidate=Manifest.from_dict(data["candidate"]) if data["candidate"] else None,
            )
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            if isinstance(error, InputError):
                raise
            raise InputError(f"{where} is malformed: {error!r}") from error
