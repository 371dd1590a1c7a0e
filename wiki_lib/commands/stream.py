"""``wikipulse stream``: run the speed layer, or show how it is doing."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType
from typing import Any

from wiki_lib import db
from wiki_lib.commands._common import add_command, plain_flag, print_json, setting_flag
from wiki_lib.config import Settings

__all__ = ["register", "run", "status"]


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Start the streaming query; stop it cleanly on SIGINT/SIGTERM or when caught up."""
    from wiki_lib.spark import session
    from wiki_lib.stream.job import StreamJob

    spark = session(settings, app_name=f"wikipulse-stream-{settings.stream.query_name}")
    job = StreamJob(
        settings, spark, lake=not args.no_lake, crash_after_commit=args.crash_after_commit
    )
    query = job.start()
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(
            f"stream {job.query_name}: {job.topic} -> {settings.postgres.schema_name}, "
            f"checkpoint {job.checkpoint}",
            file=sys.stderr,
        )
        while query.isActive and not stopping.is_set():
            query.awaitTermination(timeout=1)
        if query.exception() is not None:
            print(f"wikipulse: stream failed: {query.exception()}", file=sys.stderr)
            return 1
    finally:
        job.stop(query)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        spark.stop()
    return 0


def status(args: argparse.Namespace, settings: Settings) -> int:
    """Print the last batches of ``pipeline_progress`` and Spark's latest progress event."""
    from psycopg2 import sql

    schema = sql.Identifier(settings.postgres.schema_name)
    conn = db.connect(settings.postgres, "reader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT batch_id, committed_at, rows_input, rows_read, rows_written, "
                    "rows_late, duplicates_dropped, rows_invalid, watermark, max_event_time, "
                    "processing_ms, input_rows_per_s, processed_rows_per_s, state_rows "
                    "FROM {}.pipeline_progress WHERE query_name = %s "
                    "ORDER BY batch_id DESC LIMIT %s"
                ).format(schema),
                (settings.stream.query_name, args.batches),
            )
            cols = [d[0] for d in cur.description]
            batches = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            cur.execute(
                sql.SQL(
                    "SELECT updated_at, progress FROM {}.stream_status WHERE query_name = %s"
                ).format(schema),
                (settings.stream.query_name,),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    spark_progress: dict[str, Any] | None = None
    if row is not None:
        progress = row[1] if isinstance(row[1], dict) else json.loads(row[1])
        spark_progress = {
            "updated_at": row[0],
            "batch_id": progress.get("batchId"),
            "input_rows_per_s": progress.get("inputRowsPerSecond"),
            "processed_rows_per_s": progress.get("processedRowsPerSecond"),
            "batch_duration_ms": progress.get("durationMs", {}).get("triggerExecution"),
            "watermark": progress.get("eventTime", {}).get("watermark"),
            "state_rows": sum(
                op.get("numRowsTotal", 0) for op in progress.get("stateOperators", [])
            ),
        }
    if args.json:
        print_json(
            {"query_name": settings.stream.query_name, "spark": spark_progress, "batches": batches}
        )
        return 0 if batches else 3
    if not batches:
        print(f"no batches recorded for {settings.stream.query_name}")
        return 3
    if spark_progress:
        print("spark: " + ", ".join(f"{k}={v}" for k, v in spark_progress.items()))
    for b in batches:
        print(
            f"batch {b['batch_id']:>6} at {b['committed_at']:%H:%M:%S}: in={b['rows_input']} "
            f"written={b['rows_written']} late={b['rows_late']} dupes={b['duplicates_dropped']} "
            f"invalid={b['rows_invalid']} watermark={b['watermark']} {b['processing_ms']} ms"
        )
    return 0


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    return status(args, settings) if args.action == "status" else run(args, settings)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``stream [run|status]``."""
    p = add_command(sub, "stream", _dispatch, "run the Spark speed layer, or show its status")
    p.add_argument(
        "action",
        nargs="?",
        choices=["run", "status"],
        default="run",
        help="run the job (default) or show its progress",
    )
    setting_flag(p, "--topic", "kafka.topic_raw", "raw topic to read")
    setting_flag(p, "--bootstrap", "kafka.bootstrap", "Kafka bootstrap servers")
    setting_flag(p, "--schema", "postgres.schema_name", "PostgreSQL schema to write")
    setting_flag(p, "--query-name", "stream.query_name", "streaming query name")
    setting_flag(p, "--trigger", "stream.trigger", "'1 second' or 'availableNow'")
    setting_flag(p, "--watermark", "stream.watermark", "event-time watermark delay")
    setting_flag(p, "--starting-offsets", "stream.starting_offsets", "earliest, latest or JSON")
    setting_flag(
        p,
        "--max-offsets-per-trigger",
        "stream.max_offsets_per_trigger",
        "records per micro-batch",
        type=int,
    )
    setting_flag(p, "--checkpoint-dir", "stream.checkpoint_dir", "checkpoint root folder")
    setting_flag(p, "--lake-path", "lake.path", "Parquet lake root")
    setting_flag(p, "--master", "spark.master", "Spark master URL")
    plain_flag(p, "stream", "--no-lake", "do not write the raw lake", action="store_true")
    plain_flag(
        p,
        "stream",
        "--crash-after-commit",
        "fault injection for tests: SIGKILL itself after committing this batch to PostgreSQL",
        type=int,
    )
    plain_flag(p, "stream", "--batches", "status: how many batches to show", type=int, default=10)
    plain_flag(p, "stream", "--json", "status: machine-readable output", action="store_true")
