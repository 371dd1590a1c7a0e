"""The speed layer's wiring: Kafka once, deduplicate, fan out to every sink per micro-batch.

The metric logic lives in :mod:`wiki_lib.stream.metrics`; this module only connects it:

1. read the raw topic with Spark's Kafka connector (one source for the whole job);
2. parse with the explicit schema; deduplicate on ``event_id`` with Spark's state store
   (``dropDuplicatesWithinWatermark`` over the Kafka append time, so no event is ever dropped
   for being late *here*: lateness is decided per batch below, where it can be counted);
3. in ``foreachBatch``: quarantine unparseable rows with their reason, drop canaries, flag
   events older than the event-time watermark (newest event time of the committed batches
   minus the configured delay: what Spark's own watermark would be), write every event to
   the lake and the on-time ones through the metric functions to PostgreSQL. The PostgreSQL
   transaction carries the batch id, so a replayed batch changes nothing.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pyspark.sql.streaming import StreamingQueryListener

from wiki_lib.config import Settings
from wiki_lib.errors import StreamError
from wiki_lib.lake import RAW_SCHEMA
from wiki_lib.sinks.base import Batch, BatchStats, Sink
from wiki_lib.sinks.lake import LakeSink
from wiki_lib.sinks.postgres import PostgresSink
from wiki_lib.stream.arrow_metrics import ARROW_TABLES
from wiki_lib.stream.extra_metrics import EXTRA_TABLES
from wiki_lib.stream.metrics import TABLES, parse_events, with_normalized

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

__all__ = [
    "LAKE_COLUMNS",
    "ProgressListener",
    "StreamJob",
    "parse_delay",
    "records_in_batch",
    "stop_query",
]

log = logging.getLogger(__name__)

LAKE_COLUMNS = tuple(RAW_SCHEMA.names)
"""The columns of the raw lake, in order (its types: :data:`wiki_lib.lake.RAW_SCHEMA`)."""
_DELAY = re.compile(r"^\s*(\d+)\s*(second|minute|hour|day)s?\s*$")


def parse_delay(text: str) -> timedelta:
    """``"2 minutes"`` -> ``timedelta(minutes=2)`` (the subset of Spark's syntax we accept)."""
    match = _DELAY.match(text)
    if not match:
        raise StreamError(f"watermark {text!r} is not like '2 minutes' or '30 seconds'")
    return timedelta(**{f"{match.group(2)}s": int(match.group(1))})


@dataclass
class StreamJob:
    """One streaming query from the raw topic into PostgreSQL and the lake."""

    settings: Settings
    spark: SparkSession
    topic: str | None = None
    schema: str | None = None
    query_name: str | None = None
    lake: bool = True
    crash_after_commit: int | None = None
    _pg: PostgresSink = field(init=False, repr=False)
    _sinks: list[Sink] = field(init=False, repr=False)
    _listener: ProgressListener | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        cfg = self.settings.stream
        self.topic = self.topic or self.settings.kafka.topic_raw
        self.query_name = self.query_name or cfg.query_name
        self.delay = parse_delay(cfg.watermark)
        self._pg = PostgresSink(self.settings.postgres, self.schema)
        self._sinks = [LakeSink(self.settings.lake_path)] if self.lake else []

    @property
    def checkpoint(self) -> str:
        """Where Spark keeps offsets, commits and the deduplication state of this query."""
        return str(self.settings.checkpoint_dir / str(self.query_name))

    def source(self) -> DataFrame:
        """The raw topic as a streaming DataFrame with the record's offsets and append time.

        ``value`` is the only copy of the record's bytes the job carries: it becomes
        ``raw_json`` by a cast that keeps the bytes as they are (invalid UTF-8 included), so
        the quarantine recovers the original bytes from it. A second copy would double the
        largest column in the deduplication shuffle and in the batch's cache.
        """
        from pyspark.sql import functions as F

        cfg = self.settings.stream
        reader = (
            self.spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", self.settings.kafka.bootstrap)
            .option("subscribe", self.topic)
            .option("startingOffsets", cfg.starting_offsets)
        )
        if cfg.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", str(cfg.max_offsets_per_trigger))
        return reader.load().select(
            F.col("value"),
            F.col("topic"),
            F.col("partition").alias("source_partition"),
            F.col("offset").alias("source_offset"),
            F.col("timestamp").alias("kafka_timestamp"),
        )

    def deduplicated(self, raw: DataFrame) -> DataFrame:
        """Parsed records, one per event id within the deduplication horizon.

        Only usable events are deduplicated by their id. A row the quarantine will take is
        keyed by its own Kafka position: its id is not to be trusted (it may be empty, or
        come from invalid JSON that repeats a key), and sharing one with another row would
        drop that row unseen.
        """
        from pyspark.sql import functions as F

        parsed = parse_events(raw)
        key = F.when(F.col("parse_error").isNull(), F.col("event.meta.id")).otherwise(
            F.concat_ws(":", F.lit("offset"), "topic", "source_partition", "source_offset")
        )
        return (
            parsed.withColumn("dedup_key", key)
            .withWatermark("kafka_timestamp", self.settings.stream.watermark)
            .dropDuplicatesWithinWatermark(["dedup_key"])
        )

    def start(self) -> StreamingQuery:
        """Start the query with the configured trigger; returns the running query."""
        for sink in [*self._sinks, self._pg]:
            sink.setup()
        trigger = self.settings.stream.trigger
        writer = (
            with_normalized(self.deduplicated(self.source()))
            .writeStream.queryName(str(self.query_name))
            .option("checkpointLocation", self.checkpoint)
            .foreachBatch(self.process_batch)
        )
        if trigger.replace(" ", "").lower() == "availablenow":
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=trigger)
        self._listener = ProgressListener(
            PostgresSink(self.settings.postgres, self.schema), str(self.query_name)
        )
        self.spark.streams.addListener(self._listener)
        return writer.start()

    def stop(self, query: StreamingQuery, *, drain_s: float = 30.0) -> None:
        """Stop the query as :func:`stop_query` does, detach the listener, close the sinks."""
        stop_query(query, drain_s=drain_s)
        if self._listener is not None:
            self._listener.await_end(str(query.runId), timeout_s=10.0)
            self.spark.streams.removeListener(self._listener)
            self._listener.close()
        for sink in [*self._sinks, self._pg]:
            sink.close()

    def process_batch(self, df: DataFrame, batch_id: int) -> None:
        """Write one micro-batch to every sink; skip a batch that already landed.

        A small batch (at most ``stream.driver_max_rows`` Kafka records, as live batches are;
        :func:`records_in_batch`) is collected whole by :func:`_collect_at_most`; a larger
        one is cached and computed by :func:`_spark_batch`. Where the offset log cannot tell,
        the batch before decides, and a batch that turns out larger goes to Spark after all.
        """
        started = datetime.now(UTC)
        query = str(self.query_name)
        if self._pg.committed(query, batch_id):
            log.info("batch %s of %s already committed; replay skipped", batch_id, query)
            # Still run the batch through a no-op sink: Spark commits the deduplication
            # state of every partition only when the batch's plan was fully executed.
            df.write.format("noop").mode("overwrite").save()
            return
        previous = self._pg.last_progress(query)
        prev_max = previous["max_event_time"] if previous else None
        watermark = prev_max - self.delay if prev_max else None
        cap = self.settings.stream.driver_max_rows
        records = records_in_batch(Path(self.checkpoint), batch_id)
        if records is None:
            records = previous["rows_read"] if previous else 0
        collect = cap > 0 and records <= cap
        cached: DataFrame | None = None
        try:
            t0 = time.perf_counter()
            rows = _collect_at_most(df, cap, watermark) if collect else None
            if rows is not None:
                parts = _driver_batch(rows, query, batch_id)
            else:
                cached = _flag_late(df, watermark).persist()
                parts = _spark_batch(cached, query, batch_id, cap)
            batch = _batch(query, batch_id, parts, started, prev_max, watermark)
            t1 = time.perf_counter()
            lake_ms = self._write_sinks(batch)
            t2 = time.perf_counter()
        finally:
            if cached is not None:
                cached.unpersist()
        log.info(
            "batch %s of %s: %s rows, %s late, %s invalid; spark %.0f ms, lake %.0f ms, "
            "postgres and lake together %.0f ms",
            batch_id,
            query,
            batch.stats.rows_read,
            batch.stats.rows_late,
            batch.stats.rows_invalid,
            (t1 - t0) * 1000,
            lake_ms,
            (t2 - t1) * 1000,
        )
        if self.crash_after_commit is not None and batch_id >= self.crash_after_commit:
            log.warning("fault injection: dying after the commit of batch %s", batch_id)
            if os.getpgid(0) == os.getpid():  # a session leader takes its JVM down with it
                os.killpg(os.getpid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)

    def _write_sinks(self, batch: Batch) -> float:
        """Write the lake while PostgreSQL takes the batch; commit only once the lake has it.

        The two are independent until the commit: the lake is written by Spark's executors
        (or by pyarrow, which releases the GIL, for a small batch), PostgreSQL works in its own
        process. The PostgreSQL commit marks the batch as landed (a replay skips it), so it
        waits inside its transaction for every lake write, and a failed lake write rolls it
        back. Returns the lake's milliseconds.
        """

        def lake() -> float:
            t0 = time.perf_counter()
            for sink in self._sinks:
                sink.write(batch)
            return (time.perf_counter() - t0) * 1000

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="wikipulse-lake") as pool:
            lake_written = pool.submit(lake)
            self._pg.write(batch, before_commit=lake_written.result)
        return lake_written.result()


