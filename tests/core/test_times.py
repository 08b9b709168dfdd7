"""One definition of time: RFC 3339 'Z' out, any offset in, naive times refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stackyard.core.times import as_utc, format_utc, parse_utc, utc_now
from stackyard.exceptions import InputError

MOMENT = datetime(2026, 5, 1, 3, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text", ["2026-05-01T03:00:00Z", "2026-05-01T03:00:00z", "2026-05-01T05:00:00+02:00",
                                  "2026-05-01T03:00:00.000000Z", " 2026-05-01T03:00:00Z "])
def test_any_offset_is_read_in_utc(text):
    parsed = parse_utc(text)
    assert parsed == MOMENT and parsed.tzinfo == timezone.utc


@pytest.mark.parametrize("text, message", [
    ("2026-05-01T03:00:00", "created: expected a timezone-aware timestamp"),
    ("yesterday", "created: 'yesterday' is not an ISO 8601 timestamp"),
    ("2026-02-30T00:00:00Z", "is not an ISO 8601 timestamp"),
    ("", "expected an ISO 8601 timestamp with a time zone"),
    (None, "expected an ISO 8601 timestamp with a time zone"),
])
def test_naive_or_unreadable_times_are_refused_naming_the_field(text, message):
    with pytest.raises(InputError, match=message):
        parse_utc(text, "created")


def test_written_as_rfc3339_utc_with_z():
    assert format_utc(MOMENT + timedelta(microseconds=5)) == "2026-05-01T03:00:00Z"
    assert format_utc(MOMENT, timespec="microseconds") == "2026-05-01T03:00:00.000000Z"
    assert format_utc(datetime(2026, 5, 1, 5, 0, tzinfo=timezone(timedelta(hours=2)))) == "2026-05-01T03:00:00Z"
    with pytest.raises(InputError, match="timezone-aware"):
        format_utc(datetime(2026, 5, 1))
    assert parse_utc(format_utc(MOMENT)) == MOMENT


def test_the_clock_is_aware_utc():
    now = utc_now()
    assert now.tzinfo == timezone.utc and as_utc(now) == now
