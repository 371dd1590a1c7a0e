"""Speed-layer benchmarks: throughput over a pre-loaded topic, latency at a steady input rate.

Throughput: ``events`` synthetic events are produced first (2 processes), then the job runs
with ``availableNow`` on the configured master and every table and the lake are written;
the rate is counted from the first to the last batch commit, and also over the whole run.
Latency: a producer paces synthetic events at ``rate`` per second while the job runs with a
processing-time trigger; a poller notes when each batch's ``pipeline_progress`` row becomes
visible (the same transaction writes the batch's ``recent_changes`` and every table), the lake's
manifests say which batch wrote each event, and the delay from the producer handing the event
to Kafka to that moment is the end-to-end latency. Polling the small progress table keeps the
measurement from loading the machine it measures.

Each is put next to Spark's own limit on the same input, as the ingest benchmark puts the
producer next to Kafka's perf tool: queries that run only the first stages of the job (read
the topic; read, parse and deduplicate) and write nothing. No job that has to parse and
deduplicate can be faster than they are.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg2 import sql

from wiki_lib import db
from wiki_lib.bench.ingest import synthetic_worker
from wiki_lib.config import Settings
from wiki_lib.errors import ConfigError
from wiki_lib.kafka_admin import delete_topics, ensure_topics, ingest_topic_specs
from wiki_lib.lake import batch_files
from wiki_lib.producer import IngestProducer
from wiki_lib.sources import DEFAULT_CORPUS, Source, SyntheticSource
from wiki_lib.sources.base import RawEvent
from wiki_lib.stream.job import StreamJob, stop_query

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

__all__ = ["STAGES", "latency", "latency_floor", "peak_memory_mb", "postgres_copy", "throughput"]

log = logging.getLogger(__name__)


def _isolated(settings: Settings, label: str, workdir: Path) -> Settings:
    """Settings with a fresh topic, schema, checkpoint and lake for one benchmark run."""
    tag = f"{label}_{uuid.uuid4().hex[:8]}"
    out = settings.with_overrides(
        kafka={"topic_raw": f"bench_{tag}", "topic_dlq": f"bench_{tag}_dlq"},
        postgres={"schema_name": f"bench_{tag}"},
        stream={"query_name": f"bench_{tag}", "checkpoint_dir": str(workdir / "ckpt")},
        lake={"path": str(workdir / "lake")},
    )
    ensure_topics(out.kafka.bootstrap, ingest_topic_specs(out))
    db.migrate(out.postgres, out.postgres.schema_name)
    return out


def _drop(settings: Settings) -> None:
    delete_topics(settings.kafka.bootstrap, [settings.kafka.topic_raw, settings.kafka.topic_dlq])
    conn = db.connect(settings.postgres, "admin")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(settings.postgres.schema_name)
            )
        )
    conn.close()


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory (VmHWM) of this Python process and of its JVM children, in MiB."""
    import psutil

    def hwm(pid: int) -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    jvm = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "java" in child.name():
                jvm += hwm(child.pid)
        except (psutil.NoSuchProcess, FileNotFoundError):
            continue  # a short-lived child (a JVM tool, a shell) ended while we looked
    return {"python_peak_mb": round(hwm(os.getpid()), 1), "jvm_peak_mb": round(jvm, 1)}


