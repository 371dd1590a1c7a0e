"""The Spark metric functions against the plain-Python oracle, row for row, value for value.

One local SparkSession (local[2], no UI, no Kafka; see conftest.py) serves the package. The
real corpus is read as static text lines, which is what a Kafka ``value`` column holds; a set
of hand-made awkward lines (``edge_cases.py``) checks the corners the corpus does not reach.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from edge_cases import INVALID_UTF8, awkward_lines
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

from wiki_lib.errors import StreamError
from wiki_lib.stream import metrics
from wiki_lib.stream.metrics import (
    NORMALIZED_COLUMNS,
    TABLES,
    deduplicate_static,
    drop_canaries,
    normalize,
    parse_events,
)
from wiki_lib.testing import oracle

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Tables = dict[str, dict[tuple[Any, ...], dict[str, Any]]]
Outcomes = dict[int, tuple[dict[str, Any] | None, str | None]]

CONTRACT_COLUMNS: dict[str, list[str]] = {
    "traffic_minute": [
        "window_start",
        "events",
        "edits",
        "new_pages",
        "log_events",
        "categorize_events",
        "other_events",
        "bot_events",
        "human_events",
        "minor_edits",
        "major_edits",
        "bytes_added",
        "bytes_removed",
        "net_bytes",
    ],
    "wiki_minute": [
        "window_start",
        "wiki",
        "server_name",
        "project",
        "language",
        "events",
        "edits",
        "new_pages",
        "bot_events",
        "bytes_added",
        "bytes_removed",
    ],
    "namespace_minute": ["window_start", "namespace", "events"],
    "page_minute": ["window_start", "wiki", "title", "events", "bytes_added", "bytes_removed"],
    "user_minute": [
        "window_start",
        "user",
        "events",
        "edits",
        "bot_events",
        "bytes_added",
        "bytes_removed",
    ],
    "recent_changes": [
        "event_id",
        "event_time",
        "wiki",
        "server_name",
        "type",
        "namespace",
        "title",
        "user",
        "is_bot",
        "is_minor",
        "length_delta",
        "comment",
    ],
}


# --- helpers ----------------------------------------------------------------------------------


def collect(df: DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts; timestamps as aware UTC datetimes, whatever the local time zone."""
    stamps = {f.name for f in df.schema.fields if isinstance(f.dataType, TimestampType)}
    selected = [F.unix_micros(F.col(c)).alias(c) if c in stamps else F.col(c) for c in df.columns]
    rows = []
    for row in df.select(*selected).collect():
        record = row.asDict()
        for name in stamps:
            if record[name] is not None:
                record[name] = EPOCH + timedelta(microseconds=record[name])
        rows.append(record)
    return rows


