"""HTML fragments: untrusted text is escaped, links only to plausible hosts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from wiki_lib.dashboard import markup


def _event(**values: object) -> dict[str, object]:
    base = {
        "event_time": pd.Timestamp("2024-08-22T04:03:28Z"),
        "wiki": "enwiki",
        "server_name": "en.wikipedia.org",
        "title": "Cullen, County Tipperary",
        "user": "Declangi",
        "length_delta": 13,
        "comment": "tidy",
    }
    return {**base, **values}


def test_hostile_titles_and_comments_are_escaped() -> None:
    events = pd.DataFrame(
        [
            _event(
                title="<script>alert(1)</script>",
                comment='"><img src=x onerror=alert(2)>',
                user="<b>me</b>",
            )
        ]
    )
    html = markup.event_list(events)
    assert "<script>" not in html and "<img" not in html and "<b>me" not in html
    assert "&lt;script&gt;" in html


def test_page_links_quote_titles_and_refuse_odd_hosts() -> None:
    assert (
        markup.page_url("en.wikipedia.org", "Cullen, County Tipperary")
        == "https://en.wikipedia.org/wiki/Cullen%2C_County_Tipperary"
    )
    assert markup.page_url("en.wikipedia.org", "Talk:A/B (c)").endswith("/wiki/Talk:A/B_(c)")
    assert markup.page_url("javascript:alert(1)//", "x") is None
    assert markup.page_url(None, "x") is None
    html = markup.event_list(pd.DataFrame([_event(server_name='evil.example/"><x')]))
    assert "href" not in html


def test_wiki_names_map_to_hosts() -> None:
    assert markup.server_for_wiki("enwiki") == "en.wikipedia.org"
    assert markup.server_for_wiki("zh_min_nanwiki") == "zh-min-nan.wikipedia.org"
    assert markup.server_for_wiki("dewiktionary") == "de.wiktionary.org"
    assert markup.server_for_wiki("wikidatawiki") == "www.wikidata.org"
    assert markup.server_for_wiki("commonswiki") == "commons.wikimedia.org"
    assert markup.server_for_wiki("wiki") is None


def test_page_table_links_each_page_and_marks_rows() -> None:
    pages = pd.DataFrame(
        [
            {
                "wiki": "wikidatawiki",
                "title": "Q42",
                "events": 3,
                "bytes_added": 10,
                "bytes_removed": 0,
            }
        ]
    )
    html = markup.page_table(pages, {})
    assert 'href="https://www.wikidata.org/wiki/Q42"' in html
    assert html.count('class="wp-page-row"') == 1
    assert ">0</td>" in html
    assert "No page edits" in markup.page_table(pd.DataFrame(), {})


def test_tile_carries_its_raw_value() -> None:
    html = markup.tile_html("events", "Events", "1.2k", "+5.0%", "up", 1234.0)
    assert 'data-key="events"' in html and 'data-value="1234.0"' in html
    assert "wp-trend-up" in html


def test_term_badges_say_when_counts_are_minima() -> None:
    html = markup.term_badges({"Paris": 3, "<x>": 0}, capped=True)
    assert 'data-term="Paris" data-count="3"' in html
    assert "&lt;x&gt;" in html and "≥3" in html


def test_durations_read_naturally() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    assert markup.ago(now - timedelta(seconds=12), now) == "12 s ago"
    assert markup.ago(now - timedelta(minutes=3), now) == "3 min ago"
    assert markup.ago(None, now) == "never"
    assert markup.duration(71_534_978) == "828 days"
    assert markup.banner("warn", []) == ""


def test_bars_sweeper_is_one_hidden_element_with_its_script_in_one_attribute() -> None:
    fragment = markup.bars_sweeper(every_ms=2500)
    assert fragment.startswith('<img class="wp-sweeper" ') and " hidden " in fragment
    handler = fragment.split(' onerror="', 1)[1]
    assert handler.endswith('">') and handler.count('"') == 1  # nothing ends the attribute early
    script = handler[:-2]
    assert "<" not in script and "'" not in script  # quotes and selectors are escaped
    assert "2500" in script and "window.wpBarsSweeper" in script
    assert "g:has(&gt; g.bargroup) &gt; g:not([class]):empty" in script
