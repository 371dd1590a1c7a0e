"""The local stack against real processes: lifecycle, Kafka round trip, roles, Spark, 3 brokers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import psycopg2
import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from support import stack_settings

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.stack import LocalStack, scratch_state_dir
from wiki_lib.stack._proc import pid_alive

pytestmark = pytest.mark.integration


def _cli(state_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "WIKI__STACK__STATE_DIR": state_dir,
        "WIKI__STACK__KAFKA_PORT": "0",
        "WIKI__STACK__KAFKA_CONTROLLER_PORT": "0",
        "WIKI__POSTGRES__PORT": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "wiki_lib.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_cli_lifecycle_from_nothing_and_idempotent() -> None:
    state_dir = scratch_state_dir("cli")
    try:
        first = _cli(str(state_dir), "stack", "up")
        assert first.returncode == 0, first.stderr
        assert "started postgres, kafka" in first.stdout
        status = _cli(str(state_dir), "stack", "status", "--json")
        assert status.returncode == 0, status.stderr
        services = json.loads(status.stdout)
        assert {s["name"] for s in services} == {"postgres", "kafka-1"}
        assert all(s["running"] for s in services)
        pids = [s["pid"] for s in services]

        second = _cli(str(state_dir), "stack", "up")
        assert second.returncode == 0, second.stderr
        assert "already running; nothing started" in second.stdout
        again = json.loads(_cli(str(state_dir), "stack", "status", "--json").stdout)
        assert [s["pid"] for s in again] == pids

        down = _cli(str(state_dir), "stack", "down")
        assert down.returncode == 0, down.stderr
        assert "stopped kafka, postgres" in down.stdout
        for pid in pids:
            assert not pid_alive(pid), f"process {pid} survived stack down"
        after = _cli(str(state_dir), "stack", "status")
        assert after.returncode == 3
        assert "STOPPED" in after.stdout
    finally:
        _cli(str(state_dir), "stack", "down", "--purge")
        shutil.rmtree(state_dir, ignore_errors=True)


def _create_topic(bootstrap: str, name: str, partitions: int = 1, rf: int = 1) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(name, partitions, rf, topic_configs={"min.insync.replicas": str(min(rf, 2))})]
        )
    finally:
        admin.close()


def test_kafka_round_trip_byte_for_byte(settings: Settings, unique: Callable[[str], str]) -> None:
    topic = unique("roundtrip")
    _create_topic(settings.kafka.bootstrap, topic)
    payloads = [b"", b"\x00\xff\xfe not utf-8 \x80", "ünïcødé ✓".encode(), os.urandom(4096)]
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    for i, value in enumerate(payloads):
        producer.send(topic, key=str(i).encode(), value=value).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
        enable_auto_commit=False,
    )
    got = [(m.key, m.value) for m in consumer]
    consumer.close()
    assert got == [(str(i).encode(), v) for i, v in enumerate(payloads)]


def test_writer_can_write_reader_cannot(settings: Settings, pg_schema: str) -> None:
    pg = settings.postgres
    writer = db.connect(pg, "writer")
    with writer, writer.cursor() as cur:
        cur.execute(
            f"INSERT INTO {pg_schema}.traffic_minute VALUES "
            "('2024-01-01T00:00:00Z', 1,1,0,0,0,0,0,1,0,1,10,0,10)"
        )
    writer.close()
    reader = db.connect(pg, "reader")
    with reader.cursor() as cur:
        cur.execute(f"SELECT events, bytes_added FROM {pg_schema}.traffic_minute")
        assert cur.fetchall() == [(1, 10)]
    reader.rollback()
    refused = [
        f"INSERT INTO {pg_schema}.traffic_minute "
        "VALUES ('2024-01-01T00:01:00Z',1,1,0,0,0,0,0,1,0,1,1,0,1)",
        f"UPDATE {pg_schema}.traffic_minute SET events = 5",
        f"DELETE FROM {pg_schema}.traffic_minute",
        f"CREATE TABLE {pg_schema}.intruder (x int)",
        f"DROP TABLE {pg_schema}.traffic_minute",
    ]
    for statement in refused:
        with pytest.raises(psycopg2.Error) as info, reader.cursor() as cur:
            cur.execute(statement)
        assert info.value.pgcode in {"42501", "25006"}, (statement, info.value.pgcode)
        reader.rollback()
    with reader.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {pg_schema}.traffic_minute")
        assert cur.fetchone() == (1,)
    reader.close()


def test_migrations_recorded_and_idempotent(settings: Settings, pg_schema: str) -> None:
    assert db.migrate(settings.postgres, pg_schema) == []
    conn = db.connect(settings.postgres, "reader")
    with conn.cursor() as cur:
        cur.execute(f"SELECT version, name FROM {pg_schema}.schema_migrations ORDER BY version")
        rows = cur.fetchall()
    conn.close()
    assert rows[0] == (1, "contract_tables")
    assert len(rows) == len(db.list_migrations())


def test_spark_reads_topic_through_connector(
    settings: Settings, spark: object, unique: Callable[[str], str]
) -> None:
    topic = unique("spark")
    _create_topic(settings.kafka.bootstrap, topic, partitions=2)
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap, acks="all")
    sent = {f"message-{i}".encode() for i in range(25)}
    for value in sent:
        producer.send(topic, value=value)
    producer.flush()
    producer.close()
    df = (
        spark.read.format("kafka")  # type: ignore[attr-defined]
        .option("kafka.bootstrap.servers", settings.kafka.bootstrap)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
    )
    rows = df.select("value", "partition").collect()
    assert {bytes(r["value"]) for r in rows} == sent
    assert len(rows) == len(sent)


def test_three_brokers_survive_one_killed(unique: Callable[[str], str]) -> None:
    state_dir = scratch_state_dir("cluster")
    cluster = LocalStack(stack_settings(state_dir, stack={"kafka_heap": "384m"}), brokers=3)
    try:
        cluster.up()
        bootstrap = cluster.settings.kafka.bootstrap
        assert len(bootstrap.split(",")) == 3
        topic = unique("rf3")
        _create_topic(bootstrap, topic, partitions=3, rf=3)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=10)
        sent = [f"before-{i}".encode() for i in range(300)]
        for value in sent:
            producer.send(topic, value=value)
        producer.flush()
        cluster.kafka.stop_broker(2, kill=True)
        assert not pid_alive(cluster.kafka.node(2).pid)
        after = [f"after-{i}".encode() for i in range(300)]
        for value in after:
            producer.send(topic, value=value)
        producer.flush(timeout=60)
        producer.close()
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=15_000,
            enable_auto_commit=False,
        )
        deadline = time.monotonic() + 60
        got: list[bytes] = []
        while len(got) < len(sent) + len(after) and time.monotonic() < deadline:
            got += [m.value for m in consumer]
        consumer.close()
        assert sorted(got) == sorted(sent + after)
    finally:
        cluster.down(purge=True)
        shutil.rmtree(state_dir, ignore_errors=True)
