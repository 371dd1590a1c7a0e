"""The batch layer: recompute a closed day from the lake and make its numbers final.

The speed layer drops events that arrive after its watermark; the lake keeps them
(``is_late``). Recomputing a day reads that day's committed lake files, deduplicates, runs
the very metric functions the stream job runs (:data:`wiki_lib.stream.metrics.TABLES` and
:data:`wiki_lib.stream.extra_metrics.EXTRA_TABLES`), and in one PostgreSQL transaction, as
the writer role:

1. stages the batch rows next to the speed rows and reconciles them (rows only one side has,
   rows that differ, column totals), per table;
2. replaces the day's rows of every table (``recent_changes`` only within its retention) and
   recomputes the day's hourly roll-ups from the new minute rows;
3. records the run in ``batch_runs``.

Then it writes the day's tables to the lake (``daily/<table>/event_date=D/``) and returns a
:class:`BatchReport`. Running it twice gives the same rows and an empty second report.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg2
import pyarrow as pa
from psycopg2 import sql

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.errors import SinkError, TerminalError
from wiki_lib.lake import readable_files, write_daily
from wiki_lib.maintenance import lock_serving, rollup_hours
from wiki_lib.query.tables import FAMILIES
from wiki_lib.sinks.postgres import copy_arrow
from wiki_lib.stream.extra_metrics import EXTRA_TABLES
from wiki_lib.stream.job import parse_delay
from wiki_lib.stream.metrics import TABLES, MetricTable, deduplicate_static

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["BatchError", "BatchReport", "TableReconciliation", "recompute_day"]

_RECENT = "recent_changes"
_EXAMPLES = 5
_COUNTERS: dict[str, tuple[str, ...]] = {
    **{f.minute: f.counters for f in FAMILIES.values()},
    _RECENT: ("length_delta",),
}
"""The numeric columns whose totals a reconciliation compares, per table."""


class BatchError(TerminalError):
    """A day cannot be recomputed as asked (still open, or the lake lacks it)."""


@dataclass(frozen=True)
class TableReconciliation:
    """How the speed layer's rows of one table and day compare with the batch's."""

    table: str
    speed_rows: int
    batch_rows: int
    only_speed: int
    """Rows the batch removed (keys it does not have)."""
    only_batch: int
    """Rows the batch added (e.g. minutes made only of late events)."""
    changed: int
    """Rows with the same key and different values."""
    totals: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(speed, batch) sums of each numeric column that differs."""
    examples: tuple[str, ...] = ()
    """A few keys of removed, added and changed rows."""

    @property
    def differs(self) -> bool:
        """Whether the batch changed anything in this table."""
        return bool(self.only_speed or self.only_batch or self.changed)


