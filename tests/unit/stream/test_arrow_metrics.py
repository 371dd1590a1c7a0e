"""The driver's pyarrow tables against their Spark twins: the same columns, types and rows.

The Spark functions are checked against the oracle in ``test_metrics.py``; here each pyarrow
function must give exactly what its Spark twin gives on the same events, on the corpus and on
the awkward lines, whose NULL keys, odd hosts and unknown types are where two engines differ.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa
import pytest
from edge_cases import awkward_lines
from pyspark.sql import DataFrame, SparkSession

from wiki_lib.lake import RAW_SCHEMA
from wiki_lib.stream.arrow_metrics import ARROW_TABLES
from wiki_lib.stream.extra_metrics import EXTRA_TABLES
from wiki_lib.stream.metrics import (
    TABLES,
    deduplicate_static,
    drop_canaries,
    normalize,
    parse_events,
)

SPARK_TABLES = {**TABLES, **EXTRA_TABLES}


def as_arrow(events: DataFrame) -> pa.Table:
    """The events as the stream job hands them to the pyarrow functions (the lake's types)."""
    columns = [name for name in RAW_SCHEMA.names if name in events.columns]
    return events.select(*columns).toArrow().cast(pa.schema([RAW_SCHEMA.field(c) for c in columns]))


def rows(table: pa.Table) -> Counter[tuple[Any, ...]]:
    # (type, value) pairs keep True and 1 apart.
    return Counter(tuple((type(v), v) for v in row.values()) for row in table.to_pylist())


def assert_twins(name: str, events: DataFrame) -> None:
    expected = SPARK_TABLES[name].compute(events).toArrow()
    actual = ARROW_TABLES[name](as_arrow(events))
    assert actual.column_names == expected.column_names
    assert [f.type for f in actual.schema] == [f.type for f in expected.schema]
    assert expected.num_rows, f"Spark computed no {name} rows; the comparison would prove nothing"
    got, want = rows(actual), rows(expected)
    assert got == want, f"arrow-only: {list(got - want)[:2]}, spark-only: {list(want - got)[:2]}"


def test_every_table_has_a_twin() -> None:
    assert ARROW_TABLES.keys() == SPARK_TABLES.keys()


@pytest.mark.parametrize("name", sorted(SPARK_TABLES))
def test_twin_on_the_corpus(name: str, corpus_events: DataFrame) -> None:
    assert_twins(name, corpus_events)


@pytest.mark.parametrize("name", sorted(SPARK_TABLES))
def test_twin_on_awkward_lines(spark: SparkSession, name: str) -> None:
    lines = awkward_lines()
    raw = spark.createDataFrame(
        [(bytearray(v) if v is not None else None,) for v in lines], "value binary"
    )
    assert_twins(name, deduplicate_static(drop_canaries(normalize(parse_events(raw)))))


@pytest.mark.parametrize("name", sorted(SPARK_TABLES))
def test_no_events_give_an_empty_table_of_the_same_shape(
    name: str, corpus_events: DataFrame
) -> None:
    expected = SPARK_TABLES[name].compute(corpus_events.limit(0)).toArrow()
    actual = ARROW_TABLES[name](as_arrow(corpus_events.limit(0)))
    assert actual.num_rows == 0
    assert actual.column_names == expected.column_names
    assert [f.type for f in actual.schema] == [f.type for f in expected.schema]
