"""Roll-ups, retention and ``wikipulse maintain`` over the corpus's tables in real PostgreSQL.

The tables are loaded directly from the oracle (no Spark needed to test SQL-only steps).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import query_reference as ref
from psycopg2 import sql

from wiki_lib import db, query
from wiki_lib.cli import main
from wiki_lib.config import Settings
from wiki_lib.maintenance import apply_retention, maintain, rollup, rollup_hours
from wiki_lib.query import QueryError
from wiki_lib.query.tables import FAMILIES, USER, Family
from wiki_lib.sinks.base import Batch, BatchStats
from wiki_lib.sinks.lake import LakeSink
from wiki_lib.sinks.postgres import copy_arrow
from wiki_lib.testing.oracle import compute_tables, deduplicated_events, load_events

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)
END = "2024-08-23T00:00:00+00:00"


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
def corpus_tables(data_dir: Path) -> tuple[dict[str, dict], list[dict[str, Any]]]:
    lines = load_events(sorted((data_dir / "recentchange").glob("*.jsonl")))
    tables = compute_tables(lines)
    events = deduplicated_events(lines)
    tables["activity_minute"] = ref.activity(events)
    return tables, events


@pytest.fixture
def loaded(
    settings: Settings,
    pg_schema: str,
    corpus_tables: tuple[dict[str, dict], list[dict[str, Any]]],
    tmp_path: Path,
) -> Settings:
    """A fresh schema holding the corpus's tables and one progress row of the speed layer."""
    tables, events = corpus_tables
    s = settings.with_overrides(
        postgres={"schema_name": pg_schema},
        stream={"query_name": "q_maintenance"},
        lake={"path": str(tmp_path / "lake")},
    )
    newest = max(e["event_time"] for e in events)
    with db.transaction(s.postgres, "writer") as conn, conn.cursor() as cur:
        for name, rows in tables.items():
            copy_arrow(cur, f'"{pg_schema}"."{name}"', pa.Table.from_pylist(list(rows.values())))
        cur.execute(
            sql.SQL(
                "INSERT INTO {}.pipeline_progress (query_name, batch_id, committed_at, rows_read, "
                "rows_written, rows_late, duplicates_dropped, max_event_time, processing_ms) "
                "VALUES (%s, 0, %s, 1, 1, 0, 0, %s, 1), (%s, 1, %s, 1, 1, 0, 0, %s, 1), "
                "('other', 0, %s, 1, 1, 0, 0, NULL, 1)"
            ).format(sql.Identifier(pg_schema)),
            (
                *("q_maintenance", newest - timedelta(days=40), newest - timedelta(hours=3)),
                *("q_maintenance", newest - timedelta(days=20), newest),
                newest - timedelta(days=50),
            ),
        )
    return s


def _rows(s: Settings, table: str) -> list[dict[str, Any]]:
    conn = db.connect(s.postgres, "reader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT * FROM {}.{}").format(
                    sql.Identifier(s.postgres.schema_name), sql.Identifier(table)
                )
            )
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()


def _expected_hours(
    family: Family, minutes: list[dict[str, Any]], stop: datetime, top_k: int
) -> tuple[dict[tuple[Any, ...], dict[str, Any]], dict[datetime, int]]:
    """The family's hourly rows summed in Python from its minute rows, truncated like the
    roll-up, and each truncated hour's cutoff."""
    sums: dict[tuple[Any, ...], dict[str, Any]] = {}
    hosts: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in minutes:
        hour = _floor_hour(row["window_start"])
        if hour >= stop:
            continue
        key = (hour, *(row[k] for k in family.keys))
        out = sums.setdefault(key, {"window_start": hour, **{k: row[k] for k in family.keys}})
        for c in family.counters:
            out[c] = out.get(c, 0) + row[c]
        if family.host and row["server_name"] is not None:
            host = (row["server_name"], row["project"], row["language"])
            hosts[key] = max(hosts.get(key, host), host)
    if family.host:
        for key, out in sums.items():
            out["server_name"], out["project"], out["language"] = hosts.get(
                key, (None, "other", None)
            )
    cutoffs: dict[datetime, int] = {}
    if family.truncated:
        by_hour: dict[datetime, list[tuple[Any, ...]]] = defaultdict(list)
        for key in sums:
            by_hour[key[0]].append(key)
        kept = {}
        for hour, keys in by_hour.items():
            ranked = sorted(keys, key=lambda k: (-sums[k]["events"], *k[1:]))
            kept.update({k: sums[k] for k in ranked[:top_k]})
            if len(ranked) > top_k:
                cutoffs[hour] = sums[ranked[top_k - 1]]["events"]
        sums = kept
    return sums, cutoffs


