"""The speed layer survives kill -9 of its driver and late data, and stays exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer
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
from wiki_lib.kafka_admin import ensure_topics, ingest_topic_specs
from wiki_lib.lake import readable_files
from wiki_lib.stream.job import StreamJob

pytestmark = pytest.mark.integration


def _env(settings: Settings) -> dict[str, str]:
    """The settings a child `wikipulse stream` needs, as WIKI__ variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIKI__")}
    values = {
        "KAFKA__BOOTSTRAP": settings.kafka.bootstrap,
        "KAFKA__TOPIC_RAW": settings.kafka.topic_raw,
        "POSTGRES__PORT": str(settings.postgres.port),
        "POSTGRES__SCHEMA_NAME": settings.postgres.schema_name,
        "STREAM__QUERY_NAME": settings.stream.query_name,
        "STREAM__CHECKPOINT_DIR": str(settings.checkpoint_dir),
        "STREAM__TRIGGER": "availableNow",
        "STREAM__MAX_OFFSETS_PER_TRIGGER": str(settings.stream.max_offsets_per_trigger),
        "LAKE__PATH": str(settings.lake_path),
        "SPARK__UI_PORT": "0",
        "SPARK__SHUFFLE_PARTITIONS": "2",
        "STACK__STATE_DIR": str(settings.stack.state_dir),
    }
    env.update({f"WIKI__{k}": v for k, v in values.items()})
    return env


