"""Questions about the past, answered from the raw lake: when, where, who, how big.

:func:`load_events` reads a date range of the lake (committed files only, late events
included); every other function is pure, a DataFrame of lake rows in and a small table out,
so a researcher can reuse them on any slice.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from wiki_lib.config import Settings
from wiki_lib.errors import ConfigError
from wiki_lib.lake import read_events_pandas

__all__ = [
    "HISTORY_COLUMNS",
    "activity_by_hour_and_weekday",
    "activity_by_project_language",
    "bot_share_over_time",
    "date_range",
    "edit_size_distribution",
    "hits_by",
    "load_events",
    "new_page_rate",
    "parse_day",
    "saved_terms",
    "top_pages",
    "watchlist_hits",
]

HISTORY_COLUMNS = [
    "event_id",
    "event_time",
    "type",
    "is_bot",
    "wiki",
    "project",
    "language",
    "namespace",
    "title",
    "user",
    "comment",
    "length_delta",
    "is_late",
]
"""The lake columns these analyses read (not ``raw_json``, the bulk of the lake)."""

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def parse_day(text: str) -> date:
    """A UTC day from ``YYYY-MM-DD``; "" (a notebook's default) is yesterday."""
    if not text:
        return (datetime.now(UTC) - timedelta(days=1)).date()
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"dates must be YYYY-MM-DD, not {text!r}") from exc


def date_range(first: str, last: str) -> tuple[datetime, datetime]:
    """``[first 00:00, last + 1 day 00:00)`` in UTC from two ISO dates ("" is yesterday)."""
    lo = parse_day(first)
    hi = parse_day(last) if last else max(lo, parse_day(""))
    if hi < lo:
        raise ConfigError(f"the range ends ({hi}) before it starts ({lo})")
    start = datetime(lo.year, lo.month, lo.day, tzinfo=UTC)
    return start, datetime(hi.year, hi.month, hi.day, tzinfo=UTC) + timedelta(days=1)


def load_events(settings: Settings, first: str = "", last: str = "") -> pd.DataFrame:
    """Lake events of the days ``first`` .. ``last`` (inclusive, UTC), in event-time order."""
    start, end = date_range(first, last or first)
    return read_events_pandas(settings, start, end, columns=HISTORY_COLUMNS)


def saved_terms(settings: Settings) -> list[str]:
    """The watchlist terms saved from the dashboard (active ones, oldest first)."""
    from wiki_lib.dashboard.watchlist import saved_terms as read_terms
    from wiki_lib.query import connect

    with connect(settings) as reader:
        return list(read_terms(reader))


def activity_by_hour_and_weekday(events: pd.DataFrame) -> pd.DataFrame:
    """Events per hour of day (rows 0-23) and day of week (columns Mon-Sun), UTC."""
    times = pd.to_datetime(events["event_time"], utc=True)
    table = pd.crosstab(times.dt.hour, times.dt.dayofweek)
    table = table.reindex(index=range(24), columns=range(7), fill_value=0)
    table.index.name, table.columns = "hour", WEEKDAYS
    return table


def activity_by_project_language(events: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The ``n`` busiest (project, language) pairs with events, edits and bot share ("-": none)."""
    frame = events.assign(
        project=events["project"].fillna("-"),
        language=events["language"].fillna("-"),
        edit=events["type"].isin(["edit", "new"]),
        bot=events["is_bot"].astype(bool),
    )
    out = (
        frame.groupby(["project", "language"])
        .agg(events=("event_id", "size"), edits=("edit", "sum"), bot_share=("bot", "mean"))
        .sort_values("events", ascending=False)
        .head(n)
        .reset_index()
    )
    out["bot_share"] = out["bot_share"].round(4)
    return out


def bot_share_over_time(events: pd.DataFrame, freq: str = "1h") -> pd.DataFrame:
    """Per period: events, bot events and the bot share of all events."""
    frame = events.assign(
        period=pd.to_datetime(events["event_time"], utc=True).dt.floor(freq),
        bot=events["is_bot"].astype(int),
    )
    out = frame.groupby("period").agg(events=("bot", "size"), bot_events=("bot", "sum"))
    out["bot_share"] = (out["bot_events"] / out["events"]).round(4)
    return out


SIZE_EDGES = [-np.inf, -10_000, -1_000, -100, -10, -1, 0, 1, 10, 100, 1_000, 10_000, np.inf]


def edit_size_distribution(events: pd.DataFrame) -> pd.DataFrame:
    """How many edits and page creations changed a page by how many bytes (log-sized bins).

    Bins are left-closed: ``[-10, -1)`` ... ``[0, 1)`` holds the zero-byte edits.
    """
    sizes = events.loc[events["type"].isin(["edit", "new"]), "length_delta"].astype("int64")
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in itertools.pairwise(SIZE_EDGES)]
    binned = pd.cut(sizes, SIZE_EDGES, right=False, labels=labels)
    counts = binned.value_counts(sort=False).reindex(labels, fill_value=0)
    return pd.DataFrame({"bytes": labels, "edits": counts.to_numpy()})


def top_pages(events: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The ``n`` most edited pages (edits and creations), with their distinct editors."""
    edits = events[events["type"].isin(["edit", "new"]) & events["title"].notna()]
    return (
        edits.groupby(["wiki", "title"])
        .agg(edits=("event_id", "size"), editors=("user", "nunique"))
        .sort_values(["edits", "editors"], ascending=False)
        .head(n)
        .reset_index()
    )


def new_page_rate(events: pd.DataFrame, freq: str = "1h") -> pd.DataFrame:
    """New pages per period, and per minute of that period."""
    frame = events.assign(period=pd.to_datetime(events["event_time"], utc=True).dt.floor(freq))
    out = frame[frame["type"] == "new"].groupby("period").size().rename("new_pages").to_frame()
    out["per_minute"] = (out["new_pages"] / (pd.Timedelta(freq).total_seconds() / 60)).round(3)
    return out


def watchlist_hits(events: pd.DataFrame, terms: Iterable[str]) -> pd.DataFrame:
    """One row per (term, event) whose title, user or comment contains the term.

    The same rule as the live watchlist (:func:`wiki_lib.query.watchlist`): substring match
    after Unicode lower-casing.
    """
    columns = ["term", "event_time", "wiki", "title", "user", "type", "is_bot"]
    fields = [events[c].fillna("").str.lower() for c in ("title", "user", "comment")]
    found = []
    for term in dict.fromkeys(t.strip() for t in terms if t.strip()):
        low = term.lower()
        mask = np.logical_or.reduce([f.str.contains(low, regex=False) for f in fields])
        if mask.any():
            found.append(events.loc[mask].assign(term=term))
    if not found:
        return pd.DataFrame(columns=columns)
    return pd.concat(found, ignore_index=True)[columns].sort_values(["term", "event_time"])


def hits_by(hits: pd.DataFrame, by: str) -> pd.DataFrame:
    """Watchlist hits per term and ``by`` (``wiki`` or ``user``), busiest first."""
    return (
        hits.groupby(["term", by])
        .size()
        .rename("hits")
        .reset_index()
        .sort_values(["hits", "term", by], ascending=[False, True, True])
        .reset_index(drop=True)
    )
