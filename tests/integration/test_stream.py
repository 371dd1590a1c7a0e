"""The speed layer end to end: real Kafka, Spark and PostgreSQL against the plain-Python oracle."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from streamtools import (
    CorpusTopic,
    job_settings,
    progress_rows,
    run_to_end,
    table_differences,
    wait_while_running,
)

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.lake import RAW_SCHEMA, readable_files
from wiki_lib.stream.job import StreamJob, records_in_batch
from wiki_lib.testing.oracle import deduplicated_events, load_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def replayed(
    corpus: CorpusTopic, spark: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str, Path]]:
    """One availableNow run over the corpus in several micro-batches.

    Batches of more than 1,000 events are computed and written to the lake by Spark, smaller
    ones (the last) on the driver by pyarrow, so the oracle comparison covers both ways of
    computing the tables and the lake test reads both writers' files.
    """
    import uuid

    schema = f"speed_{uuid.uuid4().hex[:8]}"
    db.migrate(corpus.settings.postgres, schema)
    workdir = tmp_path_factory.mktemp("speed")
    settings = job_settings(
        corpus, schema, workdir, max_offsets_per_trigger=1500, driver_max_rows=1000
    )
    run_to_end(settings, spark, schema)
    yield settings, schema, workdir


def test_corpus_reached_kafka(corpus: CorpusTopic, data_dir: Path) -> None:
    lines = load_events(sorted((data_dir / "recentchange").glob("*.jsonl")))
    assert corpus.produced == len(lines)


def test_tables_equal_oracle(replayed: tuple[Settings, str, Path], corpus: CorpusTopic) -> None:
    settings, schema, _ = replayed
    assert table_differences(settings, schema, corpus.oracle) == {}
    # the duplicated events of the re-encoded capture count once
    assert sum(r["events"] for r in corpus.oracle["traffic_minute"].values()) == len(
        corpus.oracle["recent_changes"]
    )


def test_progress_accounts_for_every_record(
    replayed: tuple[Settings, str, Path], corpus: CorpusTopic
) -> None:
    settings, schema, _ = replayed
    query = settings.stream.query_name
    deadline = time.monotonic() + 30
    rows = progress_rows(settings, schema, query)
    while any(r["rows_input"] is None for r in rows) and time.monotonic() < deadline:
        time.sleep(0.5)
        rows = progress_rows(settings, schema, query)
    assert len(rows) >= 3, "the corpus should span several micro-batches"
    assert [r["batch_id"] for r in rows] == list(range(len(rows)))
    assert sum(r["rows_input"] for r in rows) == corpus.produced
    # Spark's offset log tells each batch's size before it runs: the records Spark read
    checkpoint = settings.checkpoint_dir / str(query)
    assert [records_in_batch(checkpoint, r["batch_id"]) for r in rows] == [
        r["rows_input"] for r in rows
    ]
    unique = len(corpus.oracle["recent_changes"])
    assert sum(r["duplicates_dropped"] for r in rows) == corpus.produced - unique
    assert sum(r["rows_read"] for r in rows) == unique
    assert sum(r["rows_late"] for r in rows) == 0
    assert rows[-1]["max_event_time"] == max(
        r["event_time"] for r in corpus.oracle["recent_changes"].values()
    )


def test_lake_holds_each_event_once_in_hour_partitions(
    replayed: tuple[Settings, str, Path], data_dir: Path
) -> None:
    settings, _, _ = replayed
    files = readable_files(settings.lake_path)
    assert files
    ids: Counter[str] = Counter()
    writers: Counter[str] = Counter()
    for path in files:
        file_schema = pq.read_schema(path)
        writers[pq.read_metadata(path).created_by.split()[0]] += 1
        assert [(f.name, f.type) for f in file_schema] == [(f.name, f.type) for f in RAW_SCHEMA]
        assert path.parent.name.startswith("event_hour=")
        assert path.parent.parent.name.startswith("event_date=")
        hour = int(path.parent.name.split("=")[1])
        day = path.parent.parent.name.split("=")[1]
        table = pq.read_table(path)
        for event_id, event_time in zip(
            table.column("event_id").to_pylist(),
            table.column("event_time").to_pylist(),
            strict=True,
        ):
            ids[event_id] += 1
            assert event_time.hour == hour and event_time.strftime("%Y-%m-%d") == day
    expected = {
        e["event_id"]
        for e in deduplicated_events(
            load_events(sorted((data_dir / "recentchange").glob("*.jsonl")))
        )
    }
    assert set(ids) == expected
    assert max(ids.values()) == 1
    assert set(writers) == {"parquet-mr", "parquet-cpp-arrow"}, writers  # Spark's and pyarrow's


def test_replayed_batch_changes_nothing(
    replayed: tuple[Settings, str, Path], corpus: CorpusTopic, spark: object
) -> None:
    """Feeding a committed batch id again (what Spark does after a crash) is a no-op."""
    settings, schema, _ = replayed
    job = StreamJob(settings, spark, schema=schema)  # type: ignore[arg-type]
    raw = (
        spark.read.format("kafka")  # type: ignore[attr-defined]
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap)
        .option("subscribe", settings.kafka.topic_raw)
        .option("startingOffsets", "earliest")
        .load()
        .limit(500)
    )
    from pyspark.sql import functions as F

    from wiki_lib.stream.metrics import parse_events

    frame = parse_events(
        raw.select(
            "value",
            "topic",
            F.col("partition").alias("source_partition"),
            F.col("offset").alias("source_offset"),
            F.col("timestamp").alias("kafka_timestamp"),
        )
    )
    job._pg.setup()
    job.process_batch(frame, 1)
    assert table_differences(settings, schema, corpus.oracle) == {}


def test_stop_lets_the_running_batch_finish(
    corpus: CorpusTopic, spark: object, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    """Stopped while its first batch (the whole corpus) runs, the job lands that batch first."""
    schema = unique("drain")
    db.migrate(corpus.settings.postgres, schema)
    settings = job_settings(corpus, schema, tmp_path, trigger="1 second")
    job = StreamJob(settings, spark, schema=schema)  # type: ignore[arg-type]
    query = job.start()
    try:
        wait_while_running(
            query,
            lambda: query.status["isTriggerActive"] and query.status["isDataAvailable"],
            timeout_s=120,
            poll_s=0.02,
        )
    finally:
        job.stop(query, drain_s=120)
    batches = progress_rows(settings, schema, str(settings.stream.query_name))
    assert batches and batches[0]["batch_id"] == 0
    assert table_differences(settings, schema, corpus.oracle) == {}


def test_malformed_messages_are_quarantined(
    corpus: CorpusTopic,
    spark: object,
    tmp_path: Path,
    unique: Callable[[str], str],
    data_dir: Path,
) -> None:
    from kafka import KafkaProducer

    from wiki_lib.kafka_admin import ensure_topics, ingest_topic_specs

    schema = unique("bad")
    db.migrate(corpus.settings.postgres, schema)
    topic = unique("badtopic")
    base = corpus.settings.with_overrides(kafka={"topic_raw": topic, "topic_dlq": f"{topic}_d"})
    ensure_topics(base.kafka.bootstrap, ingest_topic_specs(base))
    good = load_events(sorted((data_dir / "recentchange").glob("dlw*.jsonl")))
    # Invalid rows never take part in deduplication: two of them sharing an empty id are both
    # kept, and an invalid row carrying the id of a valid event that follows does not hide it.
    next_id = json.loads(good[1])["meta"]["id"]
    bad = [
        b"{truncated",
        b"\xff\xfe\x00bad",
        b"[1, 2]",
        b'{"meta": {}}',
        b'"a string"',
        b'{"meta": {"id": "x-1", "dt": "not a time"}}',
        b'{"meta": {"id": "", "dt": "2024-01-01T00:00:00Z"}}',
        b'{"meta": {"id": "", "dt": "2024-01-01T00:00:00Z"}}',
        b'{"meta": {"id": "%s", "id": "%s"}}' % (next_id.encode(), next_id.encode()),
    ]
    producer = KafkaProducer(bootstrap_servers=base.kafka.bootstrap, acks="all")
    for value in [good[0], *bad, *good[1:]]:
        producer.send(topic, value=value)
    producer.flush()
    producer.close()
    settings = job_settings(CorpusTopic(base, {}, 0), schema, tmp_path)
    run_to_end(settings, spark, schema, timeout_s=300)
    conn = db.connect(settings.postgres, "reader")
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT source_offset, reason, raw_base64 FROM {schema}.quarantine "
            "ORDER BY source_offset"
        )
        reasons = cur.fetchall()
        cur.execute(f"SELECT count(*) FROM {schema}.recent_changes")
        (kept,) = cur.fetchone()
        cur.execute(f"SELECT sum(rows_invalid) FROM {schema}.pipeline_progress")
        (invalid,) = cur.fetchone()
    conn.close()
    assert [r[1] for r in reasons] == [
        "invalid_json",
        "invalid_utf8",
        "not_an_object",
        "missing_event_id",
        "not_an_object",
        "invalid_event_time",
        "missing_event_id",
        "missing_event_id",
        "invalid_json",
    ]
    assert [r[0] for r in reasons] == list(range(1, len(bad) + 1))
    assert [base64.b64decode(r[2], validate=True) for r in reasons] == bad  # one line each
    assert kept == len(good)
    assert invalid == len(bad)
