"""Pure parts of wiki_lib.analysis on hand-made frames: every expected number written out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from wiki_lib.analysis import evaluate, history, quality, runs
from wiki_lib.errors import ConfigError

T = datetime(2024, 8, 22, 10, 0, tzinfo=UTC)  # a Thursday


def _events(rows: list[tuple]) -> pd.DataFrame:
    """(minutes after T, type, bot, wiki, title, user, length_delta, late)"""
    return pd.DataFrame(
        [
            {
                "event_id": f"e{i}",
                "event_time": T + timedelta(minutes=m),
                "kafka_timestamp": T + timedelta(minutes=m, seconds=1),
                "type": kind,
                "is_bot": bot,
                "wiki": wiki,
                "server_name": None if wiki is None else f"{wiki[:2]}.wikipedia.org",
                "project": "wikipedia",
                "language": None if wiki is None else wiki[:2],
                "namespace": 0,
                "title": title,
                "user": user,
                "comment": "",
                "length_delta": delta,
                "is_late": late,
            }
            for i, (m, kind, bot, wiki, title, user, delta, late) in enumerate(rows)
        ]
    )


EVENTS = _events(
    [
        (0, "edit", False, "enwiki", "A", "u1", 5, False),
        (0, "edit", True, "enwiki", "A", "bot", -20, False),
        (1, "new", False, "dewiki", "B", "u2", 1500, False),
        (61, "log", True, "enwiki", "C", "u1", 0, False),
        (61, "edit", False, "enwiki", "A", "u3", 0, True),
    ]
)


def test_hour_weekday_table_places_each_event() -> None:
    table = history.activity_by_hour_and_weekday(EVENTS)
    assert table.shape == (24, 7)
    assert (table.loc[10, "Thu"], table.loc[11, "Thu"]) == (3, 2)
    assert int(table.to_numpy().sum()) == 5


def test_top_pages_and_sizes() -> None:
    top = history.top_pages(EVENTS, n=2)
    assert top.to_dict("records") == [
        {"wiki": "enwiki", "title": "A", "edits": 3, "editors": 3},
        {"wiki": "dewiki", "title": "B", "edits": 1, "editors": 1},
    ]
    sizes = dict(history.edit_size_distribution(EVENTS).itertuples(index=False))
    assert sizes["[0, 1)"] == 1 and sizes["[1, 10)"] == 1
    assert sizes["[-100, -10)"] == 1 and sizes["[1000, 10000)"] == 1
    assert sum(sizes.values()) == 4


def test_bot_share_and_new_pages_per_period() -> None:
    bots = history.bot_share_over_time(EVENTS, "1h")
    assert bots["events"].tolist() == [3, 2]
    assert bots["bot_share"].tolist() == [round(1 / 3, 4), 0.5]
    new = history.new_page_rate(EVENTS, "1h")
    assert new["new_pages"].tolist() == [1] and new["per_minute"].tolist() == [round(1 / 60, 3)]


def test_watchlist_hits_match_title_user_and_comment() -> None:
    hits = history.watchlist_hits(EVENTS, ["a", "BOT", " "])
    assert sorted(zip(hits["term"], hits["user"], strict=True)) == [
        ("BOT", "bot"),
        ("a", "bot"),
        ("a", "u1"),
        ("a", "u3"),
    ]
    assert history.hits_by(hits, "wiki").to_dict("records") == [
        {"term": "a", "wiki": "enwiki", "hits": 3},
        {"term": "BOT", "wiki": "enwiki", "hits": 1},
    ]
    assert history.watchlist_hits(EVENTS, ["nowhere"]).empty


def test_day_parsing() -> None:
    assert history.parse_day("2024-08-22") == date(2024, 8, 22)
    assert history.parse_day("") == (datetime.now(UTC) - timedelta(days=1)).date()
    start, end = history.date_range("2024-08-22", "2024-08-23")
    assert (start, end - start) == (datetime(2024, 8, 22, tzinfo=UTC), timedelta(days=2))
    with pytest.raises(ConfigError, match="before it starts"):
        history.date_range("2024-08-23", "2024-08-22")
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        history.parse_day("22/08/2024")


def test_field_rates_flag_impossible_values() -> None:
    bad = _events(
        [
            (0, "142", False, None, None, "u", 3_000_000, False),
            (0, "edit", False, "enwiki", "A", "u", 1, False),
        ]
    )
    bad.loc[0, "event_time"] = T + timedelta(hours=1)  # an hour after it reached Kafka
    table = quality.field_rates(bad).set_index("field")
    assert table.loc["wiki", "null_rate"] == 0.5
    assert table.loc["title", "null_rate"] == 0.5
    assert table.loc["type", "out_of_range_rate"] == 0.5
    assert table.loc["event_time", "out_of_range_rate"] == 0.5
    assert table.loc["length_delta", "out_of_range_rate"] == 0.5
    assert table.loc["user", "null_rate"] == 0.0


def test_throughput_and_percentiles() -> None:
    progress = pd.DataFrame(
        {
            "batch_id": [0, 1],
            "committed_at": [T, T + timedelta(seconds=9)],
            "rows_read": [50, 50],
            "rows_written": [50, 40],
            "processing_ms": [1000, 800],
        }
    )
    assert evaluate.throughput(progress) == {
        "batches": 2,
        "rows_read": 100,
        "rows_written": 90,
        "seconds": 10.0,
        "events_per_s": 10.0,
    }
    assert evaluate.throughput(progress.iloc[0:0])["events_per_s"] == 0
    p = evaluate.percentiles(pd.Series([float(i) for i in range(1, 101)]))
    assert (p["p50"], p["p99"], p["max"], p["count"]) == (50.5, 99.01, 100.0, 100)
    assert evaluate.percentiles(pd.Series(dtype=float)) == {}


def test_run_spec_names_and_defaults() -> None:
    spec = runs.RunSpec.from_parameters(source="replay", duration_s=0, max_events=0)
    assert spec.source.startswith("replay:") and spec.prefix.startswith("run_")
    assert (spec.duration_s, spec.max_events, spec.spark_master) == (None, None, None)
    with pytest.raises(ConfigError, match="prefix"):
        runs.RunSpec(source="synth:10", prefix="Bad-Name")
    sample = runs.RunSample(T, produced=10, end_offsets=10, processed=12, batches=1)
    assert sample.lag == 0
