"""Time, defined once: the clock, and the one text form of a moment stackyard writes and reads.

Written: RFC 3339 in UTC with a ``Z`` (``2026-05-01T03:00:00Z``; manifests keep microseconds).
Read: any ISO 8601 / RFC 3339 timestamp *with* an offset (``Z``, ``+02:00``), returned in UTC. A
naive time (no offset) is refused: it would be read in whatever zone the reader runs in.
"""

from __future__ import annotations

from datetime import datetime, timezone

from stackyard.exceptions import InputError


def utc_now() -> datetime:
    """The one clock (tests patch this)."""
    return datetime.now(timezone.utc)


def parse_utc(text: object, where: str = "timestamp") -> datetime:
    """``text`` as an aware datetime in UTC, or InputError naming ``where`` and what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: expected an ISO 8601 timestamp with a time zone, got {text!r}")
    try:
        # Python 3.11+ reads "Z"; a lowercase "z" is RFC 3339 too.
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise InputError(f"{where}: {text!r} is not an ISO 8601 timestamp") from None
    return as_utc(parsed, where)


def as_utc(moment: object, where: str = "timestamp") -> datetime:
    """An aware datetime converted to UTC; InputError for a naive one."""
    if not isinstance(moment, datetime):
        raise InputError(f"{where}: expected a timezone-aware datetime, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InputError(f"{where}: expected a timezone-aware timestamp, got {moment.isoformat()!r} (no time zone: write it in UTC with a 'Z')")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise InputError(f"{where}: {moment.isoformat()!r} is out of range") from None


def format_utc(moment: datetime, timespec: str = "seconds") -> str:
    """``moment`` as RFC 3339 in UTC with a ``Z``; ``timespec`` as for ``datetime.isoformat``."""
    return as_utc(moment).isoformat(timespec=timespec).replace("+00:00", "Z")