def _typed(row: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    # True == 1 in Python; comparing (type, value) pairs keeps bools and ints apart.
    return {name: (type(value), value) for name, value in row.items()}


def assert_same_table(
    actual: list[dict[str, Any]],
    expected: dict[tuple[Any, ...], dict[str, Any]],
    keys: tuple[str, ...],
) -> None:
    by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in actual:
        key = tuple(row[k] for k in keys)
        assert key not in by_key, f"Spark produced key {key} twice"
        by_key[key] = row
    missing = sorted(map(repr, expected.keys() - by_key.keys()))
    extra = sorted(map(repr, by_key.keys() - expected.keys()))
    assert not missing and not extra, f"missing keys {missing[:5]}, extra keys {extra[:5]}"
    wrong = [
        (key, by_key[key], row)
        for key, row in expected.items()
        if _typed(by_key[key]) != _typed(row)
    ]
    assert not wrong, f"{len(wrong)} rows differ; first (key, spark, oracle): {wrong[:3]}"


def spark_outcomes(spark: SparkSession, lines: list[bytes | None], *, binary: bool) -> Outcomes:
    """Line number -> (normalised event, None) or (None, parse_error), computed by Spark."""
    if binary:
        rows: list[tuple[int, Any]] = [
            (i, None if v is None else bytearray(v)) for i, v in enumerate(lines)
        ]
        raw = spark.createDataFrame(rows, "line_no int, value binary")
    else:
        rows = [(i, None if v is None else v.decode("utf-8")) for i, v in enumerate(lines)]
        raw = spark.createDataFrame(rows, "line_no int, value string")
    parsed = parse_events(raw).cache()
    try:
        outcomes: Outcomes = {}
        dead = parsed.where("parse_error IS NOT NULL").select("line_no", "parse_error")
        for row in dead.collect():
            outcomes[row.line_no] = (None, row.parse_error)
        for record in collect(normalize(parsed).select("line_no", *NORMALIZED_COLUMNS)):
            outcomes[record.pop("line_no")] = (record, None)
    finally:
        parsed.unpersist()
    return outcomes


def oracle_outcomes(lines: list[bytes | None]) -> Outcomes:
    return {i: oracle.normalize_event(line) for i, line in enumerate(lines)}


def assert_same_outcomes(actual: Outcomes, expected: Outcomes, lines: list[bytes | None]) -> None:
    assert actual.keys() == expected.keys()
    wrong = []
    for i, (event, reason) in expected.items():
        got_event, got_reason = actual[i]
        same = got_reason == reason and (
            event is None or (got_event is not None and _typed(got_event) == _typed(event))
        )
        if not same:
            wrong.append((lines[i], actual[i], expected[i]))
    assert not wrong, f"{len(wrong)} lines differ; first (line, spark, oracle): {wrong[:2]}"


# --- the corpus -------------------------------------------------------------------------------


def test_the_corpus_parses_without_dead_letters(raw_corpus: DataFrame) -> None:
    parsed = parse_events(raw_corpus)
    counts = {r.parse_error: r["count"] for r in parsed.groupBy("parse_error").count().collect()}
    assert counts == {None: 5087}


def test_every_corpus_event_normalises_like_the_oracle(
    raw_corpus: DataFrame, corpus_lines: list[bytes]
) -> None:
    rows = collect(normalize(parse_events(raw_corpus)).select(*NORMALIZED_COLUMNS))
    expected = [oracle.normalize_event(line)[0] for line in corpus_lines]
    assert None not in expected

    def as_counter(events: list[Any]) -> Counter[tuple[Any, ...]]:
        return Counter(tuple(_typed(e)[c] for c in NORMALIZED_COLUMNS) for e in events)

    got, want = as_counter(rows), as_counter(expected)
    assert got == want, f"spark-only: {list(got - want)[:2]}, oracle-only: {list(want - got)[:2]}"


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_equals_the_oracle_on_the_corpus(
    name: str,
    corpus_events: DataFrame,
    corpus_tables: Tables,
) -> None:
    compute, keys = TABLES[name]
    expected = corpus_tables[name]
    assert expected, f"the oracle computed no {name} rows; the comparison would prove nothing"
    assert_same_table(collect(compute(corpus_events)), expected, keys)


def test_the_corpus_exercises_the_interesting_rules(corpus_events: DataFrame) -> None:
    facts = corpus_events.agg(
        F.count(F.lit(1)).alias("events"),
        F.count_if(F.col("type") == "other").alias("other"),
        F.count_if(F.col("language").isNull()).alias("no_language"),
        F.count_if(F.col("bytes_removed") > 0).alias("shrinking"),
        F.count_distinct("project").alias("projects"),
    ).first()
    assert facts is not None
    assert facts["events"] == 5045
    assert facts["other"] == 3
    assert facts["no_language"] > 0
    assert facts["shrinking"] > 0
    assert facts["projects"] >= 10


# --- the contract's shape ---------------------------------------------------------------------


def test_tables_are_the_contract_tables_with_their_keys() -> None:
    assert {name: table.keys for name, table in TABLES.items()} == {
        "traffic_minute": ("window_start",),
        "wiki_minute": ("window_start", "wiki"),
        "namespace_minute": ("window_start", "namespace"),
        "page_minute": ("window_start", "wiki", "title"),
        "user_minute": ("window_start", "user"),
        "recent_changes": ("event_id",),
    }


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_columns_and_types(name: str, corpus_events: DataFrame) -> None:
    df = TABLES[name].compute(corpus_events)
    assert df.columns == CONTRACT_COLUMNS[name]
    types = dict(df.dtypes)
    for column in CONTRACT_COLUMNS[name]:
        if column in ("window_start", "event_time"):
            assert types[column] == "timestamp"
        elif column in (
            "events",
            "edits",
            "new_pages",
            "log_events",
            "categorize_events",
            "other_events",
            "bot_events",
            "human_events",
            "minor_edits",
            "major_edits",
            "bytes_added",
            "bytes_removed",
            "net_bytes",
            "length_delta",
        ):
            assert types[column] == "bigint", column
    if "namespace" in types:
        assert types["namespace"] == "int"


def test_normalized_schema(raw_corpus: DataFrame) -> None:
    df = normalize(parse_events(raw_corpus))
    assert df.columns == [*NORMALIZED_COLUMNS, "raw_json"]
    types = dict(df.dtypes)
    assert types["event_time"] == types["window_start"] == "timestamp"
    assert types["is_canary"] == types["is_bot"] == types["is_minor"] == "boolean"
    assert types["namespace"] == "int"
    assert types["length_delta"] == types["bytes_added"] == types["bytes_removed"] == "bigint"


def test_all_is_declared() -> None:
    for name in metrics.__all__:
        assert hasattr(metrics, name), name


# --- awkward input: Spark and the oracle must agree ---------------------------------------------


def test_awkward_lines_match_the_oracle(spark: SparkSession) -> None:
    lines = awkward_lines()
    assert_same_outcomes(spark_outcomes(spark, lines, binary=False), oracle_outcomes(lines), lines)


def test_awkward_binary_values_match_the_oracle(spark: SparkSession) -> None:
    lines = awkward_lines() + INVALID_UTF8
    assert_same_outcomes(spark_outcomes(spark, lines, binary=True), oracle_outcomes(lines), lines)


@pytest.mark.parametrize("name", sorted(TABLES))
def test_tables_on_awkward_lines_match_the_oracle(spark: SparkSession, name: str) -> None:
    lines = awkward_lines()
    lines += lines[:5]  # duplicates
    raw = spark.createDataFrame(
        [(bytearray(v) if v is not None else None,) for v in lines], "value binary"
    )
    events = deduplicate_static(drop_canaries(normalize(parse_events(raw))))
    compute, keys = TABLES[name]
    assert_same_table(collect(compute(events)), oracle.compute_tables(lines)[name], keys)


# --- parse errors and specific rules --------------------------------------------------------------


def _parse_one(spark: SparkSession, value: str | bytes) -> Any:
    if isinstance(value, bytes):
        raw = spark.createDataFrame([(bytearray(value),)], "value binary")
    else:
        raw = spark.createDataFrame([(value,)], "value string")
    (row,) = parse_events(raw).collect()
    return row


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ('{"meta": {"id": "a"', "invalid_json"),
        ("not json at all", "invalid_json"),
        ('{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"},"x":NaN}', "invalid_json"),
        ('[{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"}}]', "not_an_object"),
        ("17", "not_an_object"),
        ('{"type":"edit","meta":{"dt":"2024-08-22T04:03:29Z"}}', "missing_event_id"),
        ('{"meta":{"id":"","dt":"2024-08-22T04:03:29Z"}}', "missing_event_id"),
        ('{"meta":{"id":"a","dt":"soon"},"timestamp":"now"}', "invalid_event_time"),
        (b'{"meta":{"id":"\xff","dt":"2024-08-22T04:03:29Z"}}', "invalid_utf8"),
        ('{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"}}', None),
    ],
)
def test_parse_errors(spark: SparkSession, value: str | bytes, reason: str | None) -> None:
    row = _parse_one(spark, value)
    assert row.parse_error == reason
    expected_raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if reason != "invalid_utf8":
        assert row.raw_json == expected_raw


