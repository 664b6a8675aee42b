"""`shared.clock`: time in one format, UTC ISO 8601 with milliseconds and `Z`, sorting as text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from shared.clock import EARLIEST, LATEST, iso, minus_clamped, now_iso, parse_iso, to_utc_clamped

CET = timezone(timedelta(hours=1))


def test_a_moment_is_written_in_utc_with_milliseconds_and_z() -> None:
    assert iso(datetime(2026, 3, 14, 13, 5, 9, 123_999, tzinfo=CET)) == "2026-03-14T12:05:09.123Z"
    assert iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000Z"


def test_the_year_is_always_four_digits_so_early_moments_still_sort() -> None:
    assert iso(EARLIEST) == "0001-01-01T00:00:00.000Z"
    assert iso(EARLIEST) < iso(datetime(999, 1, 1, tzinfo=UTC)) < iso(LATEST)


def test_text_order_is_time_order() -> None:
    # given moments across years, offsets and milliseconds
    moments = [
        datetime(2026, 3, 14, 12, 0, 0, 1000, tzinfo=UTC),
        datetime(2026, 3, 14, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 14, 12, 30, tzinfo=CET),  # 11:30 UTC
        datetime(2025, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
        datetime(10_00, 1, 1, tzinfo=UTC),
    ]
    # then sorting the text sorts the moments
    assert sorted(iso(m) for m in moments) == [iso(m) for m in sorted(moments)]


def test_what_is_written_reads_back_to_the_millisecond() -> None:
    moment = datetime(2026, 3, 14, 12, 5, 9, 123_000, tzinfo=UTC)
    assert parse_iso(iso(moment)) == moment
    assert parse_iso("2026-03-14T13:05:09+01:00") == datetime(2026, 3, 14, 12, 5, 9, tzinfo=UTC)


def test_now_is_utc_and_current() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    now = parse_iso(now_iso())
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


def test_moments_past_the_ends_of_the_calendar_are_clamped_not_errors() -> None:
    # given the last hour of year 9999 west of UTC, and the first east of it
    late = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    early = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=3)))
    # then they are the calendar's last and first instants in UTC
    assert to_utc_clamped(late) == LATEST
    assert to_utc_clamped(early) == EARLIEST
    assert to_utc_clamped(datetime(2026, 3, 14, 13, tzinfo=CET)) == datetime(
        2026, 3, 14, 12, tzinfo=UTC
    )


def test_subtracting_past_the_year_1_gives_the_earliest_instant() -> None:
    assert minus_clamped(datetime(2, 1, 1, tzinfo=UTC), timedelta(days=800)) == EARLIEST
    assert minus_clamped(datetime(2026, 3, 14, tzinfo=UTC), timedelta(days=14)) == datetime(
        2026, 2, 28, tzinfo=UTC
    )