def _start(settings: Settings, *extra: str) -> subprocess.Popen[bytes]:
    log = open(settings.checkpoint_dir.parent / f"driver-{time.time_ns()}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "wiki_lib.cli", "stream", "run", *extra],
        env=_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill_when(settings: Settings, proc: subprocess.Popen[bytes], batches: int) -> None:
    """SIGKILL the driver's whole process group once ``batches`` batches have committed."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        rows = progress_rows(settings, settings.postgres.schema_name, settings.stream.query_name)
        if len(rows) >= batches:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            return
        time.sleep(0.2)
    raise AssertionError(f"the job never reached {batches} batches (exit {proc.poll()})")


def test_kill9_at_three_points_then_exact(corpus: CorpusTopic, tmp_path: Path) -> None:
    schema = f"crash_{uuid.uuid4().hex[:8]}"
    db.migrate(corpus.settings.postgres, schema)
    settings = job_settings(corpus, schema, tmp_path, max_offsets_per_trigger=400)
    settings.checkpoint_dir.mkdir(parents=True)

    # 1. between the PostgreSQL commit and the checkpoint commit of batch 2
    first = _start(settings, "--crash-after-commit", "2")
    assert first.wait(300) == -signal.SIGKILL
    assert [r["batch_id"] for r in progress_rows(settings, schema, f"q_{schema}")] == [0, 1, 2]
    # 2. and 3. from outside, in the middle of the stream
    _kill_when(settings, _start(settings), batches=6)
    _kill_when(settings, _start(settings), batches=9)
    # then run to the end
    final = _start(settings)
    assert final.wait(600) == 0

    assert table_differences(settings, schema, corpus.oracle) == {}
    rows = progress_rows(settings, schema, f"q_{schema}")
    assert [r["batch_id"] for r in rows] == list(range(len(rows)))
    assert len(rows) > 10
    lake_ids = [
        event_id
        for path in readable_files(settings.lake_path)
        for event_id in pq.read_table(path, columns=["event_id"]).column("event_id").to_pylist()
    ]
    assert sorted(lake_ids) == sorted(key[0] for key in corpus.oracle["recent_changes"])


def _event(template: dict, event_id: str, dt: str) -> bytes:
    event = json.loads(json.dumps(template))
    event["meta"]["id"] = event_id
    event["meta"]["dt"] = dt
    return json.dumps(event).encode()


def test_late_events_reach_lake_not_speed_tables(
    settings: Settings, spark: object, tmp_path: Path, data_dir: Path
) -> None:
    template = json.loads(
        (data_dir / "recentchange" / "dlw-github_wiki_visualizer__example_events.jsonl")
        .read_text()
        .splitlines()[0]
    )
    topic = f"late_{uuid.uuid4().hex[:8]}"
    schema = f"late_{uuid.uuid4().hex[:8]}"
    base = settings.with_overrides(
        kafka={"topic_raw": topic, "topic_dlq": f"{topic}_dlq", "partitions": 1}
    )
    ensure_topics(base.kafka.bootstrap, ingest_topic_specs(base))
    db.migrate(base.postgres, schema)
    values = [
        _event(template, "on-time-1", "2024-05-01T10:00:00Z"),
        _event(template, "on-time-2", "2024-05-01T10:10:00Z"),  # watermark -> 10:08
        _event(template, "late-1", "2024-05-01T10:05:00Z"),  # 3 minutes behind it
        _event(template, "on-time-3", "2024-05-01T10:09:00Z"),  # within the delay
    ]
    producer = KafkaProducer(bootstrap_servers=base.kafka.bootstrap, acks="all")
    for value in values:
        producer.send(topic, value=value)
    producer.flush()
    producer.close()
    job_cfg = job_settings(CorpusTopic(base, {}, 0), schema, tmp_path, max_offsets_per_trigger=1)
    run_to_end(job_cfg, spark, schema, timeout_s=300)

    conn = db.connect(base.postgres, "reader")
    with conn.cursor() as cur:
        cur.execute(f"SELECT event_id FROM {schema}.recent_changes ORDER BY event_id")
        assert [r[0] for r in cur.fetchall()] == ["on-time-1", "on-time-2", "on-time-3"]
        cur.execute(f"SELECT sum(events) FROM {schema}.traffic_minute")
        assert cur.fetchone()[0] == 3
        cur.execute(
            f"SELECT window_start FROM {schema}.traffic_minute "
            "WHERE window_start = '2024-05-01T10:05:00Z'"
        )
        assert cur.fetchall() == []
        cur.execute(f"SELECT sum(rows_late), max(watermark) FROM {schema}.pipeline_progress")
        late, watermark = cur.fetchone()
    conn.close()
    assert late == 1
    assert watermark.isoformat() == "2024-05-01T10:08:00+00:00"
    lake = {}
    for path in readable_files(job_cfg.lake_path):
        table = pq.read_table(path, columns=["event_id", "is_late"])
        lake.update(
            zip(
                table.column("event_id").to_pylist(),
                table.column("is_late").to_pylist(),
                strict=True,
            )
        )
    assert lake == {"on-time-1": False, "on-time-2": False, "late-1": True, "on-time-3": False}


def test_checkpoint_of_sparks_default_file_manager_resumes_under_ours(
    corpus: CorpusTopic, spark: object, tmp_path: Path
) -> None:
    """A checkpoint begun by Spark's FileContext manager (every checkpoint before the
    ``checkpoint_files`` setting) goes on under the FileSystem one, and stays exact."""
    key = "spark.sql.streaming.checkpointFileManagerClass"
    ours = spark.conf.get(key)  # type: ignore[attr-defined]
    assert ours.endswith(".FileSystemBasedCheckpointFileManager")
    schema = f"fm_{uuid.uuid4().hex[:8]}"
    db.migrate(corpus.settings.postgres, schema)
    live = job_settings(corpus, schema, tmp_path, trigger="1 second", max_offsets_per_trigger=300)
    spark.conf.set(key, ours.replace("FileSystemBased", "FileContextBased"))  # type: ignore[attr-defined]
    try:
        job = StreamJob(live, spark, schema=schema)  # type: ignore[arg-type]
        query = job.start()
        try:
            wait_while_running(
                query,
                lambda: len(progress_rows(live, schema, str(live.stream.query_name))) >= 2,
                timeout_s=180,
            )
        finally:
            job.stop(query)
    finally:
        spark.conf.set(key, ours)  # type: ignore[attr-defined]
    first = len(progress_rows(live, schema, str(live.stream.query_name)))
    rest = job_settings(corpus, schema, tmp_path, max_offsets_per_trigger=1500)
    run_to_end(rest, spark, schema)
    batches = progress_rows(rest, schema, str(rest.stream.query_name))
    assert [b["batch_id"] for b in batches] == list(range(len(batches)))
    assert len(batches) > first
    assert table_differences(rest, schema, corpus.oracle) == {}
