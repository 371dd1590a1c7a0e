"""Time windows of the query API: lookbacks, buckets, and which tier serves which part.

Pure functions, no I/O. A lookback ends at ``end`` (default: now) and is widened to whole
minutes, the resolution of every serving table: ``end`` is rounded up to the next minute, so a
live query includes the current, still filling minute, and the start lies a whole number of
minutes before it. Minute tables answer for windows whose ``window_start`` lies in
``[start, end)``; ``recent_changes`` for events whose ``event_time`` does.

Hourly roll-ups make long lookbacks cheap: the hours that lie entirely inside the window and
that the roll-up has completed are read from the ``*_hour`` tables, the minutes around them
from the ``*_minute`` tables. Both give the same sums, so the answer does not depend on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from wiki_lib.query.errors import QueryError

__all__ = [
    "AUTO_BUCKETS",
    "HOUR",
    "MAX_LOOKBACK",
    "MINUTE",
    "Split",
    "Window",
    "auto_bucket",
    "bucket_starts",
    "make_window",
    "parse_duration",
    "split_window",
]

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
MAX_LOOKBACK = timedelta(days=3660)
"""Longest lookback accepted (ten years): a guard against typos like ``"7000d"``."""

AUTO_BUCKETS: tuple[tuple[timedelta, timedelta], ...] = (
    (timedelta(hours=3), MINUTE),
    (timedelta(hours=12), timedelta(minutes=5)),
    (timedelta(days=14), HOUR),
    (MAX_LOOKBACK, timedelta(days=1)),
)
"""(longest window, bucket): per-minute points up to 3 hours, hourly ones up to 14 days."""

_PART = re.compile(r"(\d+)\s*(ms|s|sec|m|min|h|d|w)", re.IGNORECASE)
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "m": MINUTE,
    "min": MINUTE,
    "h": HOUR,
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_duration(value: str | timedelta) -> timedelta:
    """``"15m"``, ``"1h30m"``, ``"7d"``, ``"90s"`` or a timedelta -> a positive timedelta."""
    if isinstance(value, timedelta):
        duration = value
    else:
        text = value.strip().replace(" ", "")
        parts = _PART.findall(text)
        if not text or "".join(f"{n}{u}" for n, u in parts).lower() != text.lower():
            raise QueryError(f"duration {value!r} is not like '90s', '15m', '3h', '1h30m' or '7d'")
        duration = sum((int(n) * _UNITS[u.lower()] for n, u in parts), timedelta())
    if duration <= timedelta(0):
        raise QueryError(f"duration {value!r} must be positive")
    if duration > MAX_LOOKBACK:
        raise QueryError(f"duration {value!r} is longer than {MAX_LOOKBACK.days} days")
    return duration


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are read as UTC, aware ones converted to it."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _floor(moment: datetime, step: timedelta) -> datetime:
    return _EPOCH + ((moment - _EPOCH) // step) * step


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floored = _floor(moment, step)
    return floored if floored == moment else floored + step


@dataclass(frozen=True)
class Window:
    """A half-open time range ``[start, end)`` on whole minutes, in UTC."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        """Length in seconds (the denominator of events per second)."""
        return (self.end - self.start).total_seconds()


def make_window(
    lookback: str | timedelta, end: datetime | None = None, *, now: datetime | None = None
) -> Window:
    """The minute-aligned window of ``lookback`` ending at ``end`` (default ``now``).

    ``end`` is rounded up to a whole minute and the lookback up to whole minutes (at least
    one), so ``make_window("15m", 12:30:27)`` is ``[12:16, 12:31)``: fifteen minute windows.
    """
    duration = _ceil(_EPOCH + parse_duration(lookback), MINUTE) - _EPOCH
    stop = _ceil(_aware(end if end is not None else (now or datetime.now(UTC))), MINUTE)
    return Window(stop - duration, stop)


def auto_bucket(window: Window) -> timedelta:
    """The bucket of a time series over ``window`` when the caller names none."""
    length = window.end - window.start
    for longest, bucket in AUTO_BUCKETS:
        if length <= longest:
            return bucket
    return AUTO_BUCKETS[-1][1]


def bucket_starts(window: Window, bucket: timedelta) -> list[datetime]:
    """Every bucket start (aligned to the epoch) whose bucket overlaps ``window``."""
    if bucket < MINUTE or bucket % MINUTE:
        raise QueryError(f"bucket {bucket} is not a whole number of minutes")
    first = _floor(window.start, bucket)
    count = (window.end - first + bucket - timedelta(microseconds=1)) // bucket
    if count > 100_000:
        raise QueryError(f"{count} buckets of {bucket} over {window}: choose a coarser bucket")
    return [first + i * bucket for i in range(count)]


@dataclass(frozen=True)
class Split:
    """Which part of a window the hourly tables serve and which the minute tables do."""

    hours: tuple[datetime, datetime] | None
    minutes: tuple[tuple[datetime, datetime], ...]


def split_window(window: Window, rolled_until: datetime | None) -> Split:
    """Whole hours inside ``window`` before ``rolled_until`` from hours, the rest from minutes.

    ``rolled_until=None`` (nothing rolled up yet, or minute resolution needed) reads minutes
    only.
    """
    if rolled_until is None:
        return Split(None, ((window.start, window.end),))
    first_hour = _ceil(window.start, HOUR)
    last_hour = min(_floor(window.end, HOUR), _floor(rolled_until, HOUR))
    if first_hour >= last_hour:
        return Split(None, ((window.start, window.end),))
    minutes = []
    if window.start < first_hour:
        minutes.append((window.start, first_hour))
    if last_hour < window.end:
        minutes.append((last_hour, window.end))
    return Split((first_hour, last_hour), tuple(minutes))