def records_in_batch(checkpoint: Path, batch_id: int) -> int | None:
    """How many Kafka records batch ``batch_id`` spans, from the query's offset log.

    Spark writes the batch's end offsets (``offsets/<id>``) before it runs the batch; its
    start is the batch before's end, or for the first batch the source's initial offsets
    (``sources/0/0``). The span counts every record, duplicates and bad ones included, so a
    batch never holds more rows than this. None when the log does not say (another
    source, a partition without a start).
    """
    end = _offsets(checkpoint / "offsets" / str(batch_id))
    start = _offsets(
        checkpoint / "offsets" / str(batch_id - 1)
        if batch_id > 0
        else checkpoint / "sources" / "0" / "0"
    )
    if end is None or start is None:
        return None
    total = 0
    for topic, partitions in end.items():
        for partition, offset in partitions.items():
            first = start.get(topic, {}).get(partition)
            if first is None or first < 0 or offset < first:
                return None
            total += offset - first
    return total


def _offsets(path: Path) -> dict[str, dict[str, int]] | None:
    """The Kafka offsets, by topic and partition, in the last line of an offset log file."""
    try:
        last = path.read_text(encoding="utf-8").strip().splitlines()[-1]
        offsets = json.loads(last)
    except (OSError, UnicodeDecodeError, IndexError, json.JSONDecodeError):
        return None
    if not isinstance(offsets, dict) or not all(
        isinstance(parts, dict) and all(isinstance(o, int) for o in parts.values())
        for parts in offsets.values()
    ):
        return None
    return offsets