@pytest.mark.parametrize("top_k", [1000, 5])
def test_rollups_equal_the_sums_of_their_minutes(loaded: Settings, top_k: int) -> None:
    s = loaded.with_overrides(retention={"top_k_per_hour": top_k})
    start, stop = rollup(s) or (None, None)
    assert start == datetime(2021, 8, 27, 13, tzinfo=UTC)
    assert stop == datetime(2024, 8, 22, 20, tzinfo=UTC)  # newest event 20:35 minus 2 minutes
    cutoff_rows = {r["window_start"]: r for r in _rows(s, "hour_cutoffs")}
    for family in FAMILIES.values():
        want, cutoffs = _expected_hours(family, _rows(s, family.minute), stop, top_k)
        got = {(r["window_start"], *(r[k] for k in family.keys)): r for r in _rows(s, family.hour)}
        assert got == want, family.name
        if family.truncated:
            column = "page_cutoff" if family.name == "page" else "user_cutoff"
            assert {h: r[column] for h, r in cutoff_rows.items() if r[column]} == cutoffs
    assert cutoff_rows, "the busiest corpus hours have more than 5 (and 1000) pages"


def test_rollup_is_incremental_and_idempotent(loaded: Settings) -> None:
    first = rollup(loaded, until=datetime(2021, 9, 20, tzinfo=UTC))
    assert first == (datetime(2021, 8, 27, 13, tzinfo=UTC), datetime(2021, 9, 20, tzinfo=UTC))
    assert {r["window_start"] for r in _rows(loaded, "traffic_hour")} == {
        datetime(2021, 8, 27, 13, tzinfo=UTC),
        datetime(2021, 9, 10, 12, tzinfo=UTC),
    }
    second = rollup(loaded)
    assert second is not None and second[0] == datetime(2021, 9, 20, tzinfo=UTC)
    assert rollup(loaded) is None
    snapshot = {f.hour: _rows(loaded, f.hour) for f in FAMILIES.values()}
    with db.transaction(loaded.postgres, "writer") as conn, conn.cursor() as cur:
        rollup_hours(
            cur,
            loaded.postgres.schema_name,
            datetime(2021, 1, 1, tzinfo=UTC),
            datetime(2024, 8, 22, 20, tzinfo=UTC),
            loaded.retention.top_k_per_hour,
        )
    for table, rows in snapshot.items():
        key = lambda r: json.dumps(r, default=str, sort_keys=True)  # noqa: E731
        assert sorted(_rows(loaded, table), key=key) == sorted(rows, key=key), table


def test_truncated_top_lists_bound_what_they_miss(
    loaded: Settings, corpus_tables: tuple[dict[str, dict], list[dict[str, Any]]]
) -> None:
    _, events = corpus_tables
    s = loaded.with_overrides(retention={"top_k_per_hour": 5})
    rollup(s)
    truth_pages = {(r["wiki"], r["title"]): r["events"] for r in ref.top_pages(events, 10**6)}
    truth_users = {r["user"]: r["events"] for r in ref.top_users(events, 10**6)}
    with query.connect(s) as reader:
        pages = query.top_pages(reader, "1200d", end=END, n=30)
        users = query.top_users(reader, "1200d", end=END, n=30)
    assert pages["max_missing"].max() > 0
    for row in pages.itertuples():
        true = truth_pages[(row.wiki, row.title)]
        assert row.events <= true <= row.events + row.max_missing
    for row in users.itertuples():
        true = truth_users[row.user]
        assert row.events <= true <= row.events + row.max_missing
    # the busiest user of the corpus is busy in every hour it edits: exact despite truncation
    top = max(truth_users, key=lambda u: truth_users[u])
    assert users.iloc[0]["user"] == top and users.iloc[0]["events"] == truth_users[top]


def _count(s: Settings, table: str, column: str, before: datetime | None = None) -> int:
    rows = _rows(s, table)
    return sum(1 for r in rows if before is None or r[column] < before)


