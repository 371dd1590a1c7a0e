"""Roll-ups, retention and lake compaction: what ``wikipulse maintain`` runs on a schedule.

Run it every few minutes (cron, a Kubernetes CronJob); each step is idempotent.

1. **Roll-up.** Every hour the speed layer can no longer change (its newest event time minus
   the watermark delay lies past the hour's end) is summed from the ``*_minute`` tables into
   the ``*_hour`` tables; recomputing an hour replaces it. ``page_hour`` and ``user_hour`` keep
   the ``retention.top_k_per_hour`` busiest keys and note in ``hour_cutoffs`` how many events
   a left-out key had at most. ``serving_state.hours_rolled_until`` tells the query API which
   hours it may read from the hourly tables.
2. **Retention.** Rows older than configured are deleted: minute tables after
   ``retention.minute_days`` (``entity_minute_days`` for pages and users), but never before
   their hour is rolled up; hourly tables after ``hour_days``; ``recent_changes`` after
   ``stream.recent_changes_hours``; ``pipeline_progress`` after ``progress_days`` (the newest
   row of each query stays, the stream job reads its watermark there). Each horizon is
   recorded as ``serving_state.kept_from.<table>``.
3. **Compaction** of lake hour partitions that closed ``retention.compact_after_minutes`` ago.

Writes run as the writer role, under the same advisory lock the batch layer takes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg2
from psycopg2 import sql

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.errors import SinkError
from wiki_lib.lake import CompactionResult, compact
from wiki_lib.query.plan import ROLLED_UNTIL, kept_from_key
from wiki_lib.query.tables import FAMILIES, PAGE, USER, Family

__all__ = [
    "MaintenanceReport",
    "apply_retention",
    "lock_serving",
    "maintain",
    "rollup",
    "rollup_hours",
]

_HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BIN = "date_bin('1 hour', window_start, TIMESTAMPTZ '1970-01-01 00:00:00+00')"


def _floor_hour(moment: datetime) -> datetime:
    return _EPOCH + ((moment - _EPOCH) // _HOUR) * _HOUR


@dataclass(frozen=True)
class MaintenanceReport:
    """What one ``maintain`` run did."""

    rolled: tuple[datetime, datetime] | None
    deleted: dict[str, int] = field(default_factory=dict)
    compaction: CompactionResult | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain data: the rolled-up span (ISO), rows deleted per table, the compaction."""
        return {
            "rolled": [t.isoformat() for t in self.rolled] if self.rolled else None,
            "deleted": dict(self.deleted),
            "compaction": asdict(self.compaction) if self.compaction else None,
        }


def lock_serving(cur: Any, schema: str) -> None:
    """Serialise the writers that replace serving rows (roll-up, retention, batch) per schema."""
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{schema}/serving-writers",))


def _table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


def _idents(names: tuple[str, ...] | list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _rollup_plain(schema: str, family: Family) -> sql.Composable:
    host = (
        sql.SQL(
            ", max(server_name), "
            "(array_agg(project ORDER BY server_name DESC NULLS LAST))[1], "
            "(array_agg(language ORDER BY server_name DESC NULLS LAST))[1]"
        )
        if family.host
        else sql.SQL("")
    )
    sums = sql.SQL(", ").join(sql.SQL("sum({})").format(sql.Identifier(c)) for c in family.counters)
    group = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(k)) for k in family.keys)
    keys = sql.SQL("").join(sql.SQL(", {}").format(sql.Identifier(k)) for k in family.keys)
    return sql.SQL(
        "INSERT INTO {hour} ({cols}) SELECT {bin}{keys}{host}, {sums} FROM {minute} "
        "WHERE window_start >= %(start)s AND window_start < %(stop)s GROUP BY 1{group}"
    ).format(
        hour=_table(schema, family.hour),
        cols=_idents(family.columns),
        bin=sql.SQL(_BIN),
        keys=keys,
        host=host,
        sums=sums,
        minute=_table(schema, family.minute),
        group=group,
    )