class _Summary(NamedTuple):
    """A batch's counts: all rows, unparseable ones, canaries, late events, newest event time."""

    rows: int
    invalid: int
    canaries: int
    late: int
    max_time: datetime | None


_Parts = tuple[_Summary, "pa.Table | DataFrame | None", dict[str, "pa.Table"], "pa.Table | None"]
"""What a batch computes: its summary, lake events, tables and quarantine."""

_COLLECTED = tuple(
    c for c in (*LAKE_COLUMNS, "topic", "is_canary", "parse_error") if c != "is_late"
)
"""The columns a small batch is collected with: the lake's but ``is_late`` (added on the
driver), and what quarantine and summary need."""


def _collect_at_most(df: DataFrame, cap: int, watermark: datetime | None) -> pa.Table | None:
    """The whole batch as one Arrow table in one Spark job, or None if it has over ``cap`` rows.

    On two cores the scheduling of each Spark job, not its work, is what a small batch waits
    for: a summary job and then a collect took 0.3 s longer per batch at 350 events/s than
    this one collect. The limit keeps the driver's memory bounded; a batch over it is
    computed again by :func:`_spark_batch`.

    ``is_late`` is computed here by pyarrow, not by :func:`_flag_late`: the watermark, a new
    literal every batch, would make Spark generate and compile the stage's code anew for each
    batch; without it the code is the same and Spark's cache of compiled code serves it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = df.select(*_COLLECTED).limit(cap + 1).toArrow()
    if rows.num_rows > cap:
        return None
    times = rows["event_time"]
    if watermark is None:
        late = pa.array([False] * rows.num_rows, pa.bool_())
    else:
        late = pc.fill_null(pc.less(times, pa.scalar(watermark, times.type)), False)
    return rows.append_column("is_late", late)


def _driver_batch(rows: pa.Table, query: str, batch_id: int) -> _Parts:
    """Summary, lake events, tables (:mod:`.arrow_metrics`) and quarantine of a collected batch."""
    import pyarrow as pa
    import pyarrow.compute as pc

    usable = pc.is_null(rows["parse_error"])
    canary = pc.and_(usable, rows["is_canary"])
    kept = pc.and_(usable, pc.invert(canary))
    events = rows.filter(kept).select(list(LAKE_COLUMNS)).cast(RAW_SCHEMA)
    late = events["is_late"]
    newest = pc.max(events["event_time"]).as_py() if events.num_rows else None
    summary = _Summary(
        rows=rows.num_rows,
        invalid=rows.num_rows - pc.sum(usable).as_py() if rows.num_rows else 0,
        canaries=pc.sum(canary).as_py() or 0,
        late=pc.sum(late).as_py() or 0,
        max_time=newest,
    )
    tables = _arrow_tables(events) if events.num_rows else {}
    quarantine = None
    if summary.invalid:
        bad = rows.filter(pc.invert(usable))
        raw = bad["raw_json"].cast(pa.binary()).to_pylist()
        quarantine = pa.table(
            {
                "topic": bad["topic"],
                "source_partition": bad["source_partition"],
                "source_offset": bad["source_offset"],
                "kafka_timestamp": bad["kafka_timestamp"],
                "reason": bad["parse_error"],
                "raw_base64": pa.array(
                    [None if r is None else base64.b64encode(r).decode() for r in raw], pa.string()
                ),
                "query_name": pa.array([query] * bad.num_rows, pa.string()),
                "batch_id": pa.array([batch_id] * bad.num_rows, pa.int64()),
            }
        )
    return summary, events if events.num_rows else None, tables, quarantine


def _arrow_tables(events: pa.Table) -> dict[str, pa.Table]:
    """Every table of a batch's lake events by the pyarrow twins, late events left out."""
    import pyarrow.compute as pc

    on_time = events.filter(pc.invert(events["is_late"]))
    return {name: compute(on_time) for name, compute in ARROW_TABLES.items()}


