"""The batch layer over a lake holding late events the speed layer dropped.

A topic holds one day of the corpus (two captures of 2024-08-22, with duplicates), then events
that arrive after the stream's watermark passed them: some in minutes the speed layer already
wrote, some in a minute it never saw. The real stream job counts them nowhere but the lake;
recomputing the day must give exactly the oracle's tables over all events, late ones included,
and report what it replaced.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import query_reference as ref
from kafka import KafkaProducer
from psycopg2 import sql
from streamtools import CorpusTopic, job_settings, read_table, run_to_end, table_differences

from wiki_lib import db, lake
from wiki_lib.batch import BatchError, BatchReport, recompute_day
from wiki_lib.config import Settings
from wiki_lib.kafka_admin import ensure_topics, ingest_topic_specs
from wiki_lib.testing.oracle import compute_tables, deduplicated_events, load_events

pytestmark = pytest.mark.integration

DAY = date(2024, 8, 22)
NOW = datetime(2024, 8, 23, 1, 0, tzinfo=UTC)  # the day closed an hour ago
FILES = (
    "yearfunla_wikiMedia_stream_monitor__recentchange_raw.jsonl",
    "yearfunla_wikiMedia_stream_monitor__recentchange_streams_reencoded.jsonl",
)


def _late(lines: list[bytes]) -> list[bytes]:
    """Copies of real events with new ids, dated long before the watermark they arrive at."""
    late = []
    for i, raw in enumerate(lines[:40]):
        event = json.loads(raw)
        event["meta"]["id"] = f"late-{i:03d}"
        # 30 into minutes the speed layer wrote (04:02), 10 into one it never saw (03:50)
        event["meta"]["dt"] = "2024-08-22T04:02:30Z" if i < 30 else "2024-08-22T03:50:10Z"
        late.append(json.dumps(event).encode())
    return late


@dataclass(frozen=True)
class Day:
    settings: Settings
    schema: str
    on_time: dict[str, dict]  # oracle tables without the late events
    full: dict[str, dict]  # ... and with them
    late: int
    speed_differences: dict[str, list[str]]  # speed tables vs the on-time oracle
    speed_activity: dict[tuple[Any, ...], dict[str, Any]]  # what the speed layer wrote there


@pytest.fixture(scope="module")
def replayed_day(
    settings: Settings, spark: object, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Day]:
    corpus = load_events([data_dir / "recentchange" / name for name in FILES])
    late = _late(corpus)
    topic = f"batch_{uuid.uuid4().hex[:8]}"
    schema = f"batch_{uuid.uuid4().hex[:8]}"
    base = settings.with_overrides(
        kafka={"topic_raw": topic, "topic_dlq": f"{topic}_dlq", "partitions": 1}
    )
    ensure_topics(base.kafka.bootstrap, ingest_topic_specs(base))
    db.migrate(base.postgres, schema)
    producer = KafkaProducer(bootstrap_servers=base.kafka.bootstrap, acks="all")
    for value in [*corpus, *late]:
        producer.send(topic, value=value)
    producer.flush()
    producer.close()
    # the whole day in the first micro-batch, the late events in the next
    cfg = job_settings(
        CorpusTopic(base, {}, 0),
        schema,
        tmp_path_factory.mktemp("batch"),
        max_offsets_per_trigger=len(corpus),
    )
    run_to_end(cfg, spark, schema)
    on_time = compute_tables(corpus)
    on_time["activity_minute"] = ref.activity(deduplicated_events(corpus))
    full = compute_tables([*corpus, *late])
    full["activity_minute"] = ref.activity(deduplicated_events([*corpus, *late]))
    contract = {k: v for k, v in on_time.items() if k != "activity_minute"}
    differences = table_differences(cfg, schema, contract)
    activity = _activity(cfg, schema)
    yield Day(cfg, schema, on_time, full, len(late), differences, activity)
    conn = db.connect(base.postgres, "admin")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    conn.close()


def _rows(s: Settings, schema: str, name: str) -> list[dict[str, Any]]:
    conn = db.connect(s.postgres, "reader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            )
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()


def _activity(s: Settings, schema: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    rows = _rows(s, schema, "activity_minute")
    return {tuple(r[k] for k in ref.ACTIVITY_KEYS): r for r in rows}


@pytest.fixture(scope="module")
def report(replayed_day: Day, spark: object) -> BatchReport:
    return recompute_day(replayed_day.settings, spark, DAY, now=NOW)  # type: ignore[arg-type]


def test_the_speed_layer_dropped_the_late_events(replayed_day: Day) -> None:
    assert replayed_day.speed_differences == {}
    assert read_table  # the contract tables were read through the read-only role


def test_speed_layer_fills_the_activity_table(replayed_day: Day) -> None:
    """Needs ``EXTRA_TABLES`` registered in the stream job (see wiki_lib.stream.extra_metrics)."""
    assert replayed_day.speed_activity == replayed_day.on_time["activity_minute"]


def test_batch_tables_equal_the_oracle_with_late_events(
    replayed_day: Day, report: BatchReport
) -> None:
    contract = {k: v for k, v in replayed_day.full.items() if k != "activity_minute"}
    assert table_differences(replayed_day.settings, replayed_day.schema, contract) == {}
    cube = _activity(replayed_day.settings, replayed_day.schema)
    assert cube == replayed_day.full["activity_minute"]


def test_report_names_what_it_replaced(replayed_day: Day, report: BatchReport) -> None:
    assert report.day == DAY
    assert report.late_events == replayed_day.late
    assert report.lake_events == len(replayed_day.full["recent_changes"])
    assert report.duplicates_removed == 0
    traffic = report.tables["traffic_minute"]
    assert (traffic.only_speed, traffic.only_batch, traffic.changed) == (0, 1, 1)  # 03:50, 04:02
    speed_events = sum(r["events"] for r in replayed_day.on_time["traffic_minute"].values())
    assert traffic.totals["events"] == (speed_events, speed_events + replayed_day.late)
    assert any("2024-08-22 03:50" in example for example in traffic.examples)
    rc = report.tables["recent_changes"]
    assert (rc.only_batch, rc.changed, rc.only_speed) == (replayed_day.late, 0, 0)
    contract_tables = {"traffic_minute", "wiki_minute", "namespace_minute", "page_minute",
                       "user_minute", "recent_changes"}  # fmt: skip
    assert contract_tables <= set(report.differences)
    assert "late" in report.summary()
    conn = db.connect(replayed_day.settings.postgres, "reader")
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT late_events, report FROM {}.batch_runs WHERE event_date = %s").format(
                sql.Identifier(replayed_day.schema)
            ),
            (DAY,),
        )
        late, stored = cur.fetchone()
    conn.close()
    assert late == replayed_day.late
    assert stored["tables"]["traffic_minute"]["only_batch"] == 1


def test_hours_and_daily_aggregates_follow_the_batch(
    replayed_day: Day, report: BatchReport
) -> None:
    hours = _rows(replayed_day.settings, replayed_day.schema, "traffic_hour")
    minutes = replayed_day.full["traffic_minute"].values()
    sums: dict[datetime, int] = {}
    for row in minutes:
        hour = row["window_start"].replace(minute=0)
        sums[hour] = sums.get(hour, 0) + row["events"]
    assert {r["window_start"]: r["events"] for r in hours} == sums
    daily = lake.read_daily(replayed_day.settings, "traffic_minute", DAY, DAY)
    assert sorted(daily.column("events").to_pylist()) == sorted(r["events"] for r in minutes)
    users = lake.read_daily(replayed_day.settings, "user_minute", DAY, DAY)
    want = sum(r["events"] for r in replayed_day.full["user_minute"].values())
    assert sum(users.column("events").to_pylist()) == want


def test_recompute_is_idempotent(replayed_day: Day, report: BatchReport, spark: object) -> None:
    again = recompute_day(replayed_day.settings, spark, DAY, now=NOW)  # type: ignore[arg-type]
    assert again.differences == {}
    assert "agree" in again.summary()
    contract = {k: v for k, v in replayed_day.full.items() if k != "activity_minute"}
    assert table_differences(replayed_day.settings, replayed_day.schema, contract) == {}


def test_open_days_and_missing_lakes_are_refused(
    replayed_day: Day, report: BatchReport, spark: object, tmp_path: Path
) -> None:
    early = NOW - timedelta(hours=2)
    with pytest.raises(BatchError, match="not closed"):
        recompute_day(replayed_day.settings, spark, DAY, now=early)  # type: ignore[arg-type]
    no_lake = replayed_day.settings.with_overrides(lake={"path": str(tmp_path / "empty")})
    with pytest.raises(BatchError, match="no events"):
        recompute_day(no_lake, spark, DAY, now=NOW)  # type: ignore[arg-type]
    contract = {k: v for k, v in replayed_day.full.items() if k != "activity_minute"}
    assert table_differences(replayed_day.settings, replayed_day.schema, contract) == {}
    empty = recompute_day(no_lake, spark, date(2020, 1, 1), now=NOW)  # type: ignore[arg-type]
    assert empty.lake_events == 0 and empty.differences == {}


def test_lake_reads_and_compacts_what_the_stream_wrote(
    replayed_day: Day, report: BatchReport
) -> None:
    """Last: it compacts the lake the stream job wrote (through Spark's Parquet writer)."""
    start = datetime(2024, 8, 22, tzinfo=UTC)
    ids = {key[0] for key in replayed_day.full["recent_changes"]}
    before = lake.read_events(replayed_day.settings, start, start + timedelta(days=1))
    assert set(before.column("event_id").to_pylist()) == ids
    assert sum(before.column("is_late").to_pylist()) == replayed_day.late
    result = lake.compact(replayed_day.settings, before=NOW)
    assert result.partitions >= 1 and result.rows > 0
    after = lake.read_events(replayed_day.settings, start, start + timedelta(days=1))
    assert sorted(after.column("event_id").to_pylist()) == sorted(ids)
    assert [(f.name, f.type) for f in after.schema] == [(f.name, f.type) for f in before.schema]
