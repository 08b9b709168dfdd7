"""The record store contract, over a local directory and S3 (moto_server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.exceptions import InputError
from stackyard.adapters.backends import LocalBackend, S3Backend
from stackyard.adapters.record_store import RecordStore


class TickingClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture(params=["local", "s3"])
def records(request, tmp_path):
    if request.param == "local":
        backend = LocalBackend(tmp_path / "records")
    else:
        bucket = request.getfixturevalue("s3_bucket")
        backend = S3Backend(bucket, "team/records", request.getfixturevalue("s3_client_factory")())
    return RecordStore(backend, clock=TickingClock())


def test_appended_records_come_back_newest_first(records):
    for n in range(3):
        records.append("stacks/qa1/rollouts", {"n": n})
    assert [r.data["n"] for r in records.list("stacks/qa1/rollouts")] == [2, 1, 0]
    assert [r.data["n"] for r in records.list("stacks/qa1/rollouts", limit=2)] == [2, 1]


def test_an_empty_stream_is_empty(records):
    assert records.list("stacks/nothing/events") == []


def test_streams_are_discovered_under_a_prefix(records):
    records.append("stacks/qa1/rollouts", {"a": 1})
    records.append("stacks/stage/events", {"a": 1})
    records.append("reaper/runs", {"a": 1})
    assert records.streams("stacks/") == ["stacks/qa1/rollouts", "stacks/stage/events"]
    assert records.streams("reaper") == ["reaper/runs"]


@pytest.mark.parametrize("data, where", [({"x": object()}, "record.x"), ({"x": float("nan")}, "record.x"), ({1: "a"}, "key 1")])
def test_non_json_records_are_refused_naming_the_path(records, data, where):
    with pytest.raises(InputError, match=where):
        records.append("reaper/runs", data)
    assert records.list("reaper/runs") == []


@pytest.mark.parametrize("stream", ["", "Stacks/qa1", "stacks//x", "../etc", "stacks/qa1/"])
def test_bad_stream_names_are_refused(records, stream):
    with pytest.raises(InputError, match="stream"):
        records.append(stream, {"a": 1})


def test_records_are_copies_not_references(records):
    data = {"nested": {"a": 1}}
    records.append("reaper/runs", data)
    data["nested"]["a"] = 2
    assert records.list("reaper/runs")[0].data == {"nested": {"a": 1}}
