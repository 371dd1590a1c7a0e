"""One suite over every sink: a batch lands once, a replay of it changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from psycopg2 import sql

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.errors import SinkError
from wiki_lib.lake import readable_files
from wiki_lib.sinks.base import Batch, BatchStats, ListSink, Sink
from wiki_lib.sinks.lake import LakeSink
from wiki_lib.sinks.postgres import PostgresSink

pytestmark = pytest.mark.integration

T0 = datetime(2024, 8, 22, 4, 2, tzinfo=UTC)


def _batch(batch_id: int, events: int, query: str = "q") -> Batch:
    ts = pa.array([T0] * 1, pa.timestamp("us", tz="UTC"))
    traffic = pa.table(
        {
            "window_start": ts,
            "events": [events],
            "edits": [events],
            "new_pages": [0],
            "log_events": [0],
            "categorize_events": [0],
            "other_events": [0],
            "bot_events": [0],
            "human_events": [events],
            "minor_edits": [0],
            "major_edits": [events],
            "bytes_added": [10 * events],
            "bytes_removed": [0],
            "net_bytes": [10 * events],
        }
    )
    lake_events = pa.table(
        {
            "event_id": [f"id-{batch_id}-{i}" for i in range(events)],
            "event_time": pa.array([T0] * events, pa.timestamp("us", tz="UTC")),
            "title": ['Zürich\x00 "quoted", with\nnewline'] * events,
        }
    )
    stats = BatchStats(events, 0, 0, 0, 0, None, T0)
    return Batch(query, batch_id, {"traffic_minute": traffic}, lake_events, stats)


def _pg_events(sink: PostgresSink) -> int:
    conn = db.connect(sink.pg, "reader")
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT coalesce(sum(events), 0) FROM {}.traffic_minute").format(
                sql.Identifier(sink.schema)
            )
        )
        total = int(cur.fetchone()[0])
    conn.close()
    return total


def _lake_events(sink: LakeSink) -> int:
    return sum(pq.read_table(p).num_rows for p in readable_files(sink.root, sink.dataset))


def _list_events(sink: ListSink) -> int:
    return sum(b.tables["traffic_minute"].column("events")[0].as_py() for b in sink.batches)


@pytest.fixture
def schema(settings: Settings, unique: Callable[[str], str]) -> str:
    """A fresh schema with every migration applied."""
    name = unique("sink")
    db.migrate(settings.postgres, name)
    return name


@pytest.fixture(params=["postgres", "lake", "list"])
def sink_case(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path, schema: str
) -> Iterator[tuple[Sink, Callable[[], int]]]:
    if request.param == "postgres":
        pg = PostgresSink(settings.postgres, schema)
        yield pg, lambda: _pg_events(pg)
    elif request.param == "lake":
        lake = LakeSink(tmp_path / "lake")
        yield lake, lambda: _lake_events(lake)
    else:
        memory = ListSink()
        yield memory, lambda: _list_events(memory)


def test_batch_lands_once(sink_case: tuple[Sink, Callable[[], int]]) -> None:
    sink, total = sink_case
    sink.setup()
    try:
        assert not sink.committed("q", 0)
        assert sink.write(_batch(0, 3)) > 0
        assert sink.committed("q", 0)
        assert not sink.committed("q", 1)
        assert not sink.committed("other", 0)
        assert sink.write(_batch(0, 3)) == 0
        assert total() == 3
        sink.write(_batch(1, 2))
        assert total() == 5
    finally:
        sink.close()


def test_postgres_rolls_back_a_failed_batch(settings: Settings, schema: str) -> None:
    sink = PostgresSink(settings.postgres, schema)
    good = _batch(0, 4)
    broken_table = good.tables["traffic_minute"].set_column(
        1,
        "events",
        pa.array([None], pa.int64()),  # violates NOT NULL after the first table
    )
    broken = Batch(
        "q",
        0,
        {
            "traffic_minute": good.tables["traffic_minute"],
            "namespace_minute": pa.table(
                {
                    "window_start": good.tables["traffic_minute"].column("window_start"),
                    "namespace": [0],
                    "events": broken_table.column("events"),
                }
            ),
        },
        None,
        good.stats,
    )
    with pytest.raises(Exception, match="batch 0"):
        sink.write(broken)
    assert not sink.committed("q", 0)
    assert _pg_events(sink) == 0
    sink.write(good)
    assert _pg_events(sink) == 4
    sink.close()


def test_lake_ignores_files_of_uncommitted_batches(tmp_path: Path) -> None:
    sink = LakeSink(tmp_path / "lake")
    sink.setup()
    sink.write(_batch(0, 2))
    stray = tmp_path / "lake" / "raw" / "event_date=2024-08-22" / "event_hour=4"
    pq.write_table(_batch(1, 5).events, stray / "q-000000000001-0.parquet")
    assert _lake_events(sink) == 2
    sink.write(_batch(1, 5))  # the replay replaces the stray file
    assert _lake_events(sink) == 7
    assert len(list(stray.glob("q-000000000001-*.parquet"))) == 1


def test_postgres_commits_a_batch_only_after_its_before_commit_hook(
    settings: Settings, schema: str
) -> None:
    sink = PostgresSink(settings.postgres, schema)
    seen_inside: list[int] = []

    def failing_hook() -> None:
        seen_inside.append(_pg_events(sink))  # another connection: nothing committed yet
        raise OSError("the lake's disk is full")

    with pytest.raises(OSError, match="disk is full"):
        sink.write(_batch(0, 4), before_commit=failing_hook)
    assert seen_inside == [0]
    assert not sink.committed("q", 0)
    assert _pg_events(sink) == 0
    calls: list[bool] = []
    assert sink.write(_batch(0, 4), before_commit=lambda: calls.append(True)) == 1
    assert calls == [True]
    assert sink.committed("q", 0)
    assert _pg_events(sink) == 4
    sink.close()


class _BrokenLake(LakeSink):
    """A lake whose data files are written and then the disk fails before the manifest."""

    def _publish(self, staging: Path, prefix: str) -> list[str]:
        super()._publish(staging, prefix)
        raise OSError("no space left on device")


def test_stream_job_commits_postgres_only_once_the_lake_has_the_batch(
    settings: Settings, schema: str, tmp_path: Path
) -> None:
    """The job writes the lake while PostgreSQL takes the batch; a lake failure undoes both."""
    from wiki_lib.stream.job import StreamJob

    job = StreamJob(settings, None, schema=schema)  # type: ignore[arg-type]  # no Spark needed
    pg = job._pg
    lake = _BrokenLake(tmp_path / "lake")
    lake.setup()
    job._sinks = [lake]
    batch = _batch(0, 3, query="job")
    with pytest.raises(SinkError, match="no space left"):
        job._write_sinks(batch)
    assert not pg.committed("job", 0)
    assert not lake.committed("job", 0)
    assert _pg_events(pg) == 0
    working = LakeSink(tmp_path / "lake")
    job._sinks = [working]
    assert job._write_sinks(batch) >= 0
    assert pg.committed("job", 0) and working.committed("job", 0)
    assert _pg_events(pg) == 3
    assert _lake_events(working) == 3
    pg.close()
