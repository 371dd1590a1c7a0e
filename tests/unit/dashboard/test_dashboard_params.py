"""The dashboard's view: URL parsing, notebook parameters, filters."""

from __future__ import annotations

import pytest

from wiki_lib.config import load_settings
from wiki_lib.dashboard.app import notebook_view
from wiki_lib.dashboard.params import (
    ViewParams,
    parse_query_string,
    split_list,
    to_query_string,
)


def test_url_sets_every_control() -> None:
    parsed = parse_query_string(
        "?lookback=1h&refresh=10&wiki=enwiki,dewiki&project=wikipedia&language=en"
        "&bot=human&namespace=0,14&type=edit,other&top=20&end=latest&watch=Paris,%20Olympics"
    )
    assert parsed.warnings == ()
    view = parsed.params
    assert view.lookback == "1h"
    assert view.refresh_s == 10 and not view.paused
    assert view.wiki == ("enwiki", "dewiki")
    assert view.project == ("wikipedia",)
    assert view.language == ("en",)
    assert view.bot is False
    assert view.namespace == (0, 14)
    assert view.types == ("edit", "other")
    assert view.top_n == 20
    assert view.end == "latest"
    assert view.watch == ("Paris", "Olympics")


def test_equivalent_lookbacks_map_to_the_offered_ones() -> None:
    assert parse_query_string("lookback=60m").params.lookback == "1h"
    assert parse_query_string("lookback=15min").params.lookback == "15m"
    assert parse_query_string("lookback=1440m").params.lookback == "24h"


@pytest.mark.parametrize(
    ("query", "warning"),
    [
        ("lookback=2m", "lookback"),
        ("lookback=soon", "lookback"),
        ("bot=robots", "bot"),
        ("namespace=main", "namespace"),
        ("type=vandalism", "unknown type"),
        ("project=myspace", "unknown project"),
        ("end=yesterday", "end="),
        ("top=many", "top="),
        ("refresh=often", "refresh="),
        ("schema=other", "unknown URL parameter"),
    ],
)
def test_bad_values_are_reported_not_raised(query: str, warning: str) -> None:
    base = ViewParams(lookback="5m", top_n=10)
    parsed = parse_query_string(query, base)
    assert any(warning in w for w in parsed.warnings), parsed.warnings
    assert parsed.params.lookback == "5m"
    assert parsed.params.top_n == 10


def test_refresh_is_clamped_and_can_pause() -> None:
    assert parse_query_string("refresh=1").params.refresh_s == 2
    assert parse_query_string("refresh=600").params.refresh_s == 60
    assert parse_query_string("refresh=pause").params.interval_s is None
    assert parse_query_string("refresh=0").params.paused


def test_type_other_means_external_and_unknown() -> None:
    filters = ViewParams(types=("edit", "other"), bot=True, namespace=(0,)).filters()
    assert filters.type == ("edit", "external", "other")
    assert filters.bot is True
    assert filters.namespace == (0,)
    assert ViewParams().filters().dimensions == frozenset()


def test_query_string_round_trip() -> None:
    view = ViewParams(
        lookback="3h",
        wiki=("enwiki",),
        bot=False,
        namespace=(0, 14),
        types=("new",),
        top_n=20,
        end="2024-08-22T04:05:00Z",
        watch=("Paris",),
        paused=True,
    )
    text = to_query_string(view)
    assert parse_query_string(text).params == view
    assert to_query_string(ViewParams()) == ""


def test_split_list_drops_blanks_and_repeats() -> None:
    assert split_list(" enwiki, ,dewiki,enwiki ,") == ("enwiki", "dewiki")


def test_url_wins_over_notebook_parameters_which_win_over_settings() -> None:
    settings = load_settings(dashboard={"refresh_s": 7})
    view, warnings = notebook_view(
        settings,
        "lookback=1h&bot=bot",
        lookback="5m",
        wiki="enwiki",
        bot="human",
        refresh_s=0.0,
        types="",
        top_n=10,
        end="",
        watch="",
        paused=False,
    )
    assert warnings == ()
    assert view.lookback == "1h"
    assert view.bot is True
    assert view.wiki == ("enwiki",)
    assert view.refresh_s == 7
    paused, _ = notebook_view(settings, "", paused=True, refresh_s=30.0)
    assert paused.paused
    assert notebook_view(settings, "", refresh_s=30.0)[0].refresh_s == 30