def throughput(
    settings: Settings,
    spark: SparkSession,
    *,
    events: int = 2_000_000,
    batch: int = 250_000,
    producers: int = 2,
) -> dict[str, Any]:
    """Events/s of the whole speed layer over a topic pre-loaded with ``events``."""
    workdir = Path(tempfile.mkdtemp(prefix="wikipulse-bench-"))
    bench = _isolated(settings, "tput", workdir)
    try:
        share = events // producers
        corpus = [str(DEFAULT_CORPUS)]
        t0 = time.perf_counter()
        with ProcessPoolExecutor(
            producers, mp_context=multiprocessing.get_context("spawn")
        ) as pool:
            runs = list(
                pool.map(
                    synthetic_worker,
                    [bench] * producers,
                    [corpus] * producers,
                    [share] * producers,
                    [7 + i for i in range(producers)],
                )
            )
        produced = sum(r["produced"] for r in runs)
        load_s = time.perf_counter() - t0
        cfg = bench.with_overrides(
            stream={"trigger": "availableNow", "max_offsets_per_trigger": batch}
        )
        job = StreamJob(cfg, spark)
        started = time.perf_counter()
        query = job.start()
        try:
            query.awaitTermination()
        finally:
            job.stop(query)
        wall_s = time.perf_counter() - started
        conn = db.connect(cfg.postgres, "reader")
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), sum(rows_read), extract(epoch FROM max(committed_at) - "
                    "min(committed_at)), (SELECT count(*) FROM {}.recent_changes) "
                    "FROM {}.pipeline_progress WHERE rows_read > 0"
                ).format(
                    sql.Identifier(cfg.postgres.schema_name),
                    sql.Identifier(cfg.postgres.schema_name),
                )
            )
            batches, rows, span, stored = cur.fetchone()
        conn.close()
        first_batch = int(rows or 0) and min(batch, produced)
        span = float(span or 0.0)
        alone = StreamJob(cfg, spark, lake=False)
        return {
            "events": produced,
            "producer_load_events_per_s": round(produced / load_s, 1),
            "batches": int(batches),
            "max_offsets_per_trigger": batch,
            "rows_stored": int(stored),
            "wall_s": round(wall_s, 1),
            "events_per_s_wall": round(produced / wall_s, 1),
            "events_per_s_first_to_last_commit": (
                round((int(rows) - first_batch) / span, 1) if span > 0 else None
            ),
            "master": settings.spark.master,
            **peak_memory_mb(),
            **{
                f"limit_{stage}_events_per_s": _noop_rate(
                    build(alone)[0], workdir / f"limit-{stage}"
                )
                for stage, build in _STAGES.items()
            },
        }
    finally:
        _drop(bench)
        shutil.rmtree(workdir, ignore_errors=True)


def _read_stage(job: StreamJob) -> tuple[DataFrame, Column]:
    """The job's Kafka read; an event's id is still inside its raw JSON."""
    from pyspark.sql import functions as F

    return job.source(), F.get_json_object(F.col("value").cast("string"), "$.meta.id")


def _parse_dedup_stage(job: StreamJob) -> tuple[DataFrame, Column]:
    """The job's read, parse and deduplication; the dedup key is the event's id."""
    from pyspark.sql import functions as F

    return job.deduplicated(job.source()), F.col("dedup_key")


_STAGES: dict[str, Callable[[StreamJob], tuple[DataFrame, Column]]] = {
    "read": _read_stage,
    "parse_dedup": _parse_dedup_stage,
}
STAGES: tuple[str, ...] = tuple(_STAGES)
"""The job's first stages, by name, that the limit figures run alone."""


