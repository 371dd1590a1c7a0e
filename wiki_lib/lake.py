"""The Parquet lake for notebooks and the batch layer: committed files only, pruned by hour.

The raw dataset is written by :class:`~wiki_lib.sinks.lake.LakeSink`: hive partitions
``event_date=YYYY-MM-DD/event_hour=H`` and one manifest per committed micro-batch under
``raw/_commits/<query>/``. Readers here trust manifests only, so files of a batch that crashed
before committing are never read, and they open only the partitions a time range touches.

Compaction merges the many small files of a closed hour into one. It writes the new file,
then a compaction manifest under ``raw/_commits/_compacted/`` that lists the new file and the
files it ``replaces`` (the switch: from then on :func:`readable_files` reads the new file
instead of the old ones), then drops the old files from the batch manifests and deletes
them. A crash at any point leaves a readable lake; the next run finishes the job.

Daily aggregates of the batch layer live beside it: ``daily/<table>/event_date=D/``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from wiki_lib.config import Settings
from wiki_lib.errors import SinkError
from wiki_lib.sinks.lake import commits_dir, fsync, manifest_path, staging_dir, write_json

__all__ = [
    "RAW",
    "RAW_SCHEMA",
    "CompactionResult",
    "Partition",
    "batch_files",
    "compact",
    "read_daily",
    "read_events",
    "read_events_pandas",
    "readable_files",
    "write_daily",
]

RAW = "raw"
_DAILY = "daily"
_COMPACTED = "_compacted"
_HOUR = timedelta(hours=1)
_BATCH_ROWS = 200_000


@dataclass(frozen=True, order=True)
class Partition:
    """One hive partition of the raw dataset: an event date and hour."""

    day: date
    hour: int

    @property
    def start(self) -> datetime:
        """The first instant of the partition (UTC)."""
        return datetime(self.day.year, self.day.month, self.day.day, self.hour, tzinfo=UTC)

    @property
    def path(self) -> str:
        """The partition folder relative to the dataset."""
        return f"event_date={self.day.isoformat()}/event_hour={self.hour}"

    @classmethod
    def of(cls, relative: str) -> Partition:
        """The partition a dataset-relative file path lies in."""
        parts = dict(p.split("=", 1) for p in Path(relative).parts[:-1] if "=" in p)
        try:
            return cls(date.fromisoformat(parts["event_date"]), int(parts["event_hour"]))
        except (KeyError, ValueError) as exc:
            raise SinkError(
                f"lake file {relative} is not in an event_date/event_hour partition"
            ) from exc


def _root(where: Settings | Path) -> Path:
    return where.lake_path if isinstance(where, Settings) else Path(where)


def _aware(moment: datetime | str) -> datetime:
    value = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _manifests(base: Path) -> Iterator[tuple[Path, dict]]:
    for manifest in sorted(commits_dir(base).glob("*/*.json")):
        yield manifest, json.loads(manifest.read_text())


def _committed(base: Path) -> list[str]:
    """Dataset-relative files of every manifest, minus what compactions replaced."""
    files: list[str] = []
    replaced: set[str] = set()
    for _, entry in _manifests(base):
        files += entry["files"]
        replaced.update(entry.get("replaces", ()))
    return [f for f in dict.fromkeys(files) if f not in replaced]


def batch_files(
    where: Settings | Path,
    query_name: str,
    dataset: str = RAW,
    *,
    batch_ids: Iterable[int] | None = None,
) -> dict[int, list[Path]]:
    """The files each committed micro-batch of ``query_name`` wrote, by batch id.

    Links an event to the batch (and so the commit) that made it visible. Files a compaction
    has merged since belong to no batch any more and are left out. ``batch_ids`` reads only
    those batches' manifests (the ones not committed are left out), for a caller that follows
    a running query and must not read its whole history on every look.
    """
    root = _root(where)
    base = root / dataset
    if batch_ids is None:
        manifests = sorted(commits_dir(base, query_name).glob("*.json"))
    else:
        wanted = (manifest_path(root, dataset, query_name, b) for b in sorted(set(batch_ids)))
        manifests = [m for m in wanted if m.exists()]
    found: dict[int, list[Path]] = {}
    for manifest in manifests:
        entry = json.loads(manifest.read_text())
        paths = [base / rel for rel in entry["files"]]
        found[int(entry["batch_id"])] = [p for p in paths if p.exists()]
    return found


def readable_files(
    where: Settings | Path,
    dataset: str = RAW,
    *,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> list[Path]:
    """The committed files a reader may read, optionally only partitions meeting [start, end).

    Compactions are honoured: a file and the compacted file that replaced it are never both
    returned.
    """
    base = _root(where) / dataset
    lo = _aware(start) if start is not None else None
    hi = _aware(end) if end is not None else None
    chosen = []
    for rel in _committed(base):
        part = Partition.of(rel)
        if (hi is None or part.start < hi) and (lo is None or part.start + _HOUR > lo):
            chosen.append(base / rel)
    return chosen


def read_events(
    where: Settings | Path,
    start: datetime | str,
    end: datetime | str,
    *,
    columns: list[str] | None = None,
) -> pa.Table:
    """Raw events with ``start <= event_time < end``, in event-time order, as Arrow.

    Every event the stream deduplicated is there once, late ones included (``is_late``), with
    its verbatim JSON (``raw_json``). Only partitions of the range are opened.
    """
    lo, hi = _aware(start), _aware(end)
    files = readable_files(where, start=lo, end=hi)
    if not files:
        return RAW_SCHEMA.empty_table().select(columns or RAW_SCHEMA.names)
    dataset = ds.dataset([str(f) for f in files], format="parquet")
    stamp = dataset.schema.field("event_time").type
    time = ds.field("event_time")
    table = dataset.to_table(
        columns=columns,
        filter=(time >= pa.scalar(lo, type=stamp)) & (time < pa.scalar(hi, type=stamp)),
    )
    if "event_time" in table.column_names:
        table = table.sort_by([("event_time", "ascending")])
    return table


def read_events_pandas(
    where: Settings | Path,
    start: datetime | str,
    end: datetime | str,
    *,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """:func:`read_events` as a pandas DataFrame (timestamps in UTC)."""
    return read_events(where, start, end, columns=columns).to_pandas()


RAW_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("type", pa.string()),
        ("is_bot", pa.bool_()),
        ("is_minor", pa.bool_()),
        ("wiki", pa.string()),
        ("server_name", pa.string()),
        ("project", pa.string()),
        ("language", pa.string()),
        ("namespace", pa.int32()),
        ("title", pa.string()),
        ("user", pa.string()),
        ("comment", pa.string()),
        ("length_delta", pa.int64()),
        ("bytes_added", pa.int64()),
        ("bytes_removed", pa.int64()),
        ("is_late", pa.bool_()),
        ("kafka_timestamp", pa.timestamp("us", tz="UTC")),
        ("source_partition", pa.int32()),
        ("source_offset", pa.int64()),
        ("raw_json", pa.string()),
    ]
)
"""The raw lake's columns in the stream job's order, with the types pyarrow reads from its files."""


# --- daily aggregates -----------------------------------------------------------------------------


def _daily_file(root: Path, table: str, day: date) -> Path:
    return root / _DAILY / table / f"event_date={day.isoformat()}" / "part-0.parquet"


def write_daily(where: Settings | Path, table: str, day: date, data: pa.Table) -> Path:
    """Store a batch-layer table of ``day``, atomically replacing an earlier run's."""
    target = _daily_file(_root(where), table, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(data, tmp)
        fsync(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SinkError(f"writing the daily {table} of {day} to {target}: {exc}") from exc
    return target


def read_daily(where: Settings | Path, table: str, first: date, last: date) -> pa.Table:
    """A batch-layer table for the days ``first`` to ``last`` (inclusive), days in order."""
    root = _root(where)
    files = [
        _daily_file(root, table, first + timedelta(days=i)) for i in range((last - first).days + 1)
    ]
    present = [str(f) for f in files if f.exists()]
    if not present:
        raise SinkError(f"no daily {table} in {root / _DAILY} between {first} and {last}")
    return pa.concat_tables(pq.read_table(f) for f in present)


# --- compaction -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompactionResult:
    """What one compaction run did."""

    partitions: int
    files_replaced: int
    rows: int


def compact(
    where: Settings | Path,
    *,
    before: datetime,
    min_files: int = 2,
    dataset: str = RAW,
) -> CompactionResult:
    """Merge the committed files of every hour partition that ended by ``before``.

    Partitions with fewer than ``min_files`` files are left alone. First finishes whatever an
    interrupted earlier run left (pruning manifests, deleting replaced or orphaned files).
    """
    base = _root(where) / dataset
    if not commits_dir(base).exists():
        return CompactionResult(0, 0, 0)
    _finish_pending(base)
    by_partition: dict[Partition, list[str]] = {}
    for rel in _committed(base):
        by_partition.setdefault(Partition.of(rel), []).append(rel)
    limit = _aware(before)
    partitions = files = rows = 0
    for part, rels in sorted(by_partition.items()):
        if len(rels) < min_files or part.start + _HOUR > limit:
            continue
        rows += _compact_partition(base, part, rels)
        partitions += 1
        files += len(rels)
    return CompactionResult(partitions, files, rows)


def _compact_partition(base: Path, part: Partition, rels: list[str]) -> int:
    token = uuid.uuid4().hex
    new_rel = f"{part.path}/compacted-{token}.parquet"
    staging = staging_dir(base) / f"compact-{token}.parquet"
    staging.parent.mkdir(parents=True, exist_ok=True)
    # Files of different micro-batches may disagree on nullability (Spark marks a column
    # non-null when a batch's plan proves it); the merged file admits nulls everywhere.
    schema = pa.schema([f.with_nullable(True) for f in pq.read_schema(base / rels[0])])
    rows = 0
    try:
        with pq.ParquetWriter(staging, schema) as writer:
            pending: list[pa.Table] = []
            size = 0
            for rel in rels:
                table = pq.read_table(base / rel).select(schema.names).cast(schema)
                pending.append(table)
                size += table.num_rows
                if size >= _BATCH_ROWS:
                    writer.write_table(pa.concat_tables(pending))
                    rows, pending, size = rows + size, [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending))
                rows += size
        fsync(staging)
        os.replace(staging, base / new_rel)
        manifest = commits_dir(base, _COMPACTED) / f"{part.day}T{part.hour:02d}-{token}.json"
        write_json(manifest, {"files": [new_rel], "replaces": rels, "rows": rows})
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise SinkError(f"compacting {base / part.path}: {exc}") from exc
    _prune(base, set(rels))
    return rows


def _finish_pending(base: Path) -> None:
    """Complete interrupted compactions and remove files no manifest will ever name."""
    replaced: set[str] = set()
    for _, entry in _manifests(base):
        replaced.update(entry.get("replaces", ()))
    if replaced:
        _prune(base, replaced)
    referenced = set(_committed(base))
    for orphan in base.glob("event_date=*/event_hour=*/compacted-*.parquet"):
        if str(orphan.relative_to(base)) not in referenced:
            orphan.unlink(missing_ok=True)
    stale = datetime.now(UTC).timestamp() - _HOUR.total_seconds()
    for leftover in staging_dir(base).glob("compact-*.parquet"):
        if leftover.stat().st_mtime < stale:
            leftover.unlink(missing_ok=True)


def _prune(base: Path, replaced: set[str]) -> None:
    """Drop ``replaced`` from every manifest that still lists them, then delete the files."""
    for manifest, entry in _manifests(base):
        kept = [f for f in entry["files"] if f not in replaced]
        if kept == entry["files"]:
            continue
        if manifest.parent.name == _COMPACTED and not kept:
            manifest.unlink()  # a compacted file that a later compaction replaced
        else:
            write_json(manifest, {**entry, "files": kept})
    for rel in replaced:
        (base / rel).unlink(missing_ok=True)