def _rollup_top(schema: str, family: Family) -> sql.Composable:
    cutoff = sql.Identifier("page_cutoff" if family is PAGE else "user_cutoff")
    keys = _idents(family.keys)
    sums = sql.SQL(", ").join(
        sql.SQL("sum({c}) AS {c}").format(c=sql.Identifier(c)) for c in family.counters
    )
    return sql.SQL(
        "WITH g AS (SELECT {bin} AS window_start, {keys}, {sums} FROM {minute} "
        "WHERE window_start >= %(start)s AND window_start < %(stop)s GROUP BY 1, {keys}), "
        "r AS (SELECT g.*, row_number() OVER (PARTITION BY window_start "
        "ORDER BY events DESC, {keys}) AS rank FROM g), "
        "kept AS (INSERT INTO {hour} ({cols}) SELECT {cols} FROM r WHERE rank <= %(k)s) "
        "INSERT INTO {cutoffs} (window_start, {cutoff}) "
        "SELECT window_start, max(events) FILTER (WHERE rank = %(k)s) FROM r "
        "GROUP BY window_start HAVING max(rank) > %(k)s "
        "ON CONFLICT (window_start) DO UPDATE SET {cutoff} = EXCLUDED.{cutoff}"
    ).format(
        bin=sql.SQL(_BIN),
        keys=keys,
        sums=sums,
        minute=_table(schema, family.minute),
        hour=_table(schema, family.hour),
        cols=_idents(family.columns),
        cutoffs=_table(schema, "hour_cutoffs"),
        cutoff=cutoff,
    )


def rollup_hours(cur: Any, schema: str, start: datetime, stop: datetime, top_k: int) -> None:
    """Recompute the hourly tables for the hours in ``[start, stop)`` from the minute tables.

    Runs in the caller's transaction (the batch layer's, or :func:`rollup`'s).
    """
    params = {"start": start, "stop": stop, "k": top_k}
    for table in [*(f.hour for f in FAMILIES.values()), "hour_cutoffs"]:
        cur.execute(
            sql.SQL(
                "DELETE FROM {} WHERE window_start >= %(start)s AND window_start < %(stop)s"
            ).format(_table(schema, table)),
            params,
        )
    for family in FAMILIES.values():
        statement = (
            _rollup_top(schema, family) if family.truncated else _rollup_plain(schema, family)
        )
        cur.execute(statement, params)


def _set_mark(cur: Any, schema: str, key: str, at: datetime) -> None:
    cur.execute(
        sql.SQL(
            "INSERT INTO {} AS s (key, at) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET at = GREATEST(s.at, EXCLUDED.at)"
        ).format(_table(schema, "serving_state")),
        (key, at),
    )


def _mark(cur: Any, schema: str, key: str) -> datetime | None:
    cur.execute(
        sql.SQL("SELECT at FROM {} WHERE key = %s").format(_table(schema, "serving_state")), (key,)
    )
    row = cur.fetchone()
    return row[0] if row else None


def rollup(
    settings: Settings, *, until: datetime | None = None, schema: str | None = None
) -> tuple[datetime, datetime] | None:
    """Roll up every hour not rolled yet that ended before ``until``; returns the hours done.

    ``until`` defaults to the speed layer's progress: the newest event time it has seen
    (``pipeline_progress`` of ``stream.query_name``) minus the watermark delay, to the hour.
    """
    schema = schema or settings.postgres.schema_name
    try:
        with db.transaction(settings.postgres, "writer") as conn, conn.cursor() as cur:
            lock_serving(cur, schema)
            if until is None:
                cur.execute(
                    sql.SQL(
                        "SELECT max(max_event_time) - %s::interval FROM {} WHERE query_name = %s"
                    ).format(_table(schema, "pipeline_progress")),
                    (settings.stream.watermark, settings.stream.query_name),
                )
                until = cur.fetchone()[0]
                if until is None:
                    return None
            stop = _floor_hour(until)
            start = _mark(cur, schema, ROLLED_UNTIL)
            if start is None:
                cur.execute(
                    sql.SQL("SELECT min(m) FROM ({}) AS mins").format(
                        sql.SQL(" UNION ALL ").join(
                            sql.SQL("SELECT min(window_start) AS m FROM {}").format(
                                _table(schema, f.minute)
                            )
                            for f in FAMILIES.values()
                        )
                    )
                )
                earliest = cur.fetchone()[0]
                start = _floor_hour(earliest) if earliest is not None else stop
            if start >= stop:
                return None
            rollup_hours(cur, schema, start, stop, settings.retention.top_k_per_hour)
            _set_mark(cur, schema, ROLLED_UNTIL, stop)
    except psycopg2.Error as exc:
        raise SinkError(f"rolling up hours in {schema}: {exc}") from exc
    return start, stop