def _noop_rate(frame: DataFrame, checkpoint: Path) -> float | None:
    """Events/s of ``frame`` into Spark's no-op sink with ``availableNow``, first to last batch.

    Counted as the job is: the first batch (planning, the JVM warming up) only marks the start.
    """
    query = (
        frame.writeStream.format("noop")
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    batches = [p for p in query.recentProgress if p.numInputRows > 0]
    if len(batches) < 2:
        return None

    def end(progress: Any) -> float:
        started = datetime.fromisoformat(progress.timestamp.replace("Z", "+00:00"))
        return started.timestamp() + progress.batchDuration / 1000

    span = end(batches[-1]) - end(batches[0])
    return round(sum(p.numInputRows for p in batches[1:]) / span, 1) if span > 0 else None


class _Stamped(Source):
    """Wraps a source and notes when each event was handed to the producer."""

    name = "stamped"

    def __init__(self, inner: Source) -> None:
        super().__init__()
        self.inner = inner
        self.sent: dict[str, float] = {}

    def __iter__(self) -> Iterator[RawEvent]:
        import orjson

        for raw in self.inner:
            self.sent[orjson.loads(raw.data)["meta"]["id"]] = time.time()
            yield raw

    def close(self) -> None:
        """Stop the wrapped source."""
        self.inner.close()


def _paced_source(rate: float, seconds: float, warmup_s: float) -> _Stamped:
    """Synthetic events at ``rate`` per second for the warm-up and the measured seconds."""
    total = int(rate * (seconds + warmup_s))
    return _Stamped(SyntheticSource(total, rate=rate, speed=1.0, seed=11, start=datetime.now(UTC)))


def _produce_and_wait(
    cfg: Settings,
    query: StreamingQuery,
    source: _Stamped,
    seen: dict[str, float],
    look: Callable[[], None] = lambda: None,
) -> None:
    """Produce ``source`` once the query ran its first (empty) batch; wait until all is seen.

    ``look`` is called every half second to add to ``seen``; the wait ends after 30 s, and
    what was not seen by then is reported as missing.
    """
    while query.lastProgress is None:
        time.sleep(0.2)
    with IngestProducer(cfg, create_topics=False, log_interval_s=3600) as producer:
        producer.run(source, progress=False)
    deadline = time.time() + 30
    while len(seen) < len(source.sent) and time.time() < deadline:
        time.sleep(0.5)
        look()


def _delays(
    source: _Stamped, seen: dict[str, float], warmup_s: float, rate: float, trigger: str
) -> dict[str, Any]:
    """Percentiles of the delays from send to seen, leaving out the warm-up's events."""
    cutoff = min(source.sent.values()) + warmup_s
    delays = sorted(seen[i] - t for i, t in source.sent.items() if i in seen and t >= cutoff)

    def pct(p: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(p * len(delays)))], 3) if delays else None

    return {
        "rate_events_per_s": rate,
        "trigger": trigger,
        "measured_events": len(delays),
        "missing_after_30s": len(source.sent) - len(seen),
        "p50_s": pct(0.50),
        "p90_s": pct(0.90),
        "p99_s": pct(0.99),
        "max_s": round(delays[-1], 3) if delays else None,
    }