def test_dead_letters_are_not_normalised(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [("[1]",), ('{"meta":{"id":"ok","dt":"2024-08-22T04:03:29Z"}}',)], "value string"
    )
    assert [r.event_id for r in normalize(parse_events(raw)).collect()] == ["ok"]


def test_a_numeric_type_is_read_as_its_text(spark: SparkSession) -> None:
    row = _parse_one(spark, '{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"},"type":142}')
    assert row.event.type == "142"
    raw = spark.createDataFrame(
        [('{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"},"type":142}',)], "value string"
    )
    assert normalize(parse_events(raw)).first()["type"] == "other"


def test_value_must_be_text_or_bytes(spark: SparkSession) -> None:
    with pytest.raises(StreamError):
        parse_events(spark.createDataFrame([(1,)], "value int"))
    with pytest.raises(StreamError):
        parse_events(spark.createDataFrame([(1,)], "other int"))


def test_other_columns_pass_through(spark: SparkSession) -> None:
    raw = spark.createDataFrame(
        [('{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"}}', 7)], "value string, kafka_offset long"
    )
    row = normalize(parse_events(raw)).first()
    assert row is not None
    assert row["kafka_offset"] == 7
    assert row["raw_json"] == '{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"}}'


def test_deduplicate_static_keeps_the_earliest_event_time(spark: SparkSession) -> None:
    lines = [
        '{"meta":{"id":"d","dt":"2024-08-22T04:05:00Z"},"title":"late"}',
        '{"meta":{"id":"d","dt":"2024-08-22T04:03:00Z"},"title":"early"}',
        '{"meta":{"id":"d","dt":"2024-08-22T04:04:00Z"},"title":"middle"}',
        '{"meta":{"id":"e","dt":"2024-08-22T04:04:00Z"},"title":"alone"}',
    ]
    raw = spark.createDataFrame([(v,) for v in lines], "value string").repartition(3)
    rows = deduplicate_static(normalize(parse_events(raw))).select("event_id", "title").collect()
    assert sorted((r.event_id, r.title) for r in rows) == [("d", "early"), ("e", "alone")]