def apply_retention(
    settings: Settings, *, now: datetime | None = None, schema: str | None = None
) -> dict[str, int]:
    """Delete what is older than the retention settings; returns rows deleted per table.

    Minute rows of hours not rolled up yet are kept whatever their age.
    """
    schema = schema or settings.postgres.schema_name
    moment = now or datetime.now(UTC)
    hour = _floor_hour(moment)
    cfg = settings.retention
    deleted: dict[str, int] = {}
    try:
        with db.transaction(settings.postgres, "writer") as conn, conn.cursor() as cur:
            lock_serving(cur, schema)
            rolled = _mark(cur, schema, ROLLED_UNTIL)
            horizons: dict[str, tuple[str, datetime]] = {}
            if rolled is None:  # nothing rolled up yet: every minute row is still needed
                deleted.update((f.minute, 0) for f in FAMILIES.values())
            else:
                for family in FAMILIES.values():
                    days = cfg.entity_minute_days if family in (PAGE, USER) else cfg.minute_days
                    horizon = min(hour - timedelta(days=days), rolled)
                    horizons[family.minute] = ("window_start", horizon)
            for name in [*(f.hour for f in FAMILIES.values()), "hour_cutoffs"]:
                horizons[name] = ("window_start", hour - timedelta(days=cfg.hour_days))
            horizons["recent_changes"] = (
                "event_time",
                moment - timedelta(hours=settings.stream.recent_changes_hours),
            )
            for name, (column, horizon) in horizons.items():
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE {} < %s").format(
                        _table(schema, name), sql.Identifier(column)
                    ),
                    (horizon,),
                )
                deleted[name] = cur.rowcount
                _set_mark(cur, schema, kept_from_key(name), horizon)
            deleted["user_last_seen"] = 0
            if USER.minute in horizons:  # a mark before every kept user row counts no one
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE last_any < %s").format(
                        _table(schema, "user_last_seen")
                    ),
                    (horizons[USER.minute][1],),
                )
                deleted["user_last_seen"] = cur.rowcount
            progress = _table(schema, "pipeline_progress")
            cur.execute(
                sql.SQL(
                    "DELETE FROM {} AS p WHERE committed_at < %s AND batch_id < "
                    "(SELECT max(batch_id) FROM {} AS q WHERE q.query_name = p.query_name)"
                ).format(progress, progress),
                (moment - timedelta(days=cfg.progress_days),),
            )
            deleted["pipeline_progress"] = cur.rowcount
    except psycopg2.Error as exc:
        raise SinkError(f"applying retention in {schema}: {exc}") from exc
    return deleted


def maintain(
    settings: Settings, *, now: datetime | None = None, lake: bool = True
) -> MaintenanceReport:
    """Roll up, apply retention, compact the lake (unless ``lake`` is false), in that order."""
    moment = now or datetime.now(UTC)
    rolled = rollup(settings)
    deleted = apply_retention(settings, now=moment)
    compaction = None
    if lake:
        cfg = settings.retention
        compaction = compact(
            settings,
            before=moment - timedelta(minutes=cfg.compact_after_minutes),
            min_files=cfg.compact_min_files,
        )
    return MaintenanceReport(rolled, deleted, compaction)
