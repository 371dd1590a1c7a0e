"""SparkSession factory: local by default, any master by setting, connector jars attached.

The Kafka connector is given to Spark through ``spark.jars`` from the folder that
``wikipulse setup`` filled, so starting a job never downloads anything.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from wiki_lib.config import Settings
from wiki_lib.errors import PrerequisiteError
from wiki_lib.jvm import connector_jars, require_java

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["session"]

_STATE_STORES = {
    "rocksdb": "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "hdfs": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
}
_CHECKPOINTING = "org.apache.spark.sql.execution.streaming.checkpointing"
_CHECKPOINT_FILES = {
    "filesystem": f"{_CHECKPOINTING}.FileSystemBasedCheckpointFileManager",
    "filecontext": f"{_CHECKPOINTING}.FileContextBasedCheckpointFileManager",
}


def session(
    settings: Settings,
    *,
    app_name: str | None = None,
    with_kafka: bool = True,
    conf: dict[str, Any] | None = None,
) -> SparkSession:
    """Build (or reuse) the SparkSession described by ``settings.spark``.

    ``with_kafka=False`` skips the connector for jobs that never touch Kafka (unit tests of
    metric functions, lake reads). Settings tuned for a two-core machine: few shuffle
    partitions, a bounded driver heap, adaptive execution on.
    """
    require_java(settings.jvm.java)
    from pyspark.sql import SparkSession

    spark_cfg = settings.spark
    local_dir = spark_cfg.local_dir or settings.stack.state_dir / "spark-local"
    local_dir.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.master(spark_cfg.master)
        .appName(app_name or spark_cfg.app_name)
        .config("spark.sql.shuffle.partitions", str(spark_cfg.shuffle_partitions))
        .config("spark.default.parallelism", str(spark_cfg.shuffle_partitions))
        .config("spark.driver.memory", spark_cfg.driver_memory)
        .config("spark.local.dir", str(local_dir))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.adaptive.enabled", "true")
        .config(
            "spark.sql.streaming.stateStore.providerClass", _STATE_STORES[spark_cfg.state_store]
        )
        # RocksDB commits write only the batch's changes, not a snapshot of every partition's
        # store (existing checkpoints accept the switch).
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
        # Writes every offset, commit and state file: see SparkSettings.checkpoint_files.
        .config(
            "spark.sql.streaming.checkpointFileManagerClass",
            _CHECKPOINT_FILES[spark_cfg.checkpoint_files],
        )
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        # base64() as RFC 4648 has it, one line; by default Spark breaks it every 76
        # characters with CRLF (MIME), unlike Python's base64 and the producer's dead letters.
        .config("spark.sql.chunkBase64String.enabled", "false")
        # A large batch is cached once and read by eight jobs. Compressing the cache tries
        # every encoding on each of its twenty columns: 4 s of CPU per 250,000 events, more
        # than the reads save (the raw JSON, most of the bytes, hardly compresses).
        .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
        # Spark 4.1.1's Kafka micro-batch stream (DSv2) throws a NullPointerException while
        # reporting progress of the first batch after a restart (SPARK-55271), which kills
        # every recovery from a checkpoint. The V1 Kafka source has the same semantics
        # (offsets, maxOffsetsPerTrigger, availableNow) without that code path.
        .config(
            "spark.sql.streaming.disabledV2MicroBatchReaders",
            "org.apache.spark.sql.kafka010.KafkaSourceProvider",
        )
    )
    if spark_cfg.ui_port:
        builder = builder.config("spark.ui.port", str(spark_cfg.ui_port))
    else:
        builder = builder.config("spark.ui.enabled", "false")
    if with_kafka:
        jars = connector_jars(settings.jvm)
        builder = builder.config("spark.jars", ",".join(str(p) for p in jars))
    for key, value in (conf or {}).items():
        builder = builder.config(key, str(value))
    os.environ.setdefault("PYSPARK_PYTHON", _python())
    if spark_cfg.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.config("spark.driver.host", "127.0.0.1")
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise PrerequisiteError(f"could not start Spark ({spark_cfg.master}): {exc}") from exc
    spark.sparkContext.setLogLevel(spark_cfg.log_level)
    return spark


def _python() -> str:
    import sys

    return sys.executable