def test_drop_canaries(spark: SparkSession) -> None:
    lines = [
        '{"meta":{"id":"c","dt":"2024-08-22T04:05:00Z","domain":"canary"}}',
        '{"meta":{"id":"r","dt":"2024-08-22T04:05:00Z","domain":"en.wikipedia.org"}}',
        '{"meta":{"id":"n","dt":"2024-08-22T04:05:00Z"}}',
    ]
    raw = spark.createDataFrame([(v,) for v in lines], "value string")
    kept = drop_canaries(normalize(parse_events(raw))).select("event_id").collect()
    assert sorted(r.event_id for r in kept) == ["n", "r"]


# --- inside a streaming foreachBatch ------------------------------------------------------------


@pytest.mark.parametrize("dedup", ["static_in_batch", "within_watermark_on_stream"])
def test_functions_work_inside_foreach_batch(
    spark: SparkSession,
    corpus_files: list[Path],
    corpus_tables: Tables,
    tmp_path: Path,
    dedup: str,
) -> None:
    """The job's shape: a file stream stands in for Kafka (the first batch holds the corpus)."""
    source = tmp_path / "source"
    source.mkdir()
    for path in corpus_files:
        (source / path.name).write_bytes(path.read_bytes())
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in TABLES}
    batches: list[int] = []

    def per_batch(batch: DataFrame, batch_id: int) -> None:
        batches.append(batch_id)
        events = batch if dedup != "static_in_batch" else deduplicate_static(batch)
        events = events.persist()
        try:
            for name, (compute, _keys) in TABLES.items():
                results[name].extend(collect(compute(events)))
        finally:
            events.unpersist()

    lines = (
        spark.readStream.schema("value string")
        .option("lineSep", "\n")
        .option("pathGlobFilter", "*.jsonl")
        .text(str(source))
    )
    events = drop_canaries(normalize(parse_events(lines)))
    if dedup == "within_watermark_on_stream":
        events = events.withWatermark("event_time", "2 minutes").dropDuplicatesWithinWatermark(
            ["event_id"]
        )
    query = (
        events.writeStream.foreachBatch(per_batch)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(availableNow=True)
        .queryName(f"test_metrics_{dedup}")
        .start()
    )
    try:
        query.awaitTermination(timeout=300)
    finally:
        query.stop()
    assert query.exception() is None
    # A stateful query adds an empty batch once the watermark moves; all data is in batch 0,
    # so a window split across batches would show up below as a duplicate key.
    assert batches[0] == 0
    for name, (_compute, keys) in TABLES.items():
        assert_same_table(results[name], corpus_tables[name], keys)
