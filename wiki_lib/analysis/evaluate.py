"""How well did a pipeline run: throughput, latency, lag, late and duplicate events, dead
letters, and (for a replay) whether every table equals the plain-Python oracle.

Every function takes settings already pointed at the run (``RunRecord.settings``) or at the
live platform, and returns a pandas object, so ``evaluate_pipeline`` only calls and plots.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from psycopg2 import sql

from wiki_lib import db
from wiki_lib.analysis.runs import RunRecord, load_run
from wiki_lib.config import Settings
from wiki_lib.errors import SinkError
from wiki_lib.kafka_admin import end_offsets
from wiki_lib.lake import batch_files, readable_files
from wiki_lib.producer import decode_dead_letter
from wiki_lib.sources import expand_patterns
from wiki_lib.testing import oracle

__all__ = [
    "CONTRACT_TABLES",
    "Evaluation",
    "batches",
    "dead_letters",
    "evaluate",
    "event_time_lag",
    "lag_over_time",
    "late_event_ids",
    "latencies",
    "oracle_differences",
    "percentiles",
    "read_contract_table",
    "replayed_files",
    "throughput",
]

CONTRACT_TABLES = oracle.TABLE_KEYS
"""The six contract tables and their keys (shared/spec/metrics.md section 3)."""


def _frame(settings: Settings, query: sql.Composable, args: tuple[Any, ...] = ()) -> pd.DataFrame:
    with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
        cur.execute(query, args)
        cols = [d[0] for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=cols)


def batches(settings: Settings) -> pd.DataFrame:
    """The stream job's committed micro-batches (``pipeline_progress``), in batch order."""
    frame = _frame(
        settings,
        sql.SQL(
            "SELECT batch_id, committed_at, rows_read, rows_written, rows_late, "
            "duplicates_dropped, rows_invalid, canaries_dropped, processing_ms, watermark, "
            "max_event_time FROM {} WHERE query_name = %s ORDER BY batch_id"
        ).format(sql.Identifier(settings.postgres.schema_name, "pipeline_progress")),
        (settings.stream.query_name,),
    )
    if not frame.empty:
        frame["committed_at"] = pd.to_datetime(frame["committed_at"], utc=True)
    return frame


def throughput(progress: pd.DataFrame) -> dict[str, float]:
    """Events the job read and wrote, and events per second between its first and last commit.

    The first batch's own processing time is added to the span, so a run of one batch still
    has a rate.
    """
    if progress.empty:
        return {"batches": 0, "rows_read": 0, "rows_written": 0, "seconds": 0.0, "events_per_s": 0}
    first = progress["committed_at"].min() - pd.Timedelta(
        milliseconds=float(progress.sort_values("batch_id")["processing_ms"].iloc[0])
    )
    seconds = (progress["committed_at"].max() - first).total_seconds()
    read = int(progress["rows_read"].sum())
    return {
        "batches": len(progress),
        "rows_read": read,
        "rows_written": int(progress["rows_written"].sum()),
        "seconds": round(seconds, 3),
        "events_per_s": round(read / seconds, 1) if seconds > 0 else 0.0,
    }


def latencies(settings: Settings) -> pd.Series:
    """Seconds from each event's arrival in Kafka to the commit of the batch that wrote it.

    The lake's manifests say which files each batch wrote and ``pipeline_progress`` when that
    batch committed; the lake keeps each event's Kafka append time. Files a compaction already
    merged belong to no batch any more and are left out.
    """
    progress = batches(settings)
    if progress.empty:
        return pd.Series(dtype=float, name="latency_s")
    committed = dict(zip(progress["batch_id"], progress["committed_at"], strict=True))
    parts = []
    for batch_id, paths in batch_files(settings, settings.stream.query_name).items():
        at = committed.get(batch_id)
        if at is None:
            continue
        for path in paths:
            stamps = pq.read_table(path, columns=["kafka_timestamp"]).column(0).to_pandas()
            parts.append((at - pd.to_datetime(stamps, utc=True)).dt.total_seconds())
    if not parts:
        return pd.Series(dtype=float, name="latency_s")
    return pd.concat(parts, ignore_index=True).rename("latency_s")


def percentiles(values: pd.Series, points: Iterable[float] = (50, 90, 95, 99)) -> dict[str, float]:
    """``p50`` ... and ``max`` of ``values`` (empty when there are none)."""
    if values.empty:
        return {}
    out = {f"p{p:g}": round(float(values.quantile(p / 100)), 3) for p in points}
    out["max"] = round(float(values.max()), 3)
    out["count"] = int(values.size)
    return out