def test_retention_removes_only_what_is_older_than_configured(loaded: Settings) -> None:
    now = datetime(2024, 8, 23, 0, 30, tzinfo=UTC)
    s = loaded.with_overrides(
        retention={
            "minute_days": 2,
            "entity_minute_days": 1,
            "hour_days": 400,
            "progress_days": 30,
        },
        stream={"recent_changes_hours": 48},
    )
    minute_horizon = datetime(2024, 8, 21, 0, tzinfo=UTC)
    entity_horizon = datetime(2024, 8, 22, 0, tzinfo=UTC)
    hour_horizon = datetime(2023, 7, 19, 0, tzinfo=UTC)
    rc_horizon = now - timedelta(hours=48)

    # nothing rolled up yet: minute rows stay whatever their age
    minutes_before = {f.minute: len(_rows(s, f.minute)) for f in FAMILIES.values()}
    deleted = apply_retention(s, now=now)
    assert all(deleted[f.minute] == 0 for f in FAMILIES.values())
    assert {f.minute: len(_rows(s, f.minute)) for f in FAMILIES.values()} == minutes_before
    assert deleted["recent_changes"] > 0
    assert _count(s, "recent_changes", "event_time", rc_horizon) == 0
    assert (
        len(_rows(s, "recent_changes"))
        == sum(1 for e in _rows(s, "recent_changes") if e["event_time"] >= rc_horizon)
        > 0
    )

    rollup(s)
    hours_before = {f.hour: _rows(s, f.hour) for f in FAMILIES.values()}
    deleted = apply_retention(s, now=now)
    for family in FAMILIES.values():
        horizon = entity_horizon if family.name in ("page", "user") else minute_horizon
        rows = _rows(s, family.minute)
        assert rows and all(r["window_start"] >= horizon for r in rows), family.name
        assert deleted[family.minute] == minutes_before[family.minute] - len(rows)
        kept_hours = [r for r in hours_before[family.hour] if r["window_start"] >= hour_horizon]
        assert len(_rows(s, family.hour)) == len(kept_hours) > 0
    progress = _rows(s, "pipeline_progress")
    assert sorted((r["query_name"], r["batch_id"]) for r in progress) == [
        ("other", 0),  # the newest row of a query always stays
        ("q_maintenance", 1),
    ]
    seen = _rows(s, "user_last_seen")
    assert deleted["user_last_seen"] > 0
    assert {r["user"] for r in seen} == {r["user"] for r in _rows(s, USER.minute)}
    marks = {r["key"]: r["at"] for r in _rows(s, "serving_state")}
    assert marks["kept_from.user_minute"] == entity_horizon
    assert marks["kept_from.traffic_minute"] == minute_horizon
    assert marks["kept_from.recent_changes"] == rc_horizon

    with query.connect(s) as reader:
        week = query.kpis(reader, "7d", end=END)
        assert week["active_users"].isna().all()  # user_minute no longer covers the week
        assert week["events"].iloc[0] == 2387 + 202  # the hourly tables still do
        with pytest.raises(QueryError, match="retention"):
            query.edits_per_user(reader, "7d", end=END)
        hour = query.kpis(reader, "1h", end="2024-08-22T04:05:00+00:00")
        assert hour["active_users"].iloc[0] > 0


def _lake_with_small_files(root: Path, events: list[dict[str, Any]]) -> None:
    import test_lake

    sink = LakeSink(root)
    sink.setup()
    chosen = [e for e in events if e["event_time"].year == 2021][:600]
    for batch_id, start in enumerate(range(0, len(chosen), 100)):
        chunk = chosen[start : start + 100]
        stats = BatchStats(len(chunk), 0, 0, 0, 0, None, None)
        sink.write(Batch("q", batch_id, {}, test_lake._arrow(chunk, start), stats))


def test_maintain_runs_every_step(
    loaded: Settings, corpus_tables: tuple[dict[str, dict], list[dict[str, Any]]]
) -> None:
    _lake_with_small_files(loaded.lake_path, corpus_tables[1])
    report = maintain(loaded, now=datetime(2024, 8, 23, tzinfo=UTC))
    assert report.rolled == (
        datetime(2021, 8, 27, 13, tzinfo=UTC),
        datetime(2024, 8, 22, 20, tzinfo=UTC),
    )
    assert report.deleted["traffic_minute"] > 0  # default retention: 7 days of minutes
    assert report.compaction is not None and report.compaction.partitions >= 1
    again = maintain(loaded, now=datetime(2024, 8, 23, tzinfo=UTC))
    assert again.rolled is None and not any(again.deleted.values())
    assert again.compaction is not None and again.compaction.partitions == 0


def test_cli_maintain_and_query(
    loaded: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WIKI__POSTGRES__PORT", str(loaded.postgres.port))
    monkeypatch.setenv("WIKI__STREAM__QUERY_NAME", loaded.stream.query_name)
    monkeypatch.setenv("WIKI__STACK__STATE_DIR", str(loaded.stack.state_dir))
    schema = ["--schema", loaded.postgres.schema_name]
    args = ["query", "kpis", "--lookback", "5m", "--end", "2024-08-22T04:05:00Z", "--json"]
    assert main([*args, *schema]) == 0
    assert json.loads(capsys.readouterr().out)[0]["events"] == 2387
    args = ["query", "top_wikis", "--lookback", "5m", "--end", "2024-08-22T04:05Z", "--who", "bot"]
    assert main([*args, "--n", "2", *schema]) == 0
    assert "wikidatawiki" in capsys.readouterr().out
    assert main(["query", "watchlist", "--terms", "Wikidata, ÜBER", "--lookback", "1200d",
                 "--end", END, "--n", "100", "--json", *schema]) == 0  # fmt: skip
    assert len(json.loads(capsys.readouterr().out)) == 39
    assert main(["maintain", "--json", "--no-lake", *schema]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rolled"] is not None and report["compaction"] is None
    # the corpus is older than every default retention (7 days of minutes, 90 of hours)
    assert report["deleted"]["traffic_minute"] > 0 and report["deleted"]["traffic_hour"] > 0
    args = ["query", "kpis", "--lookback", "1h", "--end", "2024-08-22T05:00Z", "--json"]
    assert main([*args, *schema]) == 0
    assert json.loads(capsys.readouterr().out)[0]["events"] == 0