def _spark_batch(df: DataFrame, query: str, batch_id: int, cap: int) -> _Parts:
    """The same from the cached batch with Spark: a summary job, then the tables.

    A batch of up to ``cap`` usable events (its Kafka range was larger, but most of it were
    duplicates, canaries or bad records) is still collected once and its tables computed by
    pyarrow; a larger one's tables are Spark jobs run from concurrent threads, and its lake
    rows stay a DataFrame that Spark writes.
    """
    from pyspark.sql import functions as F

    usable = F.col("parse_error").isNull()
    canary = usable & F.col("is_canary")
    late = F.col("is_late")
    first = df.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count("parse_error").alias("invalid"),
        F.count_if(canary).alias("canaries"),
        F.count_if(usable & ~canary & late).alias("late"),
        F.max(F.when(usable & ~canary, F.col("event_time"))).alias("max_time"),
    ).first()
    assert first is not None
    summary = _Summary(**first.asDict())
    events = df.where(usable & ~F.col("is_canary"))
    quarantine = None
    if summary.invalid:
        quarantine = (
            df.where(~usable)
            .select(
                "topic",
                "source_partition",
                "source_offset",
                "kafka_timestamp",
                F.col("parse_error").alias("reason"),
                F.base64(F.col("raw_json").cast("binary")).alias("raw_base64"),
                F.lit(query).alias("query_name"),
                F.lit(batch_id).cast("long").alias("batch_id"),
            )
            .toArrow()
        )
    lake_events: DataFrame | pa.Table | None = None
    tables: dict[str, pa.Table] = {}
    usable_rows = summary.rows - summary.invalid - summary.canaries
    if usable_rows and usable_rows <= cap:
        lake_events = events.select(*LAKE_COLUMNS).toArrow().cast(RAW_SCHEMA)
        tables = _arrow_tables(lake_events)
    elif usable_rows:
        lake_events = events.select(*LAKE_COLUMNS)
        on_time_df = events.where(~late)
        jobs = {
            name: table.compute(on_time_df) for name, table in {**TABLES, **EXTRA_TABLES}.items()
        }
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = {name: pool.submit(frame.toArrow) for name, frame in jobs.items()}
            tables = {name: future.result() for name, future in futures.items()}
    return summary, lake_events, tables, quarantine