def lag_over_time(run: RunRecord | None) -> pd.DataFrame:
    """The run monitor's samples: Kafka end offsets, processed offsets and the lag between.

    Only runs are sampled; for the live platform (``None``) the frame is empty and
    :func:`event_time_lag` is the figure to watch.
    """
    columns = ["sampled_at", "produced", "end_offsets", "processed", "lag", "batches", "seconds"]
    if run is None or not run.samples:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        [
            {
                "sampled_at": s.sampled_at,
                "produced": s.produced,
                "end_offsets": s.end_offsets,
                "processed": s.processed,
                "lag": s.lag,
                "batches": s.batches,
            }
            for s in run.samples
        ]
    )
    frame["seconds"] = (
        pd.to_datetime(frame["sampled_at"], utc=True) - run.started_at
    ).dt.total_seconds()
    return frame[columns]


def _dead_letter_topic(settings: Settings, timeout_s: float) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    topic = settings.kafka.topic_dlq
    ends = end_offsets(settings.kafka.bootstrap, topic)
    if not any(ends.values()):
        return []
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka.bootstrap,
            enable_auto_commit=False,
            consumer_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaError, OSError) as exc:
        raise SinkError(f"cannot read {topic} on {settings.kafka.bootstrap}: {exc}") from exc
    try:
        parts = [TopicPartition(topic, p) for p in ends]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records = []
        for message in consumer:
            records.append(decode_dead_letter(message.value))
            if all(consumer.position(tp) >= ends[tp.partition] for tp in parts):
                break
        return records
    finally:
        consumer.close()


def dead_letters(
    settings: Settings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    timeout_s: float = 10.0,
) -> pd.DataFrame:
    """Dead letters by stage and reason: the producer's topic and the job's quarantine.

    ``since``/``until`` keep those that arrived in that span (the producer's ingest time, the
    quarantined record's Kafka time).
    """

    def inside(moment: datetime | None) -> bool:
        if moment is None:
            return since is None and until is None
        return (since is None or moment >= since) and (until is None or moment < until)

    rows = [
        {"stage": "producer", "reason": r["reason"]}
        for r in _dead_letter_topic(settings, timeout_s)
        if inside(datetime.fromisoformat(r["ingest_time"]) if r.get("ingest_time") else None)
    ]
    quarantined = _frame(
        settings,
        sql.SQL("SELECT reason, kafka_timestamp FROM {} WHERE topic = %s").format(
            sql.Identifier(settings.postgres.schema_name, "quarantine")
        ),
        (settings.kafka.topic_raw,),
    )
    rows += [
        {"stage": "stream job", "reason": reason}
        for reason, at in zip(quarantined["reason"], quarantined["kafka_timestamp"], strict=True)
        if inside(at)
    ]
    frame = pd.DataFrame(rows, columns=["stage", "reason"])
    return (
        frame.groupby(["stage", "reason"]).size().rename("count").reset_index()
        if not frame.empty
        else pd.DataFrame({"stage": [], "reason": [], "count": []}).astype({"count": "int64"})
    )


def _normalise(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, Decimal):
        return int(value)
    return value


