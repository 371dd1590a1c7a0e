"""The raw Parquet lake: every deduplicated event once, partitioned by event date and hour.

Exactly-once is keyed on the micro-batch id. A batch's files are written to a staging
folder, moved into their ``event_date=YYYY-MM-DD/event_hour=HH`` partitions under names that
carry the batch id, and only then is the batch's manifest written (atomically). Readers
trust manifests only, so a crash mid-write leaves files nobody reads, and the replay of that
batch deletes and rewrites them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from wiki_lib.errors import SinkError
from wiki_lib.sinks.base import Batch, Sink

__all__ = [
    "LakeSink",
    "commits_dir",
    "fsync",
    "manifest_path",
    "staging_dir",
    "write_json",
]

_PARTITIONS = ("event_date", "event_hour")


def commits_dir(base: Path, writer: str | None = None) -> Path:
    """The manifests of the dataset folder ``base``: all, or one writer's (a query's).

    The sink and the reader in :mod:`wiki_lib.lake` find the layout here, and only here.
    """
    folder = base / "_commits"
    return folder / writer if writer else folder


def staging_dir(base: Path) -> Path:
    """Where files are written before they are moved into their partitions."""
    return base / "_staging"


def manifest_path(root: Path, dataset: str, query_name: str, batch_id: int) -> Path:
    """Where the manifest of one micro-batch of ``query_name`` is (or will be) written."""
    return commits_dir(root / dataset, query_name) / f"{batch_id:012d}.json"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` atomically and durably (a crash leaves old or new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    fsync(tmp)
    tmp.replace(path)


def fsync(path: Path) -> None:
    """Flush one file's data to disk before it is renamed into sight."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LakeSink(Sink):
    """Writes ``batch.events`` as Parquet under ``root/dataset``, exactly once per batch."""

    name = "lake"

    def __init__(self, root: Path, dataset: str = "raw") -> None:
        self.root = root
        self.dataset = dataset

    @property
    def base(self) -> Path:
        """The dataset folder (hive-style partitions below it)."""
        return self.root / self.dataset

    def setup(self) -> None:
        """Create the dataset folder."""
        self.base.mkdir(parents=True, exist_ok=True)

    def _manifest(self, query_name: str, batch_id: int) -> Path:
        return manifest_path(self.root, self.dataset, query_name, batch_id)

    def committed(self, query_name: str, batch_id: int) -> bool:
        """Whether the batch's manifest exists."""
        return self._manifest(query_name, batch_id).exists()

    def write(self, batch: Batch) -> int:
        """Write the batch's events; a committed batch is left as it is.

        ``batch.events`` may be an Arrow table (written here with pyarrow) or a Spark
        DataFrame (written by Spark's Parquet writer, so a large micro-batch streams from the
        executors to disk instead of passing through the driver's memory).
        """
        if self.committed(batch.query_name, batch.batch_id):
            return 0
        prefix = f"{batch.query_name}-{batch.batch_id:012d}-"
        for stray in self.base.glob(f"event_date=*/event_hour=*/{prefix}*.parquet"):
            stray.unlink()
        staging = staging_dir(self.base) / f"{prefix}{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        events = batch.events
        try:
            if isinstance(events, pa.Table):
                rows = events.num_rows
                if rows:
                    _write_arrow(events, staging)
            elif events is not None:
                rows = _write_spark(events, staging)
            else:
                rows = 0
            files = self._publish(staging, prefix)
            write_json(
                self._manifest(batch.query_name, batch.batch_id),
                {"batch_id": batch.batch_id, "rows": rows, "files": files},
            )
        except OSError as exc:
            raise SinkError(
                f"writing batch {batch.batch_id} to the lake {self.base}: {exc}"
            ) from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return rows

    def _publish(self, staging: Path, prefix: str) -> list[str]:
        """Move staged data files into their partitions under names that carry the batch."""
        files = []
        for i, path in enumerate(sorted(staging.rglob("*.parquet")) if staging.exists() else []):
            rel = path.parent.relative_to(staging) / f"{prefix}{i}.parquet"
            target = self.base / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            fsync(path)
            os.replace(path, target)
            files.append(str(rel))
        return files


def _write_arrow(events: pa.Table, staging: Path) -> None:
    times = events.column("event_time")
    events = events.append_column("event_date", pc.strftime(times, format="%Y-%m-%d"))
    events = events.append_column("event_hour", pc.cast(pc.hour(times), pa.int8()))
    ds.write_dataset(
        events,
        staging,
        format="parquet",
        partitioning=ds.partitioning(
            pa.schema([("event_date", pa.string()), ("event_hour", pa.int8())]), flavor="hive"
        ),
        basename_template="part-{i}.parquet",
        existing_data_behavior="overwrite_or_ignore",
    )


def _write_spark(events: Any, staging: Path) -> int:
    from pyspark.sql import functions as F

    frame = events.withColumn("event_date", F.date_format("event_time", "yyyy-MM-dd")).withColumn(
        "event_hour", F.hour("event_time").cast("tinyint")
    )
    frame.write.mode("overwrite").partitionBy("event_date", "event_hour").parquet(str(staging))
    return sum(pq.ParquetFile(p).metadata.num_rows for p in staging.rglob("*.parquet"))