def _batch(
    query: str,
    batch_id: int,
    parts: _Parts,
    started: datetime,
    prev_max: datetime | None,
    watermark: datetime | None,
) -> Batch:
    """The batch for the sinks; ``prev_max`` is the newest event time of the batches before."""
    summary, events, tables, quarantine = parts
    batch_max = summary.max_time
    if batch_max is not None and batch_max.tzinfo is None:
        batch_max = batch_max.astimezone(UTC)  # PySpark hands back local wall time
    candidates = [t for t in (prev_max, batch_max) if t is not None]
    stats = BatchStats(
        rows_read=int(summary.rows),
        rows_late=int(summary.late),
        duplicates_dropped=0,
        rows_invalid=int(summary.invalid),
        canaries_dropped=int(summary.canaries),
        watermark=watermark,
        max_event_time=max(candidates) if candidates else None,
    )
    return Batch(
        query_name=query,
        batch_id=batch_id,
        tables=tables,
        events=events,
        stats=stats,
        quarantine=quarantine,
        started_at=started,
    )


def stop_query(query: StreamingQuery, *, drain_s: float = 30.0) -> None:
    """Stop ``query`` once the batch running now has ended, waiting for that at most ``drain_s``.

    A batch cancelled half-way is lost work and fills the log with Spark's interruption
    errors. The wait ends when no trigger runs, or when the query reports a batch newer than
    the last it had reported: with a backlog the next trigger starts at once, and waiting for
    an idle moment would mean waiting for the whole backlog. A trigger that started in that
    instant, or a batch that outlasts ``drain_s``, is cancelled, and nothing of it is lost:
    its offsets are not committed, so a restart runs it again, and the job's batch-id check
    skips writes PostgreSQL already has.
    """
    before = _last_batch(query)
    deadline = time.monotonic() + drain_s
    while query.isActive and query.status["isTriggerActive"]:
        if _last_batch(query) != before:
            break
        if time.monotonic() >= deadline:
            log.warning(
                "query %s still in a batch after %.1f s; cancelling it", query.name, drain_s
            )
            break
        time.sleep(0.05)
    query.stop()


def _last_batch(query: StreamingQuery) -> int | None:
    """The id of the newest batch the query has reported progress for."""
    progress = query.lastProgress
    return None if progress is None else int(progress["batchId"])


def _flag_late(df: DataFrame, watermark: datetime | None) -> DataFrame:
    """``df`` with ``is_late``: the event is older than the batch's watermark.

    Added before the batch is cached or collected, so that the watermark is compiled into the
    one stage that computes the batch. Whole-stage code inlines a timestamp literal, so a
    watermark that changes every batch would otherwise make every job reading the batch
    compile its code anew (half a second per small batch).
    """
    from pyspark.sql import functions as F

    late = F.col("event_time") < F.lit(watermark) if watermark else F.lit(False)
    return df.withColumn("is_late", late)


class ProgressListener(StreamingQueryListener):
    """Records Spark's progress events: input rows, duplicates, rates, state size.

    Spark delivers the events on its own thread, after the query has moved on, so the last
    batch's progress can arrive after the query ended. The job therefore waits for the
    query's termination event (which follows all its progress events) before :meth:`close`,
    which also waits for a record in flight and makes later events no-ops.
    """

    def __init__(self, pg: PostgresSink, query_name: str) -> None:
        super().__init__()
        self.pg = pg
        self.query_name = query_name
        self._closed = False
        self._ended: set[str] = set()
        self._state = threading.Condition()

    def await_end(self, run_id: str, timeout_s: float) -> bool:
        """Wait until the termination event of the query run ``run_id`` was delivered."""
        with self._state:
            return self._state.wait_for(lambda: run_id in self._ended, timeout=timeout_s)

    def close(self) -> None:
        """Finish the record in flight, then record nothing more and close the connection."""
        with self._state:
            self._closed = True
            self.pg.close()

    def onQueryStarted(self, event: Any) -> None:
        """Nothing to record at start."""

    def onQueryProgress(self, event: Any) -> None:
        """Complete the batch's pipeline_progress row and the query's status row."""
        progress = event.progress
        if progress.name != self.query_name:
            return
        with self._state:
            if self._closed:
                return
            try:
                self.pg.record_spark_progress(self.query_name, progress)
            except Exception:  # a listener must never take the query down
                log.exception("could not record Spark progress of batch %s", progress.batchId)

    def onQueryIdle(self, event: Any) -> None:
        """Idle triggers carry no batch."""

    def onQueryTerminated(self, event: Any) -> None:
        """Note the run's end: no progress event of it follows."""
        with self._state:
            self._ended.add(str(event.runId))
            self._state.notify_all()
