"""Query-API benchmark: every query function over seven days of data at live rate.

The data is synthetic and generated inside PostgreSQL (``generate_series``), not pushed
through Spark: ~50 events/s means 30 million events a week, which would take hours here.
What matters for query latency is the shape and the volume of the serving tables, so each
table is filled with the rows a week at that rate leaves after retention (defaults of
:class:`~wiki_lib.config.RetentionSettings`):

* per minute, for seven days: ``traffic_minute`` (1 row), ``wiki_minute`` (~250 of ~900
  wikis, Zipf-like, the top 20 always active), ``namespace_minute`` (20), ``activity_minute``
  (450 combinations);
* per minute, for ``entity_minute_days`` (2): ``page_minute`` (1,500 pages: 30 hot ones,
  the rest hardly ever repeating), ``user_minute`` (700 users: 50 busy bots, the rest drawn
  from 60,000 people);
* per hour, for seven days: every ``*_hour`` table as the roll-up leaves it (``page_hour`` and
  ``user_hour`` truncated to ``top_k_per_hour``), hours rolled up to the current hour;
* ``recent_changes``: every event of the last ``stream.recent_changes_hours`` (24 h).

Then every table with a time index is rewritten in time order (``CLUSTER``), as the stream's
appends leave it; ``VACUUM ANALYZE`` of every table (those the serving triggers filled too,
which a steady database has autovacuum analyze); and each function is timed for several
lookbacks ending where the data ends (the moment the load began, as a live stream keeps its
newest minute about a minute behind the clock), unfiltered and with two filters, after two
warm-up calls; the report gives p50 and p95 in ms. Ending at the clock instead would let a
slow load decide which path answers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from psycopg2 import sql

from wiki_lib import db, query
from wiki_lib.bench.serving_data import HOURS_SQL, MINUTES_SQL, TABLE_SQL, WIKIS_SQL
from wiki_lib.config import Settings
from wiki_lib.query.plan import ROLLED_UNTIL, kept_from_key

__all__ = ["LOOKBACKS", "query_latency"]

LOOKBACKS = ("1m", "15m", "1h", "3h", "24h", "7d")
_FILTERED_LOOKBACKS = ("15m", "3h", "24h")
_FILTERS = {
    "wiki": query.Filters(wiki="w3"),
    "human_articles": query.Filters(bot=False, namespace=0),
}
_WATCH_TERMS = ["Paris", "hot page 7", "vandal"]
_SLOW_MS = 1000.0


def _fill(cur: Any, schema: str, settings: Settings, now: datetime, rate: float) -> dict[str, int]:
    """Load the synthetic week; returns rows per table."""
    cfg = settings.retention
    minute_end = now.replace(second=0, microsecond=0)
    hour_end = minute_end.replace(minute=0)
    week = int(timedelta(days=7) / timedelta(minutes=1))
    entity = int(timedelta(days=cfg.entity_minute_days) / timedelta(minutes=1))
    rc_rows = int(rate * 3600 * settings.stream.recent_changes_hours)
    per_minute = {  # rows per minute, top value, minutes kept
        "traffic_minute": (1, 0, week),
        "wiki_minute": (250, int(rate * 60 * 0.3), week),
        "namespace_minute": (20, int(rate * 60 * 0.4), week),
        "activity_minute": (450, int(rate * 60 * 0.2), week),
        "page_minute": (1500, 2, entity),
        "user_minute": (700, 20, entity),
    }
    hours = 7 * 24
    cur.execute(WIKIS_SQL)
    params = {
        "rate": rate,
        "first_hour": hour_end - timedelta(hours=hours),
        "rc_first": now - timedelta(hours=settings.stream.recent_changes_hours),
        "rc_rows": rc_rows,
    }
    for name, (rows, top, minutes) in per_minute.items():
        template = TABLE_SQL[name]
        minute_sql = MINUTES_SQL.format(n=minutes - 1)
        cur.execute(
            template.format(t=f"{schema}.{name}", time=minute_sql, rows=rows, top=top, scale=60),
            {**params, "first": minute_end - timedelta(minutes=minutes - 1)},
        )
        hour = name.replace("_minute", "_hour")
        if name in ("page_minute", "user_minute"):
            hour_rows = min(rows * 4, cfg.top_k_per_hour)
        else:
            hour_rows = rows if name == "namespace_minute" else rows * 3
        cur.execute(
            template.format(
                t=f"{schema}.{hour}",
                time=HOURS_SQL.format(n=hours - 1),
                rows=1 if name == "traffic_minute" else hour_rows,
                top=top * 60,
                scale=3600,
            ),
            params,
        )
    cur.execute(TABLE_SQL["recent_changes"].format(t=f"{schema}.recent_changes"), params)
    cur.execute(
        f"INSERT INTO {schema}.hour_cutoffs SELECT %(first_hour)s + h * interval '1 hour', 2, 3 "
        f"FROM generate_series(0, {hours - 1}) AS h",
        params,
    )
    marks = {
        ROLLED_UNTIL: hour_end,
        kept_from_key("page_minute"): minute_end - timedelta(days=cfg.entity_minute_days),
        kept_from_key("user_minute"): minute_end - timedelta(days=cfg.entity_minute_days),
        kept_from_key("recent_changes"): params["rc_first"],
    }
    for key, at in marks.items():
        cur.execute(f"INSERT INTO {schema}.serving_state VALUES (%s, %s)", (key, at))
    cur.execute(
        f"INSERT INTO {schema}.pipeline_progress (query_name, batch_id, committed_at, rows_read, "
        "rows_written, rows_late, duplicates_dropped, watermark, max_event_time, processing_ms, "
        "input_rows_per_s, processed_rows_per_s) SELECT %s, b, %s - (1000 - b) * interval "
        "'1 second', 50, 400, 0, 0, %s - interval '2 minutes', %s, 300, 50, 900 "
        "FROM generate_series(0, 999) AS b",
        (settings.stream.query_name, now, now, now),
    )
    counts = {}
    for name in [*TABLE_SQL, *(n.replace("_minute", "_hour") for n in per_minute)]:
        cur.execute(f"SELECT count(*) FROM {schema}.{name}")
        counts[name] = cur.fetchone()[0]
    return counts


def _in_time_order(cur: Any, schema: str) -> None:
    """Rewrite each table with a time-leading index in that index's order.

    The stream appends every micro-batch's rows, so a table's rows of one minute share a few
    pages; the synthetic ``INSERT``s (and the triggers they fire) write rows in whatever order
    their joins and aggregates produce, which would make every read of a window touch one page
    per row.
    """
    cur.execute(
        "SELECT DISTINCT ON (t.relname) t.relname, i.relname FROM pg_index AS x "
        "JOIN pg_class AS t ON t.oid = x.indrelid JOIN pg_class AS i ON i.oid = x.indexrelid "
        "JOIN pg_attribute AS a ON a.attrelid = t.oid AND a.attnum = x.indkey[0] "
        "WHERE t.relnamespace = %s::regnamespace AND a.attname IN ('window_start', 'event_time') "
        "ORDER BY t.relname, x.indisprimary DESC, i.relname",
        (schema,),
    )
    for table, index in cur.fetchall():
        cur.execute(
            sql.SQL("CLUSTER {} USING {}").format(
                sql.Identifier(schema, table), sql.Identifier(index)
            )
        )


def _time(call: Callable[[], pd.DataFrame], repeats: int) -> tuple[float, float] | str:
    """(p50, p95) in ms over ``repeats`` calls after two warm-ups, or why it could not run."""
    try:
        call()
        started = time.perf_counter()
        call()
        if (time.perf_counter() - started) * 1000 > _SLOW_MS:
            repeats = min(repeats, 5)
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1000)
    except query.QueryError as exc:
        return f"n/a: {str(exc)[:80]}"
    series = pd.Series(samples)
    return float(series.quantile(0.5)), float(series.quantile(0.95))


def _calls(reader: query.Reader, end: datetime) -> dict[str, Callable[..., pd.DataFrame]]:
    """Every query function as ``call(lookback, filters)``, its lookback ending at ``end``."""
    calls: dict[str, Callable[..., pd.DataFrame]] = {}
    for name, fn in query.QUERIES.items():
        if name == "pipeline_health":
            continue
        if name == "watchlist":
            calls[name] = lambda lb, f, fn=fn: fn(reader, _WATCH_TERMS, lb, end=end, filters=f)
        else:
            calls[name] = lambda lb, f, fn=fn: fn(reader, lb, end=end, filters=f)
    return calls


def query_latency(
    settings: Settings, *, rate: float = 50.0, repeats: int = 20, keep: bool = False
) -> dict[str, Any]:
    """Load a synthetic week into a fresh schema and time every query function in it."""
    schema = f"bench_query_{uuid.uuid4().hex[:8]}"
    db.migrate(settings.postgres, schema)
    now = datetime.now(UTC)
    figures: dict[str, Any] = {"rate_events_per_s": rate, "repeats": repeats}
    try:
        started = time.perf_counter()
        conn = db.connect(settings.postgres, "admin")
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SET LOCAL synchronous_commit = off")
                counts = _fill(cur, schema, settings, now, rate)
                _in_time_order(cur, schema)
                # and what the serving triggers filled: autovacuum would analyze them later
                cur.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY 1",
                    (schema,),
                )
                tables = [row[0] for row in cur.fetchall()]
            db.vacuum_analyze(conn, schema, tables)
        finally:
            conn.close()
        figures["load_s"] = round(time.perf_counter() - started, 1)
        figures.update({f"rows {name}": count for name, count in counts.items()})
        with query.connect(settings, schema=schema) as reader:
            health = _time(lambda: query.pipeline_health(reader), repeats)
            figures["pipeline_health"] = _format(health)
            for name, call in _calls(reader, now).items():
                for lookback in LOOKBACKS:
                    result = _time(lambda c=call, lb=lookback: c(lb, None), repeats)
                    figures[f"{name} {lookback}"] = _format(result)
                for label, filters in _FILTERS.items():
                    for lookback in _FILTERED_LOOKBACKS:
                        result = _time(lambda c=call, lb=lookback, f=filters: c(lb, f), repeats)
                        figures[f"{name} {lookback} [{label}]"] = _format(result)
    finally:
        if not keep:
            conn = db.connect(settings.postgres, "admin")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.close()
    return figures


def _format(result: tuple[float, float] | str) -> str:
    if isinstance(result, str):
        return result
    p50, p95 = result
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms" + ("" if p95 < 50 else "  (over 50 ms)")
