"""A micro-batch computed on the driver equals the same batch computed by Spark.

The stream job collects a small batch whole and counts, aggregates and quarantines it with
pyarrow (``_driver_batch``); a large one is cached and computed by Spark jobs
(``_spark_batch``). Both are fed here the same static batch, shaped as the job's
``foreachBatch`` receives it: the corpus and the awkward lines (unparseable, canary,
invalid UTF-8, NULL keys), with Kafka positions and a watermark that makes part of it late.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from edge_cases import awkward_lines
from pyspark.sql import DataFrame, SparkSession

from wiki_lib.lake import RAW_SCHEMA
from wiki_lib.sinks.base import Batch
from wiki_lib.stream.job import (
    LAKE_COLUMNS,
    _batch,
    _collect_at_most,
    _driver_batch,
    _flag_late,
    _Parts,
    _spark_batch,
)
from wiki_lib.stream.metrics import parse_events, with_normalized
from wiki_lib.testing import oracle

STARTED = datetime(2026, 1, 1, tzinfo=UTC)
WATERMARK = datetime(2024, 8, 22, 4, 5, tzinfo=UTC)
"""Inside the corpus's span, so that some of its events are late and some are not."""


@pytest.fixture(scope="module")
def batch(spark: SparkSession, corpus_files: list[Path]) -> DataFrame:
    lines = [*oracle.load_events(corpus_files), *awkward_lines()]
    kafka_time = datetime(2026, 1, 1, tzinfo=UTC)
    raw = spark.createDataFrame(
        [
            (None if v is None else bytearray(v), "raw", i % 3, i, kafka_time)
            for i, v in enumerate(lines)
        ],
        "value binary, topic string, source_partition int, source_offset long, "
        "kafka_timestamp timestamp",
    )
    return with_normalized(parse_events(raw)).cache()


@pytest.fixture(scope="module")
def flagged(batch: DataFrame) -> DataFrame:
    """The batch as the Spark path takes it: late events flagged by Spark."""
    return _flag_late(batch, WATERMARK).cache()


def rows(table: pa.Table | None) -> Counter[tuple[Any, ...]]:
    if table is None:
        return Counter()
    return Counter(tuple((type(v), v) for v in row.values()) for row in table.to_pylist())


def lake_rows(events: pa.Table | DataFrame | None) -> Counter[tuple[Any, ...]]:
    if isinstance(events, DataFrame):
        events = events.select(*LAKE_COLUMNS).toArrow().cast(RAW_SCHEMA)
    return rows(events)


def assert_same(actual: Batch, expected: Batch) -> None:
    assert actual.stats == expected.stats
    assert actual.tables.keys() == expected.tables.keys()
    for name, table in actual.tables.items():
        # column names and types; nullability differs between the engines and is not stored
        assert table.column_names == expected.tables[name].column_names, name
        assert table.schema.types == expected.tables[name].schema.types, name
        assert rows(table) == rows(expected.tables[name]), name
    assert lake_rows(actual.events) == lake_rows(expected.events)
    assert actual.quarantine is not None and expected.quarantine is not None
    assert actual.quarantine.column_names == expected.quarantine.column_names
    assert rows(actual.quarantine) == rows(expected.quarantine)


def as_batch(parts: _Parts) -> Batch:
    return _batch("q", 7, parts, STARTED, None, WATERMARK)


def test_the_batch_is_mixed(flagged: DataFrame) -> None:
    """Otherwise the comparisons below would prove little."""
    stats = as_batch(_spark_batch(flagged, "q", 7, cap=0)).stats
    assert stats.rows_invalid >= 5
    assert stats.canaries_dropped >= 1
    assert 0 < stats.rows_late < stats.rows_read - stats.rows_invalid - stats.canaries_dropped


def test_driver_batch_equals_spark_jobs(batch: DataFrame, flagged: DataFrame) -> None:
    collected = _collect_at_most(batch, 100_000, WATERMARK)
    assert collected is not None
    driver = as_batch(_driver_batch(collected, "q", 7))
    assert isinstance(driver.events, pa.Table)
    spark = as_batch(_spark_batch(flagged, "q", 7, cap=0))
    assert isinstance(spark.events, DataFrame)
    assert_same(driver, spark)


def test_driver_batch_equals_spark_collect(batch: DataFrame, flagged: DataFrame) -> None:
    """The Spark path's own small-batch branch: Spark counts, pyarrow aggregates."""
    collected = _collect_at_most(batch, 100_000, WATERMARK)
    assert collected is not None
    spark_collect = as_batch(_spark_batch(flagged, "q", 7, cap=100_000))
    assert isinstance(spark_collect.events, pa.Table)
    assert_same(as_batch(_driver_batch(collected, "q", 7)), spark_collect)


def test_without_a_watermark_nothing_is_late(batch: DataFrame) -> None:
    collected = _collect_at_most(batch, 100_000, None)
    assert collected is not None
    assert as_batch(_driver_batch(collected, "q", 7)).stats.rows_late == 0


def test_a_batch_over_the_cap_is_not_collected(batch: DataFrame) -> None:
    total = batch.count()
    assert _collect_at_most(batch, total - 1, WATERMARK) is None
    whole = _collect_at_most(batch, total, WATERMARK)
    assert whole is not None and whole.num_rows == total