def latency(
    settings: Settings,
    spark: SparkSession,
    *,
    rate: float = 350.0,
    seconds: float = 60.0,
    trigger: str = "1 second",
    warmup_s: float = 10.0,
) -> dict[str, Any]:
    """p50/p90/p99 seconds from producer send to visible in PostgreSQL, at ``rate`` events/s."""
    workdir = Path(tempfile.mkdtemp(prefix="wikipulse-bench-"))
    bench = _isolated(settings, "lat", workdir)
    cfg = bench.with_overrides(stream={"trigger": trigger, "starting_offsets": "latest"})
    source = _paced_source(rate, seconds, warmup_s)
    visible: dict[int, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    job = StreamJob(cfg, spark, lake=True)
    query = job.start()
    try:
        poller = threading.Thread(target=_poll, args=(cfg, visible, stop), daemon=True)
        poller.start()
        read: set[int] = set()
        _produce_and_wait(
            cfg, query, source, seen, lambda: _visible_events(cfg, visible, seen, read)
        )
        stop.set()
        poller.join()
    finally:
        job.stop(query)
        _drop(bench)
        shutil.rmtree(workdir, ignore_errors=True)
    return _delays(source, seen, warmup_s, rate, trigger)


def latency_floor(
    settings: Settings,
    spark: SparkSession,
    *,
    stage: str = "parse_dedup",
    rate: float = 350.0,
    seconds: float = 60.0,
    trigger: str = "1 second",
    warmup_s: float = 10.0,
) -> dict[str, Any]:
    """The latency benchmark's input through only the job's first stages: Spark's own floor.

    The query runs ``stage`` (one of :data:`STAGES`) with the job's trigger and, in
    ``foreachBatch``, only collects the batch's event ids; an event counts as seen when that
    collect returns.
    Whatever the full job adds to these delays is its tables, the lake and PostgreSQL.
    """
    if stage not in _STAGES:
        raise ConfigError(f"no stage {stage!r} to measure alone; the stages are {STAGES}")
    workdir = Path(tempfile.mkdtemp(prefix="wikipulse-bench-"))
    bench = _isolated(settings, "floor", workdir)
    cfg = bench.with_overrides(stream={"trigger": trigger, "starting_offsets": "latest"})
    frame, ids = _STAGES[stage](StreamJob(cfg, spark, lake=False))
    source = _paced_source(rate, seconds, warmup_s)
    seen: dict[str, float] = {}

    def note(df: DataFrame, _batch_id: int) -> None:
        rows = df.select(ids.alias("id")).collect()
        now = time.time()
        seen.update((row.id, now) for row in rows)

    query = (
        frame.writeStream.option("checkpointLocation", str(workdir / "ckpt"))
        .foreachBatch(note)
        .trigger(processingTime=trigger)
        .start()
    )
    try:
        _produce_and_wait(cfg, query, source, seen)
    finally:
        stop_query(query)
        _drop(bench)
        shutil.rmtree(workdir, ignore_errors=True)
    return {"stage": stage, **_delays(source, seen, warmup_s, rate, trigger)}


def _poll(settings: Settings, visible: dict[int, float], stop: threading.Event) -> None:
    """Every 50 ms, note the batches whose commit became visible since the last look."""
    table = sql.Identifier(settings.postgres.schema_name, "pipeline_progress")
    conn = db.connect(settings.postgres, "reader")
    conn.autocommit = True
    newest = -1
    with conn.cursor() as cur:
        while not stop.is_set():
            cur.execute(
                sql.SQL("SELECT batch_id FROM {} WHERE query_name = %s AND batch_id > %s").format(
                    table
                ),
                (settings.stream.query_name, newest),
            )
            now = time.time()
            for (batch_id,) in cur.fetchall():
                visible[batch_id] = now
                newest = max(newest, batch_id)
            stop.wait(0.05)
    conn.close()


def _visible_events(
    settings: Settings, visible: dict[int, float], seen: dict[str, float], read: set[int]
) -> None:
    """Add to ``seen`` when each event of a newly visible batch became visible.

    ``read`` holds the batches already accounted for; only the manifests of the others are
    read (the caller asks every half second).
    """
    import pyarrow.parquet as pq

    new = [batch_id for batch_id in list(visible) if batch_id not in read]
    query = settings.stream.query_name
    for batch_id, paths in batch_files(settings, query, batch_ids=new).items():
        read.add(batch_id)
        for path in paths:
            for event_id in pq.read_table(path, columns=["event_id"]).column(0).to_pylist():
                seen[event_id] = visible[batch_id]


def postgres_copy(settings: Settings, *, rows: int = 500_000) -> dict[str, Any]:
    """PostgreSQL's own ceiling: COPY of recent_changes-shaped rows into an unindexed table."""
    import pyarrow as pa

    from wiki_lib.sinks.postgres import copy_arrow

    now = datetime.now(UTC)
    table = pa.table(
        {
            "event_id": [f"{uuid.UUID(int=i)}" for i in range(rows)],
            "event_time": pa.array([now] * rows, pa.timestamp("us", tz="UTC")),
            "wiki": ["enwiki"] * rows,
            "title": [f"Page number {i % 5000}" for i in range(rows)],
            "user": [f"User {i % 900}" for i in range(rows)],
            "length_delta": list(range(rows)),
            "comment": ["copy-edited the lead section, fixed references"] * rows,
        }
    )
    conn = db.connect(settings.postgres, "admin")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE copy_limit (event_id text, event_time timestamptz, wiki text, "
                'title text, "user" text, length_delta bigint, comment text)'
            )
            started = time.perf_counter()
            copy_arrow(cur, "copy_limit", table)
            conn.commit()
            elapsed = time.perf_counter() - started
    finally:
        conn.close()
    return {"rows": rows, "copy_rows_per_s": round(rows / elapsed, 1)}
