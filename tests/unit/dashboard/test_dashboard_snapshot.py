"""Pure derivations of a snapshot, and a round against a database that is not there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from wiki_lib import query
from wiki_lib.config import load_settings
from wiki_lib.dashboard.params import ViewParams
from wiki_lib.dashboard.snapshot import (
    Snapshot,
    _Reuse,
    battlefield_filters,
    concentration,
    kpi_tiles,
    take_snapshot,
    term_counts,
)
from wiki_lib.stack._proc import free_port


def _kpis(events: int, bot_share: float, added: int = 2_500_000) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "events": events,
                "edits": events // 2,
                "bytes_added": added,
                "bytes_removed": 500_000,
                "events_per_second": events / 900,
                "bot_share": bot_share,
            }
        ]
    )


def test_tiles_compare_with_the_previous_period() -> None:
    wikis = pd.DataFrame({"wiki": ["enwiki"]})
    tiles = {
        t.key: t
        for t in kpi_tiles(
            _kpis(1200, 0.25), _kpis(1000, 0.20), wikis, pd.DataFrame({"wiki": ["dewiki"]})
        )
    }
    assert tiles["events"].value == 1200 and tiles["events"].change == "+20.0%"
    assert tiles["events"].trend == "up"
    assert tiles["edits"].text == "600"
    assert tiles["bytes_added"].value == 2.5 and tiles["bytes_added"].change == "±0%"
    assert tiles["bot_share"].text == "25.0%" and tiles["bot_share"].change == "+5.0 pts"
    assert tiles["top_wiki"].value == "enwiki" and tiles["top_wiki"].change == "was dewiki"
    assert list(tiles) == [
        "events",
        "edits",
        "bytes_added",
        "bytes_removed",
        "events_per_second",
        "bot_share",
        "top_wiki",
    ]


def test_tiles_without_data_show_dashes() -> None:
    tiles = kpi_tiles(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    assert all(t.text == "-" and t.trend == "none" for t in tiles)
    fresh = {
        t.key: t
        for t in kpi_tiles(_kpis(10, 0.5), _kpis(0, float("nan")), pd.DataFrame(), pd.DataFrame())
    }
    assert fresh["events"].change == "new"
    assert fresh["bot_share"].change == "no previous period"


def test_term_counts_are_case_insensitive_and_complete() -> None:
    matches = pd.DataFrame({"matched": [["Paris"], ["olympics", "Paris"], None]})
    assert term_counts(matches, ("Paris", "Olympics", "Rome")) == {
        "Paris": 2,
        "Olympics": 1,
        "Rome": 0,
    }
    assert term_counts(pd.DataFrame(), ("x",)) == {"x": 0}


def test_concentration_names_the_busiest_tenth() -> None:
    bins = pd.DataFrame(
        {
            "edits_min": [1, 2, 64],
            "edits_max": [1, 3, 127],
            "users": [90, 9, 1],
            "edits": [90, 20, 100],
        }
    )
    text = concentration(bins)
    assert text.startswith("100 users made 210 edits")
    assert "busiest 10" in text and "57%" in text
    assert concentration(pd.DataFrame()) == "No edits in this window."


def test_battlefield_keeps_only_edits_and_creations() -> None:
    assert battlefield_filters(ViewParams()).type == ("edit", "new")
    assert battlefield_filters(ViewParams(types=("new", "log"))).type == ("new",)
    assert battlefield_filters(ViewParams(types=("log",))) is None


def test_an_unreachable_database_is_a_status_not_an_exception() -> None:
    settings = load_settings(postgres={"port": free_port()})
    with query.connect(settings) as reader:
        snapshot = take_snapshot(reader, ViewParams())
    assert snapshot.status == "db_down"
    assert "Database unreachable" in snapshot.message
    assert not snapshot.has_data and snapshot.frames == {}


def test_expensive_panels_are_reused_until_their_time_is_up() -> None:
    t0 = datetime(2024, 8, 22, 4, 0, tzinfo=UTC)
    view = ViewParams(lookback="3h", watch=("Paris",))
    frame = pd.DataFrame({"x": [1]})
    old = Snapshot(
        view,
        "ok",
        frames={"kpis": frame, "pages": frame, "traffic": frame, "watch": frame},
        costs={"kpis": 5.0, "pages": 6.0, "traffic": 0.01, "watch": 2.0},
        fetched={"kpis": t0, "pages": t0, "traffic": t0, "watch": t0},
    )

    def reuse(seconds: float, **changes: object) -> _Reuse:
        return _Reuse(old, view.replace(**changes), t0 + timedelta(seconds=seconds), 0.1)

    assert reuse(59, refresh_s=2.0).frame("pages") == (frame, 6.0, t0)
    assert reuse(61).frame("pages") is None, "a 6 s query is re-run after 60 s"
    assert reuse(1).frame("traffic") is None, "cheap panels are always fresh"
    assert reuse(1).frame("kpis") is None, "kpis decide the window and the status"
    assert reuse(1, lookback="1h").frame("pages") is None, "a new view needs new data"
    assert reuse(1, watch=("Rome",)).frame("pages") is not None, "terms only matter to watch"
    assert reuse(1, watch=("Rome",)).frame("watch") is None
    assert _Reuse(None, view, t0, 0.1).frame("pages") is None
