"""Lookbacks, minute-aligned windows, buckets and the hour/minute split, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wiki_lib.query.errors import QueryError
from wiki_lib.query.window import (
    Window,
    auto_bucket,
    bucket_starts,
    make_window,
    parse_duration,
    split_window,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("7d", timedelta(days=7)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(weeks=2)),
        (" 3 h ", timedelta(hours=3)),
        ("1H", timedelta(hours=1)),
        (timedelta(minutes=5), timedelta(minutes=5)),
    ],
)
def test_durations(text: str | timedelta, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "m", "15 minutes", "1h;DROP", "-5m", "0m", "9999d"])
def test_bad_durations_are_query_errors(text: str) -> None:
    with pytest.raises(QueryError):
        parse_duration(text)


def test_window_rounds_end_up_and_keeps_whole_minutes() -> None:
    assert make_window("15m", at("2024-08-22T12:30:27")) == Window(
        at("2024-08-22T12:16:00"), at("2024-08-22T12:31:00")
    )
    assert make_window("15m", at("2024-08-22T12:30:00")) == Window(
        at("2024-08-22T12:15:00"), at("2024-08-22T12:30:00")
    )
    # sub-minute lookbacks cover one minute; naive times are UTC
    assert make_window("30s", datetime(2024, 1, 1, 0, 0, 10)) == Window(
        at("2024-01-01T00:00:00"), at("2024-01-01T00:01:00")
    )


def test_window_defaults_to_now() -> None:
    now = at("2024-03-01T10:00:01")
    window = make_window("1h", now=now)
    assert window.end == at("2024-03-01T10:01:00")
    assert window.seconds == 3600


def test_auto_bucket_by_length() -> None:
    end = at("2024-01-10T00:00:00")
    assert auto_bucket(make_window("3h", end)) == timedelta(minutes=1)
    assert auto_bucket(make_window("12h", end)) == timedelta(minutes=5)
    assert auto_bucket(make_window("7d", end)) == timedelta(hours=1)
    assert auto_bucket(make_window("60d", end)) == timedelta(days=1)


def test_bucket_starts_cover_the_window() -> None:
    window = Window(at("2024-01-01T10:07:00"), at("2024-01-01T12:07:00"))
    hourly = bucket_starts(window, timedelta(hours=1))
    assert hourly == [at(f"2024-01-01T{h}:00:00") for h in (10, 11, 12)]
    assert len(bucket_starts(window, timedelta(minutes=1))) == 120
    with pytest.raises(QueryError):
        bucket_starts(window, timedelta(seconds=30))


def test_split_reads_whole_rolled_hours_from_hours() -> None:
    window = Window(at("2024-01-01T10:07:00"), at("2024-01-01T14:20:00"))
    split = split_window(window, at("2024-01-01T13:00:00"))
    assert split.hours == (at("2024-01-01T11:00:00"), at("2024-01-01T13:00:00"))
    assert split.minutes == (
        (at("2024-01-01T10:07:00"), at("2024-01-01T11:00:00")),
        (at("2024-01-01T13:00:00"), at("2024-01-01T14:20:00")),
    )


def test_split_falls_back_to_minutes() -> None:
    window = Window(at("2024-01-01T10:07:00"), at("2024-01-01T11:20:00"))
    assert split_window(window, at("2024-01-02T00:00:00")).hours is None  # no whole hour
    assert split_window(window, None).minutes == ((window.start, window.end),)
    aligned = Window(at("2024-01-01T10:00:00"), at("2024-01-01T12:00:00"))
    split = split_window(aligned, at("2024-01-01T12:00:00"))
    assert split.hours == (aligned.start, aligned.end)
    assert split.minutes == ()
