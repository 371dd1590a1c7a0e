"""PostgreSQL sink: one transaction per micro-batch, COPY into staging, then upsert.

Aggregate tables are merged additively (``events = t.events + EXCLUDED.events``): each
deduplicated event reaches exactly one micro-batch, so adding partial counts is exact. What
makes it safe against Spark replaying a batch is the ``pipeline_progress`` row, written in
the same transaction: a batch whose row exists is skipped, so a replay changes nothing.
Row tables (keyed by ``event_id``) are upserted by replacement.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg2 import sql

from wiki_lib import db
from wiki_lib.config import PostgresSettings
from wiki_lib.errors import SinkError
from wiki_lib.sinks.base import Batch, Sink

__all__ = ["PostgresSink", "copy_arrow"]

log = logging.getLogger(__name__)

_ROW_KEY = ("event_id",)
_KEYS: dict[str, tuple[str, ...]] = {
    "traffic_minute": ("window_start",),
    "wiki_minute": ("window_start", "wiki"),
    "namespace_minute": ("window_start", "namespace"),
    "page_minute": ("window_start", "wiki", "title"),
    "user_minute": ("window_start", "user"),
    "recent_changes": _ROW_KEY,
    "activity_minute": ("window_start", "wiki", "namespace", "type", "is_bot", "is_minor"),
    "quarantine": ("topic", "source_partition", "source_offset"),
}


def _clean(table: pa.Table) -> pa.Table:
    """PostgreSQL text cannot hold NUL characters; drop them from string columns."""
    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            col = pc.replace_substring(table.column(i), "\x00", "")
            table = table.set_column(i, field, col)
    return table


def copy_arrow(cur: Any, target: str, table: pa.Table) -> None:
    """COPY an Arrow table into ``target`` (already quoted SQL) as CSV, columns by name."""
    buf = io.BytesIO()
    pacsv.write_csv(
        _clean(table), buf, pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    )
    buf.seek(0)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in table.column_names)
    cur.copy_expert(
        sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)")
        .format(sql.SQL(target), cols)
        .as_string(cur),
        buf,
    )


class PostgresSink(Sink):
    """Writes every contract table and ``pipeline_progress`` as the writer role."""

    name = "postgres"

    def __init__(self, pg: PostgresSettings, schema: str | None = None) -> None:
        self.pg = pg
        self.schema = schema or pg.schema_name
        self._conn: Any = None

    def setup(self) -> None:
        """Open the writer connection."""
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.pg, "writer")

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    def committed(self, query_name: str, batch_id: int) -> bool:
        """Whether ``pipeline_progress`` has this batch."""
        try:
            with self._conn_tx() as cur:
                cur.execute(
                    sql.SQL("SELECT 1 FROM {} WHERE query_name = %s AND batch_id = %s").format(
                        self._table("pipeline_progress")
                    ),
                    (query_name, batch_id),
                )
                return cur.fetchone() is not None
        except psycopg2.Error as exc:
            raise SinkError(f"reading pipeline_progress in {self.schema}: {exc}") from exc

    def last_progress(self, query_name: str) -> dict[str, Any] | None:
        """The newest committed batch of ``query_name``: watermark, newest event time, size."""
        with self._conn_tx() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT batch_id, watermark, max_event_time, rows_read FROM {} "
                    "WHERE query_name = %s ORDER BY batch_id DESC LIMIT 1"
                ).format(self._table("pipeline_progress")),
                (query_name,),
            )
            row = cur.fetchone()
        if row is None:
            return None
        return {
            "batch_id": row[0],
            "watermark": row[1],
            "max_event_time": row[2],
            "rows_read": row[3],
        }

    @contextmanager
    def _conn_tx(self) -> Iterator[Any]:
        """A cursor in a transaction that commits on success and rolls back on error."""
        self.setup()
        conn = self._conn
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException:
            conn.rollback()
            raise

    def _merge(self, cur: Any, name: str, table: pa.Table) -> int:
        if table.num_rows == 0:
            return 0
        keys = _KEYS.get(name)
        if keys is None:
            raise SinkError(f"no upsert key known for table {name!r}")
        stage = sql.Identifier(f"stage_{name}")
        cur.execute(
            sql.SQL(
                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) "
                "ON COMMIT DELETE ROWS"
            ).format(stage, self._table(name))
        )
        copy_arrow(cur, stage.as_string(cur), table)
        cols = table.column_names
        values = [c for c in cols if c not in keys]
        additive = keys != _ROW_KEY and name != "quarantine"
        updates = []
        for col in values:
            ident = sql.Identifier(col)
            is_count = pa.types.is_integer(table.schema.field(col).type)
            if additive and is_count:
                updates.append(sql.SQL("{} = t.{} + EXCLUDED.{}").format(ident, ident, ident))
            else:
                updates.append(sql.SQL("{} = EXCLUDED.{}").format(ident, ident))
        col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        statement = sql.SQL(
            "INSERT INTO {} AS t ({}) SELECT {} FROM {} ON CONFLICT ({}) DO "
        ).format(
            self._table(name),
            col_list,
            col_list,
            stage,
            sql.SQL(", ").join(sql.Identifier(k) for k in keys),
        )
        statement += (
            sql.SQL("UPDATE SET ") + sql.SQL(", ").join(updates) if updates else sql.SQL("NOTHING")
        )
        cur.execute(statement)
        return int(table.num_rows)

    def write(self, batch: Batch, before_commit: Callable[[], object] | None = None) -> int:
        """All tables, the quarantine and the progress row of ``batch`` in one transaction.

        ``before_commit`` runs inside the transaction once every row is written, before the
        progress row: if it raises, the batch is rolled back. The stream job waits there for
        the lake, which it writes meanwhile, so that a batch committed here is in the lake too.
        """
        t0 = time.monotonic()
        try:
            with self._conn_tx() as cur:
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"{self.schema}/{batch.query_name}",),
                )
                cur.execute(
                    sql.SQL("SELECT 1 FROM {} WHERE query_name = %s AND batch_id = %s").format(
                        self._table("pipeline_progress")
                    ),
                    (batch.query_name, batch.batch_id),
                )
                if cur.fetchone() is not None:
                    return 0
                written = 0
                for name, table in batch.tables.items():
                    started = time.monotonic()
                    written += self._merge(cur, name, table)
                    log.debug(
                        "batch %s: %s merged in %.0f ms",
                        batch.batch_id,
                        name,
                        (time.monotonic() - started) * 1000,
                    )
                if batch.quarantine is not None and batch.quarantine.num_rows:
                    self._merge(cur, "quarantine", batch.quarantine)
                if before_commit is not None:
                    before_commit()
                self._record(cur, batch, written, t0)
        except psycopg2.Error as exc:
            raise SinkError(
                f"writing batch {batch.batch_id} of {batch.query_name} to {self.schema}: {exc}"
            ) from exc
        return written

    def _record(self, cur: Any, batch: Batch, written: int, t0: float) -> None:
        stats = batch.stats
        started: datetime | None = batch.started_at
        processing_ms = int((time.monotonic() - t0) * 1000)
        if started is not None:
            processing_ms = int((datetime.now(UTC) - started).total_seconds() * 1000)
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (query_name, batch_id, rows_read, rows_written, rows_late, "
                "duplicates_dropped, rows_invalid, canaries_dropped, watermark, max_event_time, "
                "processing_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(self._table("pipeline_progress")),
            (
                batch.query_name,
                batch.batch_id,
                stats.rows_read,
                written,
                stats.rows_late,
                stats.duplicates_dropped,
                stats.rows_invalid,
                stats.canaries_dropped,
                stats.watermark,
                stats.max_event_time,
                processing_ms,
            ),
        )

    def record_spark_progress(self, query_name: str, progress: Any) -> None:
        """Fill in what only Spark knows about a batch (input rows, duplicates, rates, state).

        Called from the streaming listener after the batch committed; the batch's own
        transaction already wrote the rest of its ``pipeline_progress`` row.
        """
        state_rows = 0
        dropped_dupes = 0
        for op in progress.stateOperators or []:
            state_rows += int(op.numRowsTotal or 0)
            metrics = op.customMetrics or {}
            dropped_dupes += int(metrics.get("numDroppedDuplicateRows", 0) or 0)
        with self._conn_tx() as cur:
            cur.execute(
                sql.SQL(
                    "UPDATE {} SET rows_input = %s, duplicates_dropped = %s, "
                    "input_rows_per_s = %s, processed_rows_per_s = %s, state_rows = %s "
                    "WHERE query_name = %s AND batch_id = %s"
                ).format(self._table("pipeline_progress")),
                (
                    int(progress.numInputRows),
                    dropped_dupes,
                    float(progress.inputRowsPerSecond or 0.0),
                    float(progress.processedRowsPerSecond or 0.0),
                    state_rows,
                    query_name,
                    int(progress.batchId),
                ),
            )
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} (query_name, run_id, batch_id, updated_at, progress) "
                    "VALUES (%s, %s, %s, now(), %s) ON CONFLICT (query_name) DO UPDATE SET "
                    "run_id = EXCLUDED.run_id, batch_id = EXCLUDED.batch_id, "
                    "updated_at = now(), progress = EXCLUDED.progress"
                ).format(self._table("stream_status")),
                (query_name, str(progress.runId), int(progress.batchId), progress.json),
            )