@dataclass(frozen=True)
class BatchReport:
    """What recomputing one day found and replaced."""

    day: date
    lake_events: int
    late_events: int
    duplicates_removed: int
    tables: dict[str, TableReconciliation]

    @property
    def differences(self) -> dict[str, TableReconciliation]:
        """The tables whose rows the batch changed."""
        return {name: t for name, t in self.tables.items() if t.differs}

    def to_json(self) -> dict[str, Any]:
        """Plain data (for ``batch_runs.report`` and ``--json``)."""
        data = asdict(self)
        data["day"] = self.day.isoformat()
        return data

    def table_frame(self) -> pd.DataFrame:
        """One row per table: speed rows, batch rows, and rows removed, added, changed."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "table": t.table,
                    "speed_rows": t.speed_rows,
                    "batch_rows": t.batch_rows,
                    "removed": t.only_speed,
                    "added": t.only_batch,
                    "changed": t.changed,
                }
                for t in self.tables.values()
            ]
        )

    def summary(self) -> str:
        """A few human lines: the day, the late events, each table that changed."""
        lines = [
            f"{self.day}: {self.lake_events} lake events, {self.late_events} late, "
            f"{self.duplicates_removed} duplicates removed"
        ]
        if not self.differences:
            lines.append("  speed and batch agree on every table")
        for name, t in self.differences.items():
            totals = ", ".join(f"{c} {s} -> {b}" for c, (s, b) in t.totals.items())
            lines.append(
                f"  {name}: {t.speed_rows} -> {t.batch_rows} rows; removed {t.only_speed}, "
                f"added {t.only_batch}, changed {t.changed}" + (f"; {totals}" if totals else "")
            )
        return "\n".join(lines)


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start, start + timedelta(days=1)


def recompute_day(
    settings: Settings,
    spark: SparkSession,
    day: date,
    *,
    now: datetime | None = None,
    allow_open: bool = False,
    allow_empty: bool = False,
    schema: str | None = None,
) -> BatchReport:
    """Recompute every serving table for ``day`` (UTC) from the lake and replace its rows.

    Refuses a day the speed layer may still change (it ends less than the watermark delay
    before ``now``) unless ``allow_open``, and a day the lake has no events for while
    PostgreSQL has some unless ``allow_empty`` (a missing lake must not wipe a day).
    """
    schema = schema or settings.postgres.schema_name
    moment = now or datetime.now(UTC)
    start, stop = _day_bounds(day)
    if not allow_open and stop + parse_delay(settings.stream.watermark) > moment:
        raise BatchError(f"{day} is not closed yet (the watermark passes its end later)")
    horizon = moment - timedelta(hours=settings.stream.recent_changes_hours)
    files = readable_files(settings, start=start, end=stop)
    metrics = {**TABLES, **EXTRA_TABLES}
    if files:
        computed, counts = _compute(spark, [str(f) for f in files], start, stop, horizon, metrics)
    else:
        computed, counts = {}, (0, 0, 0)
    report = _replace(
        settings, schema, day, computed, metrics, counts, horizon, allow_empty=allow_empty
    )
    for name, table in computed.items():
        if name != _RECENT:
            write_daily(settings, name, day, table)
    return report


def _compute(
    spark: SparkSession,
    paths: list[str],
    start: datetime,
    stop: datetime,
    horizon: datetime,
    metrics: dict[str, MetricTable],
) -> tuple[dict[str, pa.Table], tuple[int, int, int]]:
    """The day's tables as Arrow, and (lake events, late events, duplicates removed)."""
    from pyspark.sql import functions as F

    raw = spark.read.parquet(*paths).where(
        (F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(stop))
    )
    events = deduplicate_static(raw).persist()
    try:
        stats = raw.agg(F.count(F.lit(1)).alias("rows"), F.count_if("is_late").alias("late"))
        jobs: dict[str, DataFrame] = {}
        for name, table in metrics.items():
            source = (
                events.where(F.col("event_time") >= F.lit(horizon)) if name == _RECENT else events
            )
            jobs[name] = table.compute(source)
        with ThreadPoolExecutor(max_workers=len(jobs) + 2) as pool:
            futures = {name: pool.submit(frame.toArrow) for name, frame in jobs.items()}
            summary = pool.submit(stats.first)
            kept = pool.submit(events.count)
            tables = {name: future.result() for name, future in futures.items()}
            row = summary.result()
            unique = kept.result()
    finally:
        events.unpersist()
    assert row is not None
    return tables, (int(row["rows"]), int(row["late"]), int(row["rows"]) - unique)


def _range(
    name: str, start: datetime, stop: datetime, horizon: datetime
) -> tuple[sql.Composable, tuple[datetime, datetime]]:
    if name == _RECENT:
        return sql.SQL("event_time >= %s AND event_time < %s"), (max(start, horizon), stop)
    return sql.SQL("window_start >= %s AND window_start < %s"), (start, stop)


