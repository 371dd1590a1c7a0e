"""Plain helpers for tests (not fixtures): where the corpus is, throw-away stack settings."""

from __future__ import annotations

import os
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from wiki_lib.config import Settings, load_settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():
    SHARED = Path(os.environ.get("WIKIPULSE_SHARED", "/work/shared"))
DATA = SHARED / "data"


def stack_settings(state_dir: Path, **sections: dict) -> Settings:
    """Settings for a throw-away stack on free ports, independent of the caller's env."""
    base = {
        "stack": {"state_dir": str(state_dir), "kafka_port": 0, "kafka_controller_port": 0},
        "postgres": {"port": 0},
        "spark": {"ui_port": 0, "shuffle_partitions": 2},
    }
    for key, values in sections.items():
        base[key] = {**base.get(key, {}), **values}
    return load_settings(**base)


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to its current end."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} not found"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[ConsumerRecord] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"reading {topic} timed out"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
