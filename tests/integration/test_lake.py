"""Lake reads and compaction over files the real LakeSink wrote from the corpus."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wiki_lib import lake
from wiki_lib.errors import SinkError
from wiki_lib.lake import RAW_SCHEMA, readable_files
from wiki_lib.sinks.base import Batch, BatchStats
from wiki_lib.sinks.lake import LakeSink
from wiki_lib.testing.oracle import deduplicated_events, load_events

pytestmark = pytest.mark.integration


def _arrow(events: list[dict[str, Any]], offset: int) -> pa.Table:
    rows = [
        {
            **{f.name: e.get(f.name) for f in RAW_SCHEMA},
            "is_late": False,
            "kafka_timestamp": e["event_time"],
            "source_partition": 0,
            "source_offset": offset + i,
            "raw_json": json.dumps({"meta": {"id": e["event_id"]}}),
        }
        for i, e in enumerate(events)
    ]
    return pa.Table.from_pylist(rows, schema=RAW_SCHEMA)


def _write(root: Path, events: list[dict[str, Any]], batch_size: int, query: str = "q") -> int:
    sink = LakeSink(root)
    sink.setup()
    batches = 0
    for batch_id, start in enumerate(range(0, len(events), batch_size)):
        chunk = events[start : start + batch_size]
        stats = BatchStats(len(chunk), 0, 0, 0, 0, None, None)
        sink.write(Batch(query, batch_id, {}, _arrow(chunk, start), stats))
        batches += 1
    return batches


@pytest.fixture(scope="module")
def events(data_dir: Path) -> list[dict[str, Any]]:
    return deduplicated_events(load_events(sorted((data_dir / "recentchange").glob("*.jsonl"))))


@pytest.fixture
def root(tmp_path: Path, events: list[dict[str, Any]]) -> Path:
    """A lake with the corpus in batches of 400 events, plus a batch that never committed."""
    _write(tmp_path, events, 400)
    stray = tmp_path / "raw" / "event_date=2024-08-22" / "event_hour=4"
    pq.write_table(_arrow(events[:3], 0), stray / "q-000000009999-0.parquet")
    return tmp_path


def _ids(table: pa.Table) -> list[str]:
    return table.column("event_id").to_pylist()


def _between(events: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict]:
    return sorted(
        (e for e in events if start <= e["event_time"] < end), key=lambda e: e["event_time"]
    )


RANGES = [
    (datetime(2024, 8, 22, 4, 3, tzinfo=UTC), datetime(2024, 8, 22, 4, 4, 10, tzinfo=UTC)),
    (datetime(2021, 8, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    (datetime(2021, 9, 10, 12, tzinfo=UTC), datetime(2021, 9, 10, 13, tzinfo=UTC)),
    (datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC)),
]


@pytest.mark.parametrize(("start", "end"), RANGES)
def test_read_events_returns_the_range_once(
    root: Path, events: list[dict[str, Any]], start: datetime, end: datetime
) -> None:
    table = lake.read_events(root, start, end)
    want = _between(events, start, end)
    assert sorted(_ids(table)) == sorted(e["event_id"] for e in want)
    times = table.column("event_time").to_pylist()
    assert times == sorted(times)
    assert table.schema.names == RAW_SCHEMA.names
    frame = lake.read_events_pandas(root, start.isoformat(), end, columns=["event_id", "wiki"])
    assert list(frame.columns) == ["event_id", "wiki"]
    assert sorted(frame["event_id"]) == sorted(e["event_id"] for e in want)


def test_partition_pruning_opens_only_the_hours_of_the_range(root: Path) -> None:
    start, end = datetime(2024, 8, 22, 4, 10, tzinfo=UTC), datetime(2024, 8, 22, 4, 20, tzinfo=UTC)
    files = lake.readable_files(root, start=start, end=end)
    assert files
    assert {f.parent.relative_to(root / "raw").as_posix() for f in files} == {
        "event_date=2024-08-22/event_hour=4"
    }
    everything = lake.readable_files(root)
    assert len(everything) > len(files)
    assert all(f.exists() for f in everything)


def test_only_committed_files_are_read(root: Path) -> None:
    stray = root / "raw" / "event_date=2024-08-22" / "event_hour=4" / "q-000000009999-0.parquet"
    assert stray.exists()
    assert stray not in lake.readable_files(root)
    table = lake.read_events(root, "2024-08-22T00:00:00+00:00", "2024-08-23T00:00:00+00:00")
    assert max(Counter(_ids(table)).values()) == 1


def test_batch_files_name_the_events_each_batch_wrote(
    root: Path, events: list[dict[str, Any]]
) -> None:
    files = lake.batch_files(root, "q")
    assert sorted(files) == list(range((len(events) + 399) // 400))  # not the stray batch 9999
    for batch_id, paths in files.items():
        written = [i for p in paths for i in _ids(pq.read_table(p, columns=["event_id"]))]
        chunk = events[batch_id * 400 : (batch_id + 1) * 400]
        assert sorted(written) == sorted(e["event_id"] for e in chunk)
    lake.compact(root, before=datetime(2024, 8, 22, 20, 0, tzinfo=UTC), min_files=2)
    after = lake.batch_files(root, "q")
    assert all(p.exists() for paths in after.values() for p in paths)
    assert sum(map(len, after.values())) < sum(map(len, files.values()))
    assert lake.batch_files(root, "another_query") == {}


def test_batch_files_reads_only_the_batches_asked_for(root: Path) -> None:
    every = lake.batch_files(root, "q")
    assert lake.batch_files(root, "q", batch_ids=[2, 0, 2]) == {b: every[b] for b in (0, 2)}
    assert lake.batch_files(root, "q", batch_ids=[len(every) + 5]) == {}  # not committed
    assert lake.batch_files(root, "q", batch_ids=[]) == {}


def _partition_files(root: Path) -> Counter[str]:
    return Counter(f.parent.relative_to(root / "raw").as_posix() for f in lake.readable_files(root))


def test_compaction_merges_each_closed_hour_into_one_file(
    root: Path, events: list[dict[str, Any]]
) -> None:
    before_files = _partition_files(root)
    assert max(before_files.values()) > 1, "the fixture should leave several files per hour"
    result = lake.compact(root, before=datetime(2024, 8, 22, 20, 0, tzinfo=UTC), min_files=2)
    after = _partition_files(root)
    open_hour = "event_date=2024-08-22/event_hour=20"  # ends after `before`: left alone
    assert after[open_hour] == before_files[open_hour]
    for partition, count in after.items():
        if partition != open_hour:
            assert count == 1 if before_files[partition] >= 2 else before_files[partition]
    merged = [p for p, n in before_files.items() if n >= 2 and p != open_hour]
    assert result.partitions == len(merged)
    assert result.files_replaced == sum(before_files[p] for p in merged)
    whole = lake.read_events(root, RANGES[1][0], RANGES[1][1])
    assert sorted(_ids(whole)) == sorted(e["event_id"] for e in events)
    # nothing listed twice or missing once compaction finished
    listed = readable_files(root)
    assert len(listed) == len(set(listed)) and all(p.exists() for p in listed)
    stray = root / "raw" / "event_date=2024-08-22" / "event_hour=4" / "q-000000009999-0.parquet"
    assert stray.exists(), "files of uncommitted batches are not compaction's business"


def test_interrupted_compaction_stays_readable_and_is_finished_later(
    root: Path, events: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(base: Path, replaced: set[str]) -> None:
        raise OSError("killed after the compaction manifest was written")

    monkeypatch.setattr(lake, "_prune", crash)
    with pytest.raises(OSError):
        lake.compact(root, before=datetime(2030, 1, 1, tzinfo=UTC))
    table = lake.read_events(root, RANGES[1][0], RANGES[1][1])
    assert sorted(_ids(table)) == sorted(e["event_id"] for e in events)  # no duplicates
    monkeypatch.undo()
    lake.compact(root, before=datetime(2030, 1, 1, tzinfo=UTC))
    assert max(_partition_files(root).values()) == 1
    listed = readable_files(root)
    assert len(listed) == len(set(listed)) and all(p.exists() for p in listed)


def test_late_files_are_compacted_again(root: Path, events: list[dict[str, Any]]) -> None:
    lake.compact(root, before=datetime(2030, 1, 1, tzinfo=UTC))
    late = [
        {**e, "event_id": f"late-{e['event_id']}"}
        for e in events
        if e["event_time"].hour == 4 and e["event_time"].year == 2024
    ][:50]
    _write(root, late, 20, query="late")
    assert _partition_files(root)["event_date=2024-08-22/event_hour=4"] == 4
    lake.compact(root, before=datetime(2030, 1, 1, tzinfo=UTC))
    assert _partition_files(root)["event_date=2024-08-22/event_hour=4"] == 1
    manifests = [
        json.loads(m.read_text())["files"]
        for m in (root / "raw" / "_commits" / "_compacted").glob("*.json")
    ]
    assert all(len(files) == 1 for files in manifests), "superseded compactions are removed"
    assert len({lake.Partition.of(files[0]) for files in manifests}) == len(manifests)
    table = lake.read_events(root, RANGES[1][0], RANGES[1][1])
    assert len(_ids(table)) == len(set(_ids(table))) == len(events) + len(late)


def test_daily_tables_round_trip(tmp_path: Path) -> None:
    day = date(2024, 8, 22)
    first = pa.table({"window_start": [datetime(2024, 8, 22, 4, tzinfo=UTC)], "events": [3]})
    lake.write_daily(tmp_path, "traffic_minute", day, first)
    second = pa.table({"window_start": [datetime(2024, 8, 22, 5, tzinfo=UTC)], "events": [7]})
    lake.write_daily(tmp_path, "traffic_minute", day, second)  # a rerun replaces the day
    lake.write_daily(tmp_path, "traffic_minute", day + timedelta(days=2), first)
    table = lake.read_daily(tmp_path, "traffic_minute", day, day + timedelta(days=2))
    assert table.column("events").to_pylist() == [7, 3]
    with pytest.raises(SinkError):
        lake.read_daily(tmp_path, "traffic_minute", date(2020, 1, 1), date(2020, 1, 2))
