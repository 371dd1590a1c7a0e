"""Fixtures of the stream's unit tests: one local Spark and the real corpus, for the package."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from wiki_lib.config import load_settings
from wiki_lib.spark import session
from wiki_lib.stream.metrics import deduplicate_static, drop_canaries, normalize, parse_events
from wiki_lib.testing import oracle

Tables = dict[tuple[Any, ...], dict[str, Any]]


@pytest.fixture(scope="package")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    """A local Spark without Kafka (this overrides the stack-backed session fixture).

    If another module already started a session it is reused and left running for its owner.
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    state_dir = tmp_path_factory.mktemp("wikipulse-state")
    settings = load_settings(spark={"ui_port": 0}, stack={"state_dir": state_dir})
    spark = session(settings, with_kafka=False, app_name="test_metrics")
    try:
        yield spark
    finally:
        spark.stop()


@pytest.fixture(scope="package")
def corpus_files(data_dir: Path) -> list[Path]:
    files = sorted((data_dir / "recentchange").glob("*.jsonl"))
    if not files:
        pytest.fail(f"the recentchange corpus is missing under {data_dir / 'recentchange'}")
    return files


@pytest.fixture(scope="package")
def corpus_lines(corpus_files: list[Path]) -> list[bytes]:
    return oracle.load_events(corpus_files)


@pytest.fixture(scope="package")
def raw_corpus(spark: SparkSession, corpus_files: list[Path]) -> DataFrame:
    text = spark.read.option("lineSep", "\n").text([str(p) for p in corpus_files])
    return text.withColumnRenamed(text.columns[0], "value")


@pytest.fixture(scope="package")
def corpus_events(raw_corpus: DataFrame) -> Iterator[DataFrame]:
    events = deduplicate_static(drop_canaries(normalize(parse_events(raw_corpus)))).cache()
    try:
        yield events
    finally:
        events.unpersist()


@pytest.fixture(scope="package")
def corpus_tables(corpus_lines: list[bytes]) -> dict[str, Tables]:
    return oracle.compute_tables(corpus_lines)