def _replace(
    settings: Settings,
    schema: str,
    day: date,
    computed: dict[str, pa.Table],
    metrics: dict[str, MetricTable],
    counts: tuple[int, int, int],
    horizon: datetime,
    *,
    allow_empty: bool,
) -> BatchReport:
    start, stop = _day_bounds(day)
    tables: dict[str, TableReconciliation] = {}
    try:
        with db.transaction(settings.postgres, "writer") as conn, conn.cursor() as cur:
            lock_serving(cur, schema)
            for name, metric in metrics.items():
                where, bounds = _range(name, start, stop, horizon)
                tables[name] = _reconcile(
                    cur, schema, name, metric.keys, computed.get(name), where, bounds
                )
            if not computed and not allow_empty and any(t.speed_rows for t in tables.values()):
                raise BatchError(
                    f"the lake has no events for {day} but the serving tables do; "
                    "recompute with allow_empty to clear them"
                )
            for name in metrics:
                where, bounds = _range(name, start, stop, horizon)
                target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
                cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(target, where), bounds)
                cur.execute(
                    sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                        target, sql.Identifier(f"batch_{name}")
                    )
                )
            rollup_hours(cur, schema, start, stop, settings.retention.top_k_per_hour)
            report = BatchReport(day, counts[0], counts[1], counts[2], tables)
            cur.execute(
                sql.SQL(
                    "INSERT INTO {}.batch_runs (event_date, run_at, lake_events, late_events, "
                    "report) VALUES (%s, now(), %s, %s, %s) ON CONFLICT (event_date) DO UPDATE "
                    "SET run_at = now(), lake_events = EXCLUDED.lake_events, "
                    "late_events = EXCLUDED.late_events, report = EXCLUDED.report"
                ).format(sql.Identifier(schema)),
                (day, counts[0], counts[1], json.dumps(report.to_json())),
            )
    except psycopg2.Error as exc:
        raise SinkError(f"replacing {day} in {schema}: {exc}") from exc
    return report


def _reconcile(
    cur: Any,
    schema: str,
    name: str,
    keys: tuple[str, ...],
    rows: pa.Table | None,
    where: sql.Composable,
    bounds: tuple[datetime, datetime],
) -> TableReconciliation:
    """Stage the batch rows as ``batch_<name>``, the speed rows as ``speed_<name>``; compare."""
    target = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))
    batch, speed = sql.Identifier(f"batch_{name}"), sql.Identifier(f"speed_{name}")
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
            batch, target
        )
    )
    if rows is not None and rows.num_rows:
        copy_arrow(cur, batch.as_string(cur), rows)
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT * FROM {} WHERE {}").format(
            speed, target, where
        ),
        bounds,
    )
    counters = _COUNTERS.get(name, ())
    key_list = sql.SQL(", ").join(sql.Identifier(k) for k in keys)
    cur.execute(
        sql.SQL(
            "WITH a AS (SELECT * FROM {s} EXCEPT ALL SELECT * FROM {b}), "
            "z AS (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {s}), "
            "ka AS (SELECT {k} FROM a), kz AS (SELECT {k} FROM z), "
            "both_sides AS (SELECT * FROM ka INTERSECT SELECT * FROM kz), "
            "removed AS (SELECT * FROM ka EXCEPT SELECT * FROM kz), "
            "added AS (SELECT * FROM kz EXCEPT SELECT * FROM ka) "
            "SELECT (SELECT count(*) FROM {s}), (SELECT count(*) FROM {b}), "
            "(SELECT count(*) FROM removed), (SELECT count(*) FROM added), "
            "(SELECT count(*) FROM both_sides), "
            "ARRAY(SELECT 'removed ' || ROW(removed.*)::text FROM removed LIMIT %(n)s) || "
            "ARRAY(SELECT 'added ' || ROW(added.*)::text FROM added LIMIT %(n)s) || "
            "ARRAY(SELECT 'changed ' || ROW(both_sides.*)::text FROM both_sides LIMIT %(n)s)"
        ).format(s=speed, b=batch, k=key_list),
        {"n": _EXAMPLES},
    )
    speed_rows, batch_rows, removed, added, changed, examples = cur.fetchone()
    totals: dict[str, tuple[int, int]] = {}
    if counters:
        sums = sql.SQL(", ").join(
            sql.SQL("coalesce(sum({}), 0)::bigint").format(sql.Identifier(c)) for c in counters
        )
        cur.execute(sql.SQL("SELECT {} FROM {}").format(sums, speed))
        speed_sums = cur.fetchone()
        cur.execute(sql.SQL("SELECT {} FROM {}").format(sums, batch))
        batch_sums = cur.fetchone()
        totals = {
            c: (int(s), int(b))
            for c, s, b in zip(counters, speed_sums, batch_sums, strict=True)
            if s != b
        }
    return TableReconciliation(
        name, speed_rows, batch_rows, removed, added, changed, totals, tuple(examples)
    )
