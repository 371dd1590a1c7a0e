"""The query functions dashboards and notebooks call instead of writing SQL.

Each takes a :class:`~wiki_lib.query.reader.Reader`, a lookback (``"15m"``, ``"3h"``,
``"7d"``, a timedelta) ending at ``end`` (default now), optional :class:`Filters`, and returns
a pandas DataFrame with the columns its docstring lists. ``frame.attrs`` holds the effective
window (``window_start``, ``window_end``) and the tables read (``sources``).

Where the numbers come from, cheapest first:

* no filter: the contract's per-minute tables (``traffic``, ``wiki``, ``namespace``, ``page``,
  ``user``), with their hourly roll-ups for the whole hours of long lookbacks; for windows
  that reach the newest minute, top pages, top users and the edits histogram (up to 24 hours)
  and the week's wikis, languages, projects and active wikis come from the sliding-window
  totals (:mod:`wiki_lib.query.running`), and active users from each user's last minute
  (``user_last_seen``), all exact; the week's top pages and users come from seven-day totals
  over the hourly tables, with the same answer (and ``max_missing``) as summing those hours;
* filters of bot, namespace and type only: ``activity_dims_minute``/``activity_dims_hour``
  (``streaming/sql/V016``), the activity rows without their wiki;
* other filters, and figures by wiki under any filter: ``activity_minute``/``activity_hour``,
  which carry every filter dimension; for aggregates over 1, 3 or 24 hours that reach the
  newest minute, their running totals (``activity_running``, ``streaming/sql/V015``), read
  under the filters;
* pages and users under a filter of one namespace and bot or human, and users of one wiki,
  for windows that reach the newest minute: the slices' running totals (``streaming/sql/V013``),
  one row per page or user, kept from ``recent_changes`` and equal to reading it;
* other figures that need individual users or pages under a filter the aggregates cannot
  express (top users of two namespaces, say) and the event feeds: ``recent_changes``, which
  keeps ``stream.recent_changes_hours``.

Every value is bound as a parameter and every identifier quoted; nothing a caller passes is
ever spliced into SQL text.

Two documented limits follow from retention. ``page_hour`` and ``user_hour`` keep only the
``retention.top_k_per_hour`` busiest pages and users of each hour, so top lists over rolled-up
hours report ``max_missing``: how many events a row may lack (0 means exact). Counting
distinct users needs ``user_minute`` (or ``recent_changes`` under filters): ``active_users``
is NULL and :func:`edits_per_user` raises when the window reaches back beyond what that table
still keeps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from psycopg2 import sql

from wiki_lib.query import running
from wiki_lib.query.errors import QueryError
from wiki_lib.query.filters import Filters
from wiki_lib.query.plan import (
    EPOCH_SQL,
    MEASURES,
    TIME_DTYPE,
    End,
    Lookback,
    Request,
    Span,
    _end,
    family_for,
    kept_from_key,
    limit_rows,
    measures,
    request,
    share,
    sum_of,
)
from wiki_lib.query.reader import Reader
from wiki_lib.query.tables import (
    ACTIVITY,
    ACTIVITY_DIMS,
    NAMESPACE,
    PAGE,
    RECENT_CHANGES,
    RECENT_CHANGES_COLUMNS,
    SLICES,
    TRAFFIC,
    USER,
    WIKI,
    Family,
    Slice,
)
from wiki_lib.query.window import HOUR, auto_bucket, bucket_starts, parse_duration

__all__ = [
    "QUERIES",
    "actions",
    "additions_deletions",
    "bot_human",
    "edits_per_user",
    "kpis",
    "minor_major",
    "namespaces",
    "open_alerts",
    "pipeline_health",
    "recent_changes",
    "top_languages",
    "top_pages",
    "top_projects",
    "top_users",
    "top_wikis",
    "traffic",
    "watchlist",
]

_MAX_TERMS = 100


# --- KPIs ----------------------------------------------------------------------------------------

_KPI_COUNTS = ("events", "edits", "new_pages", "bot_events", "bytes_added", "bytes_removed")


def kpis(
    reader: Reader, lookback: Lookback = "15m", *, end: End = None, filters: Filters | None = None
) -> pd.DataFrame:
    """The headline figures of a lookback, one row.

    Columns: ``window_start``, ``window_end``, ``events``, ``edits``, ``new_pages``,
    ``bytes_added``, ``bytes_removed``, ``net_bytes``, ``events_per_second`` (events over the
    window's seconds), ``bot_events``, ``bot_share``, ``active_wikis``, ``active_users``
    (NULL when the window reaches beyond the user table's retention).
    """
    req = request(reader, lookback, end, filters)
    span = req.span()
    family = family_for(req.filters, TRAFFIC, ACTIVITY_DIMS, ACTIVITY)
    counts = measures(family, [*_KPI_COUNTS, "net_bytes"])
    wiki_family = family_for(req.filters, WIKI, ACTIVITY)
    with reader.snapshot():
        users, user_span, user_extra = _active_users(req)
        rows, extra = _kept_rows(req, family, span)
        # under filters only the activity rows carry, both figures read the same rows: once
        wikis, wiki_extra = (
            (sql.SQL("SELECT wiki FROM r"), {})
            if wiki_family is family
            else _kept_rows(req, wiki_family, span)
        )
        statement = sql.SQL(
            "WITH r AS MATERIALIZED ({}) "
            "SELECT c.*, w.active_wikis, u.active_users "
            "FROM (SELECT {} FROM r) AS c, "
            "(SELECT count(wiki) AS active_wikis "
            "FROM (SELECT DISTINCT wiki FROM ({}) AS w) AS d) AS w, "
            "({}) AS u"
        ).format(rows, counts, wikis, users)
        params = req.params(span, user_span, **extra, **wiki_extra, **user_extra)
        columns, found = reader.fetch(statement, params)
    frame = req.frame(columns, found, {})
    frame.insert(0, "window_start", pd.Timestamp(req.window.start))
    frame.insert(1, "window_end", pd.Timestamp(req.window.end))
    frame["events_per_second"] = frame["events"] / req.window.seconds
    frame["bot_share"] = share(frame["bot_events"], frame["events"])
    order = [
        "window_start",
        "window_end",
        "events",
        "edits",
        "new_pages",
        "bytes_added",
        "bytes_removed",
        "net_bytes",
        "events_per_second",
        "bot_events",
        "bot_share",
        "active_wikis",
        "active_users",
    ]
    out = frame[order].astype({c: "int64" for c in [*_KPI_COUNTS, "net_bytes", "active_wikis"]})
    out["active_users"] = out["active_users"].astype("Int64")
    out.attrs = frame.attrs
    return out


def _kept_rows(req: Request, family: Family, span: Span) -> tuple[sql.Composable, dict[str, Any]]:
    """The window's rows of ``family`` that pass the filters, and their extra parameters: the
    running totals when they serve it (the wiki totals unfiltered, the activity totals).

    Call inside :meth:`Reader.snapshot`, so the totals and their marks agree.
    """
    kept = None
    if family is WIKI and not req.filters.dimensions:
        kept = running.find(req, WIKI, prefix="wiki_")
    elif family is ACTIVITY:
        where = req.where(ACTIVITY, span, req.filters)
        kept = running.find(req, ACTIVITY, where=where, prefix="activity_")
    if kept is not None:
        return kept.window_rows(), kept.params()
    return req.rows(family, span), {}


def _active_users(req: Request) -> tuple[sql.Composable, Span, dict[str, Any]]:
    """Distinct users: from user_minute (bot filter via its bot_events), a slice's running
    totals, else the event table; with the statement's own parameters. Call inside a snapshot.

    ``count(x) FROM (SELECT DISTINCT x ...)`` rather than ``count(DISTINCT x)``: PostgreSQL
    can hash the former, while the latter always sorts (2-3 times slower here).
    """
    span = req.span(hours=False, prefix="u")
    null = sql.SQL("SELECT NULL::bigint AS active_users")
    if req.filters.dimensions <= {"bot"}:
        if not req.complete(USER.minute):
            return null, span, {}
        having, seen = {
            None: ("TRUE", "last_any"),
            True: ("bot_events > 0", "last_bot"),
            False: ("events > bot_events", "last_human"),
        }[req.filters.bot]
        rows = req.rows(USER, span, Filters())
        req.sources.add("user_last_seen")
        # With no user_minute row after the window, "active in it" is "last seen since its
        # start" (streaming/sql/V008), an index range count; otherwise count the window's rows.
        return (
            sql.SQL(
                "SELECT CASE WHEN EXISTS (SELECT FROM {um} WHERE window_start >= %(w_end)s) "
                'THEN (SELECT count("user") FROM '
                '(SELECT DISTINCT "user" FROM ({rows}) AS r WHERE {having}) AS d) '
                "ELSE (SELECT count(*) FROM {seen} WHERE {col} >= %(w_start)s) "
                "END AS active_users"
            ).format(
                um=req.reader.table(USER.minute),
                rows=rows,
                having=sql.SQL(having),
                seen=req.reader.table("user_last_seen"),
                col=sql.Identifier(seen),
            ),
            span,
            {},
        )
    if not req.complete(RECENT_CHANGES):
        return null, span, {}
    sliced = _sliced(req, USER, req.filters)  # a slice holds what recent_changes still keeps
    if sliced is not None:
        return (
            sql.SQL("SELECT active AS active_users FROM ({}) AS s").format(sliced.active_keys()),
            span,
            sliced.params(),
        )
    minutes = _slice_minutes(req, USER, req.filters)
    if minutes is not None:
        users, extra = minutes
    else:
        users, extra = (
            sql.SQL('SELECT "user" FROM {} WHERE {} AND {}').format(
                req.reader.table(RECENT_CHANGES),
                req.event_range(),
                req.where(RECENT_CHANGES, req.span(), req.filters),
            ),
            {},
        )
    return (
        sql.SQL(
            'SELECT count("user") AS active_users FROM (SELECT DISTINCT "user" FROM ({}) AS e) AS d'
        ).format(users),
        span,
        extra,
    )


# --- time series -------------------------------------------------------------------------------


def _series(
    req: Request, bucket: Lookback | None, names: Sequence[str]
) -> tuple[pd.DataFrame, timedelta]:
    step = parse_duration(bucket) if bucket is not None else auto_bucket(req.window)
    starts = bucket_starts(req.window, step)
    span = req.span(hours=step % HOUR == timedelta(0))
    family = family_for(req.filters, TRAFFIC, ACTIVITY_DIMS, ACTIVITY)
    statement = sql.SQL(
        "SELECT date_bin(%(bucket)s, window_start, {}) AS bucket_start, {} "
        "FROM ({}) AS r GROUP BY 1 ORDER BY 1"
    ).format(sql.SQL(EPOCH_SQL), measures(family, names), req.rows(family, span))
    columns, rows = req.reader.fetch(statement, req.params(span, bucket=step))
    found = req.frame(columns, rows, {"bucket_start": TIME_DTYPE})
    index = pd.DatetimeIndex(pd.to_datetime(starts, utc=True), name="bucket_start")
    filled = found.set_index("bucket_start").reindex(index, fill_value=0).astype("int64")
    frame = filled.reset_index()
    frame.attrs = {**found.attrs, "bucket": step}
    return frame, step


def traffic(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    bucket: Lookback | None = None,
) -> pd.DataFrame:
    """Events over time, one row per bucket (every bucket, zeros included).

    ``bucket`` defaults to 1 minute up to 3 hours, 5 minutes up to 12 hours, 1 hour up to 14
    days. Columns: ``bucket_start``, ``events``, ``edits``, ``new_pages``, ``log_events``,
    ``categorize_events``, ``other_events``, ``bytes_added``, ``bytes_removed``, ``net_bytes``,
    ``events_per_second`` (over the bucket's length).
    """
    req = request(reader, lookback, end, filters)
    names = [
        "events",
        "edits",
        "new_pages",
        "log_events",
        "categorize_events",
        "other_events",
        "bytes_added",
        "bytes_removed",
        "net_bytes",
    ]
    frame, step = _series(req, bucket, names)
    frame["events_per_second"] = frame["events"] / step.total_seconds()
    return frame


def bot_human(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    bucket: Lookback | None = None,
) -> pd.DataFrame:
    """Bot and human events over time: ``bucket_start``, ``bot_events``, ``human_events``,
    ``bot_share`` (NaN for an empty bucket)."""
    req = request(reader, lookback, end, filters)
    frame, _ = _series(req, bucket, ["bot_events", "human_events"])
    frame["bot_share"] = share(frame["bot_events"], frame["bot_events"] + frame["human_events"])
    return frame


def minor_major(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    bucket: Lookback | None = None,
) -> pd.DataFrame:
    """Minor and major edits (type ``edit`` only) over time: ``bucket_start``,
    ``minor_edits``, ``major_edits``, ``minor_share``."""
    req = request(reader, lookback, end, filters)
    frame, _ = _series(req, bucket, ["minor_edits", "major_edits"])
    frame["minor_share"] = share(frame["minor_edits"], frame["minor_edits"] + frame["major_edits"])
    return frame


def additions_deletions(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    bucket: Lookback | None = None,
) -> pd.DataFrame:
    """Bytes added and removed over time (edits and page creations): ``bucket_start``,
    ``bytes_added``, ``bytes_removed``, ``net_bytes``."""
    req = request(reader, lookback, end, filters)
    frame, _ = _series(req, bucket, ["bytes_added", "bytes_removed", "net_bytes"])
    return frame


# --- breakdowns ----------------------------------------------------------------------------------

_ACTION_MEASURES = {
    "edit": "edits",
    "new": "new_pages",
    "log": "log_events",
    "categorize": "categorize_events",
    "other": "other_events",
}


def actions(
    reader: Reader, lookback: Lookback = "15m", *, end: End = None, filters: Filters | None = None
) -> pd.DataFrame:
    """Events per type: ``type`` (edit, new, log, categorize, other = external and unknown
    types), ``events``, ``share``; always these five rows, in this order."""
    req = request(reader, lookback, end, filters)
    span = req.span()
    family = family_for(req.filters, TRAFFIC, ACTIVITY_DIMS, ACTIVITY)
    with reader.snapshot():
        rows, extra = _kept_rows(req, family, span)
        statement = sql.SQL("SELECT {} FROM ({}) AS r").format(
            measures(family, list(_ACTION_MEASURES.values())), rows
        )
        columns, found = reader.fetch(statement, req.params(span, **extra))
    values = dict(zip(columns, found[0], strict=True))
    data = [(kind, values[measure]) for kind, measure in _ACTION_MEASURES.items()]
    frame = req.frame(["type", "events"], data, {"type": "object", "events": "int64"})
    frame["share"] = share(frame["events"], int(frame["events"].sum()))
    return frame


def top_wikis(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    n: int = 10,
) -> pd.DataFrame:
    """The ``n`` busiest wikis: ``wiki``, ``server_name``, ``project``, ``language``,
    ``events``, ``edits``, ``new_pages``, ``bot_events``, ``bytes_added``, ``bytes_removed``,
    ``share`` (of all events with a wiki); ties by wiki name."""
    req = request(reader, lookback, end, filters)
    span = req.span()
    family = family_for(req.filters, WIKI, ACTIVITY)
    with reader.snapshot():
        rows, extra = _kept_rows(req, family, span)
        return _top_wikis(req, family, span, rows, {**extra, "n": limit_rows(n)})


def _top_wikis(
    req: Request, family: Family, span: Span, wiki_rows: sql.Composable, extra: dict[str, Any]
) -> pd.DataFrame:
    # Sum per wiki and host first (a hash aggregate), then pick each wiki's greatest host and
    # what derives from it over those few rows, instead of sorting every row by host.
    statement = sql.SQL(
        "WITH g AS (SELECT wiki, server_name, project, language, {} FROM ({}) AS r "
        "WHERE wiki IS NOT NULL GROUP BY wiki, server_name, project, language) "
        "SELECT wiki, max(server_name) AS server_name, "
        "(array_agg(project ORDER BY server_name DESC NULLS LAST))[1] AS project, "
        "(array_agg(language ORDER BY server_name DESC NULLS LAST))[1] AS language, {}, "
        "bigsum(bigsum(events)) OVER () AS total "
        "FROM g GROUP BY wiki ORDER BY events DESC, wiki LIMIT %(n)s"
    ).format(
        measures(family, WIKI.counters),
        wiki_rows,
        sql.SQL(", ").join(
            sql.SQL("bigsum({c}) AS {c}").format(c=sql.Identifier(c)) for c in WIKI.counters
        ),
    )
    columns, rows = req.reader.fetch(statement, req.params(span, **extra))
    frame = req.frame(columns, rows, {c: "int64" for c in (*WIKI.counters, "total")})
    frame["share"] = share(frame["events"], frame["total"])
    return frame.drop(columns="total")


def _top_group(
    reader: Reader,
    lookback: Lookback,
    end: End,
    filters: Filters | None,
    n: int,
    column: str,
) -> pd.DataFrame:
    req = request(reader, lookback, end, filters)
    span = req.span()
    family = family_for(req.filters, WIKI, ACTIVITY)
    with reader.snapshot():
        wiki_rows, extra = _kept_rows(req, family, span)
        return _grouped(req, span, family, column, wiki_rows, {**extra, "n": limit_rows(n)})


def _grouped(
    req: Request,
    span: Span,
    family: Family,
    column: str,
    wiki_rows: sql.Composable,
    extra: dict[str, Any],
) -> pd.DataFrame:
    # one row per group and wiki first (hashable), so counting wikis needs no DISTINCT sort
    statement = sql.SQL(
        "WITH g AS (SELECT {col}, wiki, {} FROM ({}) AS r "
        "WHERE {col} IS NOT NULL AND wiki IS NOT NULL GROUP BY {col}, wiki) "
        "SELECT {col}, bigsum(events) AS events, bigsum(edits) AS edits, "
        "count(*) AS wikis, bigsum(bigsum(events)) OVER () AS total "
        "FROM g GROUP BY {col} ORDER BY events DESC, {col} LIMIT %(n)s"
    ).format(
        measures(family, ["events", "edits"]),
        wiki_rows,
        col=sql.Identifier(column),
    )
    columns, rows = req.reader.fetch(statement, req.params(span, **extra))
    frame = req.frame(columns, rows, dict.fromkeys(("events", "edits", "wikis", "total"), "int64"))
    frame["share"] = share(frame["events"], frame["total"])
    return frame.drop(columns="total")


def top_languages(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    n: int = 10,
) -> pd.DataFrame:
    """The ``n`` busiest languages (of the language projects): ``language``, ``events``,
    ``edits``, ``wikis`` (active wikis of that language), ``share``."""
    return _top_group(reader, lookback, end, filters, n, "language")


def top_projects(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    n: int = 10,
) -> pd.DataFrame:
    """The ``n`` busiest projects (wikipedia, wikidata, commons, ...): ``project``,
    ``events``, ``edits``, ``wikis``, ``share``."""
    return _top_group(reader, lookback, end, filters, n, "project")


def namespaces(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    n: int = 50,
) -> pd.DataFrame:
    """Events per namespace, busiest first: ``namespace``, ``events``, ``share``."""
    req = request(reader, lookback, end, filters)
    span = req.span()
    family = family_for(req.filters, NAMESPACE, ACTIVITY_DIMS, ACTIVITY)
    events = MEASURES[family.name]["events"]
    with reader.snapshot():
        rows, extra = _kept_rows(req, family, span)
        statement = sql.SQL(
            "SELECT namespace, {} AS events, bigsum({}) OVER () AS total FROM ({}) AS r "
            "WHERE namespace IS NOT NULL GROUP BY namespace ORDER BY events DESC, namespace "
            "LIMIT %(n)s"
        ).format(sql.SQL(events), sql.SQL(events), rows)
        columns, found = reader.fetch(statement, req.params(span, n=limit_rows(n), **extra))
    frame = req.frame(columns, found, dict.fromkeys(("namespace", "events", "total"), "int64"))
    frame["share"] = share(frame["events"], frame["total"])
    return frame.drop(columns="total")


# --- pages and users ----------------------------------------------------------------------------


def _max_missing(req: Request, span: Span, family: Family) -> sql.Composable:
    """Events a top-list row may lack because truncated hours left it out (0 if none did)."""
    if not span.split.hours:
        return sql.SQL("0::bigint")
    cutoff = sql.Identifier("page_cutoff" if family is PAGE else "user_cutoff")
    match = sql.SQL(" AND ").join(
        sql.SQL("h.{k} = t.{k}").format(k=sql.Identifier(k)) for k in family.keys
    )
    cutoffs = req.reader.table("hour_cutoffs")
    return sql.SQL(
        "(SELECT bigsum({c}) FROM {cut} WHERE {hours}) - "
        "(SELECT bigsum(x.{c}) FROM {hour} AS h JOIN {cut} AS x USING (window_start) "
        "WHERE {match} AND {hours})"
    ).format(
        c=cutoff,
        cut=cutoffs,
        hour=req.reader.table(family.hour),
        hours=span.hour_range(),
        match=match,
    )


def _slice_for(family: Family, filters: Filters) -> tuple[Slice, dict[str, Any]] | None:
    """The slice of ``family`` that answers ``filters`` exactly, with the value each of its
    pinned columns is read at, or None."""
    for kept in SLICES.get(family.name, ()):
        pins = kept.pins(filters)
        if pins is not None:
            return kept, pins
    return None


def _sliced(req: Request, family: Family, filters: Filters) -> running.Running | None:
    """The running totals of a slice of ``family`` that answer ``filters`` exactly, or None.

    Call inside a snapshot.
    """
    found = _slice_for(family, filters)
    return None if found is None else running.find(req, *found)


def _slice_minutes(
    req: Request, family: Family, filters: Filters
) -> tuple[sql.Composable, dict[str, Any]] | None:
    """The window's rows of the slice of ``family`` that answers ``filters`` (per key and
    minute: keys and counters) and their parameters, or None when no slice does.

    For the windows its running totals do not serve: they sum to what grouping the window's
    events in ``recent_changes`` gives, from a row per key and minute instead of per event.
    """
    found = _slice_for(family, filters)
    if found is None:
        return None
    kept, pins = found
    req.sources.add(kept.minute)
    rows = sql.SQL(
        "SELECT {cols} FROM {minute} WHERE window_start >= %(w_start)s "
        "AND window_start < %(w_end)s AND {pinned}"
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in (*kept.keys, *kept.counters)),
        minute=req.reader.table(kept.minute),
        pinned=sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(f"sm_{c}")) for c in pins
        ),
    )
    return rows, {f"sm_{c}": v for c, v in pins.items()}


def _grouped_rows(
    req: Request, family: Family, span: Span, filters: Filters
) -> tuple[sql.Composable, sql.Composable, dict[str, Any]] | None:
    """Rows per key and minute (or hour) that sum to the window's answer under ``filters``:
    ``family``'s own tables when they carry every dimension filtered on, else the minute rows
    of the slice that answers the filter; with the ``max_missing`` expression and the extra
    parameters. None when only grouping the events of ``recent_changes`` answers.
    """
    if filters.dimensions <= family.dimensions:
        return req.rows(family, span, filters), _max_missing(req, span, family), {}
    minutes = _slice_minutes(req, family, filters)
    if minutes is None:
        return None
    rows, params = minutes
    return rows, sql.SQL("0::bigint"), params


def _running_top(req: Request, family: Family, span: Span, n: int) -> list[tuple[Any, ...]] | None:
    """The unfiltered top list from the running totals (minutes, then the week's hours), or
    None when neither serves the window. Call inside a snapshot."""
    kept = running.find(req, family)
    if kept is not None:
        return kept.top(n)
    week = running.find_hours(req, family, span)
    return week.top(n, _max_missing(req, span, family)) if week is not None else None


def top_pages(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    n: int = 10,
) -> pd.DataFrame:
    """The ``n`` most edited pages (edits and creations): ``wiki``, ``title``, ``events``,
    ``bytes_added``, ``bytes_removed``, ``max_missing`` (see the module notes); ties by wiki,
    title."""
    req = request(reader, lookback, end, filters)
    n = limit_rows(n)
    page_filters = req.filters
    if {"edit", "new"} <= set(page_filters.type):
        page_filters = page_filters.without("type")
    span = req.span()
    with reader.snapshot():  # the totals and the marks saying what they cover agree
        if not page_filters.dimensions:
            rows = _running_top(req, PAGE, span, n)
        else:
            kept = _sliced(req, PAGE, page_filters)
            rows = None if kept is None else kept.top(n)
    if rows is not None:
        columns = [*PAGE.keys, *PAGE.counters, "max_missing"]
        return req.frame(columns, rows, {c: "int64" for c in columns[2:]})
    grouped = _grouped_rows(req, PAGE, span, page_filters)
    extra: dict[str, Any] = {}
    if grouped is not None:
        rows_sql, max_missing, extra = grouped
        statement = sql.SQL(
            "WITH t AS (SELECT wiki, title, {} FROM ({}) AS r GROUP BY wiki, title "
            "ORDER BY events DESC, wiki, title LIMIT %(n)s) "
            "SELECT t.*, {} AS max_missing FROM t ORDER BY events DESC, wiki, title"
        ).format(
            sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(sql.SQL(sum_of(c)), sql.Identifier(c))
                for c in PAGE.counters
            ),
            rows_sql,
            max_missing,
        )
    else:
        statement = sql.SQL(
            "SELECT wiki, title, count(*)::bigint AS events, "
            "bigsum(greatest(length_delta, 0)) AS bytes_added, "
            "bigsum(greatest(-length_delta, 0)) AS bytes_removed, "
            "0::bigint AS max_missing FROM {} WHERE {} AND type IN ('edit', 'new') "
            "AND wiki IS NOT NULL AND title IS NOT NULL AND {} "
            "GROUP BY wiki, title ORDER BY events DESC, wiki, title LIMIT %(n)s"
        ).format(
            reader.table(RECENT_CHANGES),
            req.event_range(),
            req.where(RECENT_CHANGES, span, req.filters),
        )
    columns, rows = reader.fetch(statement, req.params(span, n=n, **extra))
    return req.frame(columns, rows, {c: "int64" for c in (*PAGE.counters, "max_missing")})


def top_users(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    n: int = 10,
) -> pd.DataFrame:
    """The ``n`` most active users: ``user``, ``events`` (all types), ``edits`` (edits and
    creations), ``bot_events``, ``bytes_added``, ``bytes_removed``, ``max_missing``."""
    req = request(reader, lookback, end, filters)
    n = limit_rows(n)
    span = req.span()
    with reader.snapshot():
        if not req.filters.dimensions:
            rows = _running_top(req, USER, span, n)
        else:
            kept = _sliced(req, USER, req.filters)
            rows = None if kept is None else kept.top(n)
    if rows is not None:
        columns = [*USER.keys, *USER.counters, "max_missing"]
        return req.frame(columns, rows, {c: "int64" for c in columns[1:]})
    grouped = _grouped_rows(req, USER, span, req.filters)
    extra: dict[str, Any] = {}
    if grouped is not None:
        rows_sql, max_missing, extra = grouped
        statement = sql.SQL(
            'WITH t AS (SELECT "user", {} FROM ({}) AS r GROUP BY "user" '
            'ORDER BY events DESC, "user" LIMIT %(n)s) '
            'SELECT t.*, {} AS max_missing FROM t ORDER BY events DESC, "user"'
        ).format(
            sql.SQL(", ").join(
                sql.SQL("{} AS {}").format(sql.SQL(sum_of(c)), sql.Identifier(c))
                for c in USER.counters
            ),
            rows_sql,
            max_missing,
        )
    else:
        statement = sql.SQL(
            'SELECT "user", count(*)::bigint AS events, '
            "count(*) FILTER (WHERE type IN ('edit', 'new'))::bigint AS edits, "
            "count(*) FILTER (WHERE is_bot)::bigint AS bot_events, "
            "bigsum(greatest(length_delta, 0)) AS bytes_added, "
            "bigsum(greatest(-length_delta, 0)) AS bytes_removed, "
            '0::bigint AS max_missing FROM {} WHERE {} AND "user" IS NOT NULL AND {} '
            'GROUP BY "user" ORDER BY events DESC, "user" LIMIT %(n)s'
        ).format(
            reader.table(RECENT_CHANGES),
            req.event_range(),
            req.where(RECENT_CHANGES, span, req.filters),
        )
    columns, rows = reader.fetch(statement, req.params(span, n=n, **extra))
    return req.frame(columns, rows, {c: "int64" for c in (*USER.counters, "max_missing")})


def edits_per_user(
    reader: Reader, lookback: Lookback = "15m", *, end: End = None, filters: Filters | None = None
) -> pd.DataFrame:
    """How many users made how many edits (edits and creations), in power-of-two bins.

    Columns: ``edits_min``, ``edits_max`` (the bin, inclusive: 1-1, 2-3, 4-7, ...), ``users``,
    ``edits`` (their edits); every bin up to the busiest user's. Users without edits are not
    counted. Raises :class:`QueryError` when the window reaches beyond the retention of the
    table it needs (``user_minute``, or ``recent_changes`` under filters).
    """
    req = request(reader, lookback, end, filters)
    with reader.snapshot():  # the totals and the marks saying what they cover agree
        return _edits_per_user(req)


def _edits_per_user(req: Request) -> pd.DataFrame:
    reader = req.reader
    span, wiki_span = req.span(hours=False, prefix="u"), req.span()
    if req.filters.dimensions:  # a slice holds what recent_changes still keeps
        kept, table = _sliced(req, USER, req.filters), RECENT_CHANGES
    else:
        kept, table = running.find(req, USER), USER.minute
    if kept is not None:
        bins, params = kept.edits_bins(), kept.params()
    else:
        grouped = _grouped_rows(req, USER, span, req.filters)  # per minute: no max_missing
        extra: dict[str, Any] = {}
        if grouped is not None:
            rows_sql, _, extra = grouped
            per_user = sql.SQL(
                'SELECT bigsum(edits) AS edits FROM ({}) AS r GROUP BY "user" '
                "HAVING bigsum(edits) > 0"
            ).format(rows_sql)
        else:
            per_user = sql.SQL(
                "SELECT count(*) AS edits FROM {} WHERE {} AND type IN ('edit', 'new') "
                'AND "user" IS NOT NULL AND {} GROUP BY "user"'
            ).format(
                reader.table(RECENT_CHANGES),
                req.event_range(),
                req.where(RECENT_CHANGES, wiki_span, req.filters),
            )
        params = req.params(span, wiki_span, **extra)
        bins = sql.SQL(
            "SELECT edits_bin(edits) AS bin, count(*)::bigint AS users, bigsum(edits) AS edits "
            "FROM ({}) AS p GROUP BY bin ORDER BY bin"
        ).format(per_user)
    if not req.complete(table):
        raise QueryError(
            f"edits per user needs {table}, which retention keeps from "
            f"{req.state[kept_from_key(table)]:%Y-%m-%d %H:%M} UTC; the window starts "
            f"{req.window.start:%Y-%m-%d %H:%M} UTC"
        )
    _, rows = reader.fetch(bins, params)
    found = {row[0]: row[1:] for row in rows}
    data = [
        (2 ** (b - 1), 2**b - 1, *found.get(b, (0, 0))) for b in range(1, max(found, default=0) + 1)
    ]
    return req.frame(
        ["edits_min", "edits_max", "users", "edits"],
        data,
        dict.fromkeys(("edits_min", "edits_max", "users", "edits"), "int64"),
    )


# --- event feeds ---------------------------------------------------------------------------------

_EVENT_DTYPES = {"event_time": TIME_DTYPE, "namespace": "Int64", "length_delta": "int64"}


def _event_columns(prefix: str = "") -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL(prefix + "{}").format(sql.Identifier(c)) for c in RECENT_CHANGES_COLUMNS
    )


def recent_changes(
    reader: Reader,
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    limit: int = 500,
) -> pd.DataFrame:
    """The newest individual events of the window (for the scatter of edits), newest first.

    Columns: ``event_id``, ``event_time``, ``wiki``, ``server_name``, ``type``,
    ``namespace``, ``title``, ``user``, ``is_bot``, ``is_minor``, ``length_delta``,
    ``comment``.
    """
    req = request(reader, lookback, end, filters)
    span = req.span()
    statement = sql.SQL(
        "SELECT {} FROM {} WHERE {} AND {} ORDER BY event_time DESC, event_id LIMIT %(n)s"
    ).format(
        _event_columns(),
        reader.table(RECENT_CHANGES),
        req.event_range(),
        req.where(RECENT_CHANGES, span, req.filters),
    )
    columns, rows = reader.fetch(statement, req.params(span, n=limit_rows(limit, "limit")))
    return req.frame(columns, rows, _EVENT_DTYPES)


def _terms(terms: str | Sequence[str]) -> list[str]:
    values = [terms] if isinstance(terms, str) else list(terms)
    cleaned = []
    for term in values:
        if not isinstance(term, str):
            raise QueryError(f"watchlist terms are strings, not {type(term).__name__}")
        term = term.strip()
        if not term:
            continue
        if len(term) > 200:
            raise QueryError("a watchlist term is longer than 200 characters")
        cleaned.append(term)
    if not cleaned:
        raise QueryError("the watchlist has no terms")
    if len(cleaned) > _MAX_TERMS:
        raise QueryError(f"the watchlist has more than {_MAX_TERMS} terms")
    return list(dict.fromkeys(cleaned))


def watchlist(
    reader: Reader,
    terms: str | Sequence[str],
    lookback: Lookback = "15m",
    *,
    end: End = None,
    filters: Filters | None = None,
    limit: int = 500,
) -> pd.DataFrame:
    """Events whose title, user or comment contains one of ``terms`` (case-insensitive).

    Matching is by substring with Unicode lower-casing; the terms travel as a bound array.
    Columns: those of :func:`recent_changes`, plus ``matched`` (the terms found, a list).
    """
    req = request(reader, lookback, end, filters)
    span = req.span()
    icu = sql.SQL('COLLATE "und-x-icu"')
    statement = sql.SQL(
        "WITH terms AS MATERIALIZED (SELECT term, lower(term {icu}) AS low "
        "FROM unnest(%(terms)s::text[]) AS term) "
        "SELECT {cols}, m.matched FROM {rc} AS e "
        # OFFSET 0 keeps each field lowered once per row, not once per term
        'CROSS JOIN LATERAL (SELECT lower(e.title {icu}) AS t, lower(e."user" {icu}) AS u, '
        "lower(e.comment {icu}) AS c OFFSET 0) AS l "
        # an ARRAY subquery, not array_agg: no aggregate to set up per row; OFFSET 0 again
        # so the terms are matched once per row, not again for the rows returned
        "CROSS JOIN LATERAL (SELECT ARRAY(SELECT term FROM terms WHERE strpos(l.t, low) > 0 "
        "OR strpos(l.u, low) > 0 OR strpos(l.c, low) > 0 ORDER BY term) AS matched OFFSET 0) "
        "AS m "
        "WHERE {range} AND {where} AND cardinality(m.matched) > 0 "
        "ORDER BY e.event_time DESC, e.event_id LIMIT %(n)s"
    ).format(
        cols=_event_columns("e."),
        rc=reader.table(RECENT_CHANGES),
        icu=icu,
        range=req.event_range(),
        where=req.where(RECENT_CHANGES, span, req.filters),
    )
    params = req.params(span, terms=_terms(terms), n=limit_rows(limit, "limit"))
    columns, rows = reader.fetch(statement, params)
    return req.frame(columns, rows, _EVENT_DTYPES)


# --- pipeline ------------------------------------------------------------------------------------


def pipeline_health(
    reader: Reader, *, query_name: str | None = None, now: datetime | None = None
) -> pd.DataFrame:
    """How the speed layer is doing, one row (none before its first batch).

    Columns: ``query_name``, ``last_batch_id``, ``last_commit_at``,
    ``seconds_since_commit``, ``watermark``, ``max_event_time``, ``event_lag_seconds`` (now
    minus the newest event time), ``input_rows_per_s``, ``processed_rows_per_s`` (Spark's
    latest progress), ``last_batch_rows``, ``last_batch_ms``, ``late_rows_last_hour``,
    ``kafka_lag_records`` (offsets the query has not read yet, at its last progress).
    """
    name = query_name or reader.settings.stream.query_name
    moment = now or datetime.now(UTC)
    statement = sql.SQL(
        "SELECT p.query_name, p.batch_id, p.committed_at, p.watermark, p.max_event_time, "
        "p.input_rows_per_s, p.processed_rows_per_s, p.rows_read, p.processing_ms, "
        "(SELECT coalesce(sum(rows_late), 0) FROM {pp} WHERE query_name = %(q)s "
        "AND committed_at >= %(hour_ago)s)::bigint AS late, s.progress "
        "FROM {pp} AS p LEFT JOIN {ss} AS s USING (query_name) WHERE p.query_name = %(q)s "
        "ORDER BY p.batch_id DESC LIMIT 1"
    ).format(pp=reader.table("pipeline_progress"), ss=reader.table("stream_status"))
    _, rows = reader.fetch(statement, {"q": name, "hour_ago": moment - HOUR})
    columns = [
        "query_name",
        "last_batch_id",
        "last_commit_at",
        "seconds_since_commit",
        "watermark",
        "max_event_time",
        "event_lag_seconds",
        "input_rows_per_s",
        "processed_rows_per_s",
        "last_batch_rows",
        "last_batch_ms",
        "late_rows_last_hour",
        "kafka_lag_records",
    ]
    data = []
    for row in rows:
        (query, batch, committed, watermark, newest, in_rate, out_rate, read, ms, late, raw) = row
        progress = (raw if isinstance(raw, dict) else json.loads(raw)) if raw else {}
        data.append(
            (
                query,
                batch,
                committed,
                (moment - committed).total_seconds(),
                watermark,
                newest,
                (moment - newest).total_seconds() if newest else None,
                progress.get("inputRowsPerSecond", in_rate),
                progress.get("processedRowsPerSecond", out_rate),
                read,
                ms,
                late,
                _kafka_lag(progress),
            )
        )
    times = ("last_commit_at", "watermark", "max_event_time")
    frame = pd.DataFrame.from_records(data, columns=columns)
    for col in times:
        frame[col] = pd.to_datetime(frame[col], utc=True)
    for col in ("seconds_since_commit", "event_lag_seconds", "input_rows_per_s"):
        frame[col] = frame[col].astype("float64")
    frame["processed_rows_per_s"] = frame["processed_rows_per_s"].astype("float64")
    for col in ("last_batch_id", "last_batch_rows", "last_batch_ms", "late_rows_last_hour"):
        frame[col] = frame[col].astype("int64")
    frame["kafka_lag_records"] = frame["kafka_lag_records"].astype("Int64")
    frame.attrs.update(sources=["pipeline_progress", "stream_status"], now=moment)
    return frame


def _kafka_lag(progress: dict[str, Any]) -> int | None:
    """Sum over partitions of latestOffset - endOffset, as Spark reported them."""
    total = None
    for source in progress.get("sources", []):
        latest, done = source.get("latestOffset"), source.get("endOffset")
        if not latest or not done:
            continue
        latest = json.loads(latest) if isinstance(latest, str) else latest
        done = json.loads(done) if isinstance(done, str) else done
        for topic, partitions in latest.items():
            read = done.get(topic, {})
            for partition, offset in partitions.items():
                total = (total or 0) + max(0, int(offset) - int(read.get(partition, 0)))
    return total


# --- alerts --------------------------------------------------------------------------------------


def open_alerts(
    reader: Reader,
    lookback: Lookback | None = None,
    *,
    end: End = None,
    filters: Filters | None = None,
    limit: int = 50,
) -> pd.DataFrame:
    """The alerts fired in the ``lookback`` before ``end`` (default: the alert cooldown before
    now), newest first: what the dashboard's health strip calls open.

    Columns: ``alert_id``, ``rule``, ``key``, ``severity``, ``message``, ``details`` (a dict),
    ``observed_at``, ``fired_at``. ``frame.attrs["total"]`` counts every open alert, also
    beyond ``limit``. Alerts concern the whole platform, so ``filters`` (accepted for the
    signature every query shares) narrows nothing.
    """
    stop = _end(end) or datetime.now(UTC)
    if stop.tzinfo is None:
        stop = stop.replace(tzinfo=UTC)
    span = parse_duration(
        lookback if lookback is not None else timedelta(seconds=reader.settings.alerts.cooldown_s)
    )
    statement = sql.SQL(
        "SELECT alert_id, rule, key, severity, message, details, observed_at, fired_at, "
        "count(*) OVER () AS total FROM {} WHERE fired_at > %(start)s AND fired_at <= %(stop)s "
        "ORDER BY fired_at DESC, alert_id DESC LIMIT %(n)s"
    ).format(reader.table("alerts"))
    params = {"start": stop - span, "stop": stop, "n": limit_rows(limit, "limit")}
    columns, rows = reader.fetch(statement, params)
    frame = pd.DataFrame.from_records(rows, columns=columns)
    total = int(frame["total"].iloc[0]) if not frame.empty else 0
    frame = frame.drop(columns="total")
    for col in ("observed_at", "fired_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    frame["alert_id"] = frame["alert_id"].astype("int64")
    frame.attrs.update(window_start=stop - span, window_end=stop, sources=["alerts"], total=total)
    return frame


QUERIES: dict[str, Callable[..., pd.DataFrame]] = {
    "kpis": kpis,
    "traffic": traffic,
    "bot_human": bot_human,
    "actions": actions,
    "top_wikis": top_wikis,
    "top_languages": top_languages,
    "top_projects": top_projects,
    "namespaces": namespaces,
    "top_pages": top_pages,
    "top_users": top_users,
    "edits_per_user": edits_per_user,
    "minor_major": minor_major,
    "additions_deletions": additions_deletions,
    "recent_changes": recent_changes,
    "watchlist": watchlist,
    "pipeline_health": pipeline_health,
    "open_alerts": open_alerts,
}
"""Every query function by name (for ``wikipulse query`` and the benchmark)."""
