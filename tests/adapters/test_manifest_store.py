"""One contract, every backend: each test here runs against the local directory store and
against S3 (a real moto_server speaking the S3 API, conditional writes included)."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from stackyard.core.manifest import Change, Manifest, Provenance, ServicePin, propose
from stackyard.core.records import GateReport, RejectionReport
from stackyard.exceptions import ConflictError, InputError, NotFoundError
from stackyard.adapters.backends import LocalBackend, S3Backend
from stackyard.adapters.manifest_store import (
    LocalManifestStore,
    ManifestStore,
    RecordKind,
    manifest_key,
    open_manifest_store,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
CI = Provenance(dag_run_id="manual__1", requested_by="ci", ci_url="https://ci.example/1")


def seed_manifest(created: datetime = T0, provenance: Provenance = CI) -> Manifest:
    return Manifest.initial({"api": ServicePin("1.0.0"), "web": ServicePin("2.0.0")}, created, provenance)


def bump(parent: Manifest, service: str, version: str, minutes: int = 1) -> Manifest:
    return propose(parent, service, version, None, T0 + timedelta(minutes=minutes), CI)


# --- backends ------------------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return (tmp_path / "l3").as_uri()
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/stackyard/l3"


@pytest.fixture
def open_store(store_url: str, request: pytest.FixtureRequest):
    """Opens a new, independent store instance on the same location (a separate client)."""
    factory = request.getfixturevalue("s3_client_factory") if store_url.startswith("s3://") else None
    return lambda: open_manifest_store(store_url, s3_client_factory=factory)


@pytest.fixture
def store(open_store) -> ManifestStore:
    return open_store()


@pytest.fixture
def seeded(store: ManifestStore) -> Manifest:
    return store.seed(seed_manifest())


# --- the S3 primitive the S3 backend relies on ---------------------------------------------------


def test_moto_honours_if_none_match_with_412(s3_client_factory, s3_bucket):
    from botocore.exceptions import ClientError

    client = s3_client_factory()
    client.put_object(Bucket=s3_bucket, Key="k", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=s3_bucket, Key="k", Body=b"second", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert client.get_object(Bucket=s3_bucket, Key="k")["Body"].read() == b"first"


# --- empty store and seeding ---------------------------------------------------------------------


def test_empty_store_has_no_latest_and_no_history(store):
    assert store.latest() is None
    assert store.history() == []
    assert store.versions() == []
    with pytest.raises(NotFoundError, match="v1 not found"):
        store.get(1)


def test_seed_stores_version_1_as_latest(store):
    manifest = seed_manifest()
    assert store.seed(manifest) == manifest
    assert store.latest() == manifest
    assert store.get(1) == manifest
    assert store.history() == [manifest]


def test_seeding_the_same_pins_again_is_a_no_op_returning_the_stored_seed(store, seeded):
    again = seed_manifest(created=T0 + timedelta(days=1), provenance=Provenance(requested_by="someone-else"))
    assert store.seed(again) == seeded
    assert store.get(1).provenance == CI
    assert store.versions() == [1]


def test_seeding_different_pins_into_a_seeded_store_conflicts(store, seeded):
    other = Manifest.initial({"api": ServicePin("9.0.0")}, T0, CI)
    with pytest.raises(ConflictError, match="already seeded"):
        store.seed(other)
    assert store.get(1) == seeded


def test_seed_refuses_a_manifest_other_than_version_1(store, seeded):
    with pytest.raises(InputError, match="only version 1"):
        store.seed(bump(seeded, "api", "1.1.0"))


def test_get_refuses_a_version_that_is_not_a_positive_integer(store):
    for bad in (0, -1, True, "1"):
        with pytest.raises(InputError, match="version"):
            store.get(bad)


# --- promotion -----------------------------------------------------------------------------------


def test_promote_makes_the_candidate_latest_and_keeps_history_newest_first(store, seeded):
    v2 = store.promote(bump(seeded, "api", "1.1.0"))
    v3 = store.promote(bump(v2, "cache", "0.1.0", minutes=2))
    assert store.latest() == v3
    assert store.versions() == [1, 2, 3]
    assert store.history() == [v3, v2, seeded]
    assert store.history(limit=2) == [v3, v2]
    assert store.history(limit=0) == []
    assert v3.change == Change("cache", None, "0.1.0")


def test_promote_from_a_stale_parent_conflicts_naming_current_and_expected_versions(store, seeded):
    store.promote(bump(seeded, "api", "1.1.0"))
    stale = bump(seeded, "web", "2.1.0")
    with pytest.raises(ConflictError, match=r"current version is v2.*expected v1"):
        store.promote(stale)
    assert store.versions() == [1, 2]


def test_a_retried_promote_returns_the_stored_manifest_without_promoting_twice(store, seeded):
    first = store.promote(bump(seeded, "api", "1.1.0"))
    # The retry rebuilds the candidate: same parent and pins, new time and run id.
    retry = propose(seeded, "api", "1.1.0", None, T0 + timedelta(hours=1), Provenance(dag_run_id="retry"))
    assert store.promote(retry) == first
    assert store.versions() == [1, 2]


def test_a_retried_promote_after_l3_moved_on_still_returns_the_stored_manifest(store, seeded):
    v2 = store.promote(bump(seeded, "api", "1.1.0"))
    store.promote(bump(v2, "web", "2.1.0"))
    assert store.promote(bump(seeded, "api", "1.1.0")) == v2
    assert store.versions() == [1, 2, 3]


def test_promote_refuses_a_candidate_that_is_not_parent_plus_one_change(store, seeded):
    two_changes = Manifest(
        version=2,
        services={"api": ServicePin("1.1.0"), "web": ServicePin("2.1.0")},
        parent=1,
        change=Change("api", "1.0.0", "1.1.0"),
        created=T0,
        provenance=CI,
    )
    with pytest.raises(InputError, match=r"changes 2 services.*api.*web"):
        store.promote(two_changes)
    assert store.versions() == [1]


def test_promote_into_an_empty_store_asks_for_a_seed(store):
    with pytest.raises(NotFoundError, match="seed"):
        store.promote(bump(seed_manifest(), "api", "1.1.0"))


def test_promote_refuses_version_1(store, seeded):
    with pytest.raises(InputError, match="seed it"):
        store.promote(seed_manifest())


def test_a_written_version_is_never_overwritten(store, seeded):
    v2 = store.promote(bump(seeded, "api", "1.1.0"))
    for version, manifest in ((1, seeded), (2, v2)):
        assert store._create(manifest_key(version), b"{}") is False
        assert store.get(version) == manifest


# --- concurrent compare-and-swap ----------------------------------------------------------------

RACERS = 8


def _race(open_store, candidates: list[Manifest]) -> list[object]:
    """Promote each candidate from its own thread and store instance, all released at once."""
    barrier = threading.Barrier(len(candidates))
    outcomes: list[object] = [None] * len(candidates)

    def promote(index: int) -> None:
        racer_store = open_store()
        barrier.wait()
        try:
            outcomes[index] = racer_store.promote(candidates[index])
        except Exception as error:  # recorded and asserted on below
            outcomes[index] = error

    threads = [threading.Thread(target=promote, args=(index,)) for index in range(len(candidates))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_concurrent_promotions_from_one_parent_have_exactly_one_winner(open_store, store, seeded):
    candidates = [bump(seeded, "api", f"1.1.{index}") for index in range(RACERS)]
    outcomes = _race(open_store, candidates)

    winners = [outcome for outcome in outcomes if isinstance(outcome, Manifest)]
    losers = [outcome for outcome in outcomes if not isinstance(outcome, Manifest)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(loser, ConflictError) for loser in losers), losers
    assert store.history() == [winners[0], seeded]


def test_concurrent_retries_of_the_same_candidate_all_get_the_one_stored_manifest(open_store, store, seeded):
    candidates = [bump(seeded, "api", "1.1.0", minutes=index) for index in range(RACERS)]
    outcomes = _race(open_store, candidates)

    assert all(isinstance(outcome, Manifest) for outcome in outcomes), outcomes
    assert len({outcome.created for outcome in outcomes}) == 1
    assert store.versions() == [1, 2]


def _promote_in_child(root: str, candidate: dict, barrier, results) -> None:
    store = LocalManifestStore(root)
    barrier.wait()
    try:
        store.promote(Manifest.from_dict(candidate))
        results.put("won")
    except ConflictError:
        results.put("conflict")
    except Exception as error:  # reported to the parent, which fails the test
        results.put(repr(error))


def test_concurrent_promotions_from_separate_processes_have_exactly_one_winner(tmp_path):
    root = str(tmp_path / "l3")
    seeded = LocalManifestStore(root).seed(seed_manifest())
    processes_count = 4
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes_count), context.Queue()
    processes = [
        context.Process(
            target=_promote_in_child,
            args=(root, bump(seeded, "web", f"2.{index + 1}.0").to_dict(), barrier, results),
        )
        for index in range(processes_count)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    outcomes = []
    while True:
        try:
            outcomes.append(results.get(timeout=1))
        except queue.Empty:
            break

    assert sorted(outcomes) == ["conflict"] * (processes_count - 1) + ["won"]
    history = LocalManifestStore(root).history()
    assert [manifest.version for manifest in history] == [2, 1]
    assert history[1] == seeded


# --- gate records --------------------------------------------------------------------------------


def report(outcome: str = "promoted", **fields) -> GateReport:
    return GateReport(outcome=outcome, change=None, before={"version": 1}, after={"version": 2}, candidate_id="c",
                      **fields)


def test_a_candidate_report_is_found_by_candidate_id_and_after_promotion_by_version(store, seeded):
    candidate = bump(seeded, "api", "1.1.0")
    store.record_report(candidate.candidate_id, report(duration_seconds=12.5))
    promoted = store.promote(candidate)
    store.record_report(promoted.version, report(run_id="promoted"))

    by_version = store.reports(2)
    assert [record.report for record in by_version] == [report(run_id="promoted"), report(duration_seconds=12.5)]
    assert [record.subject for record in by_version] == ["v000002", candidate.candidate_id]
    assert all(record.kind is RecordKind.REPORT for record in by_version)
    assert [record.report for record in store.reports(candidate.candidate_id)] == [report(duration_seconds=12.5)]
    assert len(store.reports(2, limit=1)) == 1
    assert store.reports(1) == []


def test_recording_a_report_for_a_version_that_does_not_exist_is_refused(store, seeded):
    with pytest.raises(NotFoundError, match="v7"):
        store.record_report(7, report())


def test_recording_a_report_for_something_that_is_not_a_candidate_id_is_refused(store, seeded):
    with pytest.raises(InputError, match="candidate id"):
        store.record_report("../../etc", report())


def test_rejections_keep_candidate_reason_and_report_newest_first(store, seeded):
    first = bump(seeded, "api", "1.1.0")
    second = bump(seeded, "api", "1.2.0")
    store.record_rejection(first, "system tests failed", RejectionReport(failed_tests=["test_login"]))
    store.record_rejection(second, "helm install timed out", RejectionReport(test_output="timed out"))

    rejected = store.rejections()
    assert [record.candidate for record in rejected] == [second, first]
    assert [record.reason for record in rejected] == ["helm install timed out", "system tests failed"]
    assert rejected[1].report == RejectionReport(failed_tests=["test_login"])
    assert rejected[0].kind is RecordKind.REJECTION
    assert store.rejections(limit=1)[0].candidate == second
    assert store.latest() == seeded


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"outcome": "promoted"}, id="a-plain-dict"),
        pytest.param(["not", "an", "object"], id="top-level-list"),
        pytest.param(None, id="none"),
    ],
)
def test_reports_that_are_not_the_typed_records_are_refused(store, seeded, bad):
    with pytest.raises(InputError, match="report: expected a GateReport"):
        store.record_report(1, bad)
    with pytest.raises(InputError, match="report: expected a RejectionReport"):
        store.record_rejection(bump(seeded, "api", "1.1.0"), "failed", bad)
    assert store.reports(1) == [] and store.rejections() == []


def test_a_report_over_the_size_limit_is_refused(store, seeded):
    with pytest.raises(InputError, match="report: .* bytes is over"):
        store.record_rejection(bump(seeded, "api", "1.1.0"), "failed", RejectionReport(test_output="x" * 1100000))
    assert store.rejections() == []


def test_a_rejection_needs_a_reason(store, seeded):
    with pytest.raises(InputError, match="reason"):
        store.record_rejection(bump(seeded, "api", "1.1.0"), " ", RejectionReport())


def test_a_stored_record_that_is_not_a_gate_record_is_refused_naming_its_key(store, seeded):
    store.backend.create("rejections/20260101T000000000000Z-abc.json", b'{"schema": 1, "kind": "rejection"}')
    with pytest.raises(InputError, match=r"rejections/20260101T000000000000Z-abc.json is malformed"):
        store.rejections()


# --- opening stores by URL -----------------------------------------------------------------------


def test_open_file_url_and_plain_path_give_local_stores(tmp_path):
    by_url = open_manifest_store((tmp_path / "a b").as_uri())
    assert isinstance(by_url.backend, LocalBackend) and by_url.backend.root == tmp_path / "a b"
    by_path = open_manifest_store(str(tmp_path / "c"))
    assert isinstance(by_path.backend, LocalBackend) and by_path.backend.root == tmp_path / "c"


def test_open_s3_url_uses_the_injected_client_factory():
    client = object()
    store = open_manifest_store("s3://my-bucket/teams/l3/", s3_client_factory=lambda: client)
    assert isinstance(store.backend, S3Backend)
    assert (store.backend.bucket, store.backend.prefix, store.backend.client) == ("my-bucket", "teams/l3", client)


@pytest.mark.parametrize("url", ["", "gs://bucket/x", "file://otherhost/path", "s3:///no-bucket"])
def test_open_refuses_urls_it_cannot_serve(url):
    with pytest.raises(InputError):
        open_manifest_store(url, s3_client_factory=lambda: object())


def test_a_local_store_ignores_half_written_temporary_files(tmp_path):
    store = LocalManifestStore(tmp_path)
    seeded = store.seed(seed_manifest())
    (tmp_path / "manifests" / ".tmp-abc").write_text("{partial")
    assert store.versions() == [1] and store.latest() == seeded


def test_a_manifest_file_holding_another_version_is_reported(tmp_path):
    store = LocalManifestStore(tmp_path)
    store.seed(seed_manifest())
    (tmp_path / "manifests" / "v000002.json").write_bytes((tmp_path / "manifests" / "v000001.json").read_bytes())
    with pytest.raises(InputError, match="holds version 1, not 2"):
        store.latest()


class _LockFreeStoreWithARacer(LocalManifestStore):
    """A lock-free backend (like S3) where, just before this store first lists history, another
    writer promotes the same candidate."""

    def __init__(self, root: Path, racer_candidate: Manifest) -> None:
        super().__init__(root)
        self._racer_candidate: Manifest | None = racer_candidate

    def _exclusive(self):
        return contextlib.nullcontext()

    def _list_keys(self, folder: str) -> list[str]:
        if folder == "manifests" and self._racer_candidate is not None:
            candidate, self._racer_candidate = self._racer_candidate, None
            LocalManifestStore(self.root).promote(candidate)
        return super()._list_keys(folder)


def test_an_identical_promote_landing_mid_check_is_not_reported_as_a_conflict(tmp_path):
    seeded = LocalManifestStore(tmp_path).seed(seed_manifest())
    candidate = bump(seeded, "api", "1.1.0")
    store = _LockFreeStoreWithARacer(tmp_path, racer_candidate=candidate)
    assert store.promote(candidate) == candidate
    assert store.versions() == [1, 2]
