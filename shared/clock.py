"""Time in one format: UTC, ISO 8601 with milliseconds and `Z` (sorts as text, so rows can be
filtered by time with string comparisons)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    # the year in four digits (strftime's %Y gives "1" for the year 1), so the text sorts
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T"
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def now_iso() -> str:
    return iso(utcnow())


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def to_utc_clamped(moment: datetime) -> datetime:
    """`moment` (aware) in UTC; one that falls outside the years 1 to 9999 in UTC (e.g.
    9999-12-31T23:00:00-05:00) is the nearest instant inside them (`EARLIEST` or `LATEST`)."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        offset = moment.utcoffset()
        return EARLIEST if offset is not None and offset > timedelta(0) else LATEST


def minus_clamped(moment: datetime, delta: timedelta) -> datetime:
    """`moment - delta`, or `EARLIEST` where that is before the year 1."""
    try:
        return moment - delta
    except OverflowError:
        return EARLIEST