def read_contract_table(settings: Settings, table: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A contract table as {key: row} with plain Python values, through the reader role."""
    keys = CONTRACT_TABLES[table]
    with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT * FROM {}").format(sql.Identifier(settings.postgres.schema_name, table))
        )
        cols = [d[0] for d in cur.description]
        rows = [{c: _normalise(v) for c, v in zip(cols, r, strict=True)} for r in cur.fetchall()]
    return {tuple(r[k] for k in keys): r for r in rows}


def _without(lines: list[bytes], event_ids: set[str]) -> list[bytes]:
    if not event_ids:
        return lines
    kept = []
    for line in lines:
        try:
            event_id = json.loads(line).get("meta", {}).get("id")
        except (ValueError, AttributeError):
            event_id = None
        if event_id not in event_ids:
            kept.append(line)
    return kept


def oracle_differences(
    settings: Settings,
    files: Iterable[str | Path],
    *,
    late_event_ids: Iterable[str] = (),
) -> pd.DataFrame:
    """Every value on which PostgreSQL and the oracle disagree; empty when the run is exact.

    The oracle (:mod:`wiki_lib.testing.oracle`, plain Python, nothing shared with the Spark
    code) recomputes the six tables from the replayed files. Events the speed layer flagged
    late are not counted there by contract, so ``late_event_ids`` leaves them out of the
    oracle's input too. Columns: ``table, key, column, got, want``.
    """
    lines = _without(oracle.load_events(files), set(late_event_ids))
    expected = oracle.compute_tables(lines)
    rows: list[dict[str, Any]] = []
    for table in CONTRACT_TABLES:
        got = read_contract_table(settings, table)
        want = {k: {c: _normalise(v) for c, v in r.items()} for k, r in expected[table].items()}
        for key in sorted(want.keys() - got.keys(), key=repr):
            rows.append({"table": table, "key": key, "column": "*", "got": None, "want": "row"})
        for key in sorted(got.keys() - want.keys(), key=repr):
            rows.append({"table": table, "key": key, "column": "*", "got": "row", "want": None})
        for key in want.keys() & got.keys():
            for column, value in want[key].items():
                if got[key].get(column) != value:
                    rows.append(
                        {
                            "table": table,
                            "key": key,
                            "column": column,
                            "got": got[key].get(column),
                            "want": value,
                        }
                    )
    return pd.DataFrame(rows, columns=["table", "key", "column", "got", "want"])


def replayed_files(run: RunRecord) -> list[Path]:
    """The recordings a ``replay:`` run read (empty for live or synthetic runs)."""
    kind, _, rest = run.source.partition(":")
    return expand_patterns(rest.split(",")) if kind == "replay" else []


def late_event_ids(settings: Settings) -> set[str]:
    """Ids of the events the lake holds as late (too late for the speed layer)."""
    import pyarrow.dataset as ds

    files = readable_files(settings)
    if not files:
        return set()
    table = ds.dataset([str(f) for f in files], format="parquet").to_table(
        columns=["event_id"], filter=ds.field("is_late")
    )
    return set(table.column("event_id").to_pylist())


def event_time_lag(progress: pd.DataFrame) -> pd.DataFrame:
    """Per committed batch: how far the newest event time trailed the commit, in seconds.

    For the live stream this is how far behind real time the tables are; for a replay of old
    recordings it is dominated by the recordings' age.
    """
    frame = progress[["batch_id", "committed_at", "max_event_time"]].dropna().copy()
    frame["event_lag_s"] = (
        frame["committed_at"] - pd.to_datetime(frame["max_event_time"], utc=True)
    ).dt.total_seconds()
    return frame


@dataclass
class Evaluation:
    """Everything ``evaluate_pipeline`` shows about one run (or the live platform)."""

    run: RunRecord | None
    progress: pd.DataFrame
    throughput: dict[str, float]
    latency: pd.Series
    lag: pd.DataFrame
    event_lag: pd.DataFrame
    dead_letters: pd.DataFrame
    differences: pd.DataFrame | None

    def summary(self) -> dict[str, Any]:
        """The headline figures as plain data (what a scheduler or a test reads)."""
        return {
            "run_id": self.run.run_id if self.run else None,
            "throughput": self.throughput,
            "latency_s": percentiles(self.latency),
            "max_kafka_lag": int(self.lag["lag"].max()) if not self.lag.empty else None,
            "late_events": int(self.progress["rows_late"].sum()) if not self.progress.empty else 0,
            "duplicates_dropped": int(self.progress["duplicates_dropped"].sum())
            if not self.progress.empty
            else 0,
            "dead_letters": {
                f"{s}:{r}": int(c)
                for s, r, c in self.dead_letters[["stage", "reason", "count"]].itertuples(
                    index=False
                )
            },
            "oracle_differences": None if self.differences is None else len(self.differences),
        }


def evaluate(settings: Settings, run_id: str = "latest", *, compare: bool = True) -> Evaluation:
    """Evaluate run ``run_id`` ("latest", or "" for the live platform the settings name).

    ``compare`` checks every table against the oracle when the run replayed recordings.
    """
    run = load_run(settings, run_id) if run_id else None
    target = run.settings(settings) if run else settings
    progress = batches(target)
    files = replayed_files(run) if run and compare else []
    return Evaluation(
        run=run,
        progress=progress,
        throughput=throughput(progress),
        latency=latencies(target),
        lag=lag_over_time(run),
        event_lag=event_time_lag(progress),
        dead_letters=dead_letters(target),
        differences=oracle_differences(target, files, late_event_ids=late_event_ids(target))
        if files
        else None,
    )
