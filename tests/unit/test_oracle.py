"""The plain-Python oracle against hand-computed expectations, one contract rule at a time.

The oracle is what the Spark metrics are checked against, so it is itself checked here with
small events whose right answer is written out by hand (no Spark involved).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from wiki_lib.testing import oracle

_MISSING = object()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def event(meta: dict[str, Any] | None = None, **fields: Any) -> bytes:
    """A valid enwiki edit, with fields replaced (``_MISSING`` removes a field)."""
    body: dict[str, Any] = {
        "$schema": "/mediawiki/recentchange/1.0.0",
        "meta": {
            "id": "11111111-1111-1111-1111-111111111111",
            "dt": "2024-08-22T04:03:29Z",
            "domain": "en.wikipedia.org",
            "stream": "mediawiki.recentchange",
        },
        "type": "edit",
        "namespace": 0,
        "title": "Example",
        "comment": "fix",
        "timestamp": 1724299409,
        "user": "Alice",
        "bot": False,
        "minor": False,
        "length": {"old": 100, "new": 130},
        "server_name": "en.wikipedia.org",
        "wiki": "enwiki",
    }
    for key, value in (meta or {}).items():
        if value is _MISSING:
            body["meta"].pop(key, None)
        else:
            body["meta"][key] = value
    for key, value in fields.items():
        if value is _MISSING:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body).encode()


def norm(raw: bytes | str | None) -> dict[str, Any]:
    result, reason = oracle.normalize_event(raw)
    assert reason is None, reason
    assert result is not None
    return result


def reason(raw: bytes | str | None) -> str | None:
    result, why = oracle.normalize_event(raw)
    assert (result is None) == (why is not None)
    return why


# --- one event -----------------------------------------------------------------------------


def test_a_plain_edit_is_normalised_field_by_field() -> None:
    ev = norm(event())
    assert ev == {
        "event_id": "11111111-1111-1111-1111-111111111111",
        "event_time": utc(2024, 8, 22, 4, 3, 29),
        "window_start": utc(2024, 8, 22, 4, 3),
        "is_canary": False,
        "type": "edit",
        "is_bot": False,
        "is_minor": False,
        "wiki": "enwiki",
        "server_name": "en.wikipedia.org",
        "project": "wikipedia",
        "language": "en",
        "namespace": 0,
        "title": "Example",
        "user": "Alice",
        "comment": "fix",
        "length_delta": 30,
        "bytes_added": 30,
        "bytes_removed": 0,
    }


@pytest.mark.parametrize(
    ("server_name", "project", "language"),
    [
        ("en.wikipedia.org", "wikipedia", "en"),
        ("zh-min-nan.wikipedia.org", "wikipedia", "zh-min-nan"),
        ("simple.wikipedia.org", "wikipedia", "simple"),
        ("be-tarask.wikipedia.org", "wikipedia", "be-tarask"),
        ("en.m.wikipedia.org", "wikipedia", "en"),
        ("fr.wiktionary.org", "wiktionary", "fr"),
        ("ja.wikibooks.org", "wikibooks", "ja"),
        ("pl.wikinews.org", "wikinews", "pl"),
        ("zh.wikiquote.org", "wikiquote", "zh"),
        ("as.wikisource.org", "wikisource", "as"),
        ("en.wikiversity.org", "wikiversity", "en"),
        ("en.wikivoyage.org", "wikivoyage", "en"),
        ("www.wikidata.org", "wikidata", None),
        ("test.wikidata.org", "wikidata", None),
        ("foo.wikidata.org", "other", None),
        ("commons.wikimedia.org", "commons", None),
        ("meta.wikimedia.org", "meta", None),
        ("species.wikimedia.org", "species", None),
        ("incubator.wikimedia.org", "incubator", None),
        ("wikimania.wikimedia.org", "wikimedia", None),
        ("ru.wikimedia.org", "wikimedia", None),
        ("a.commons.wikimedia.org", "wikimedia", None),
        ("www.mediawiki.org", "mediawiki", None),
        ("test.mediawiki.org", "other", None),
        ("www.wikifunctions.org", "wikifunctions", None),
        ("wikifunctions.org", "other", None),
        ("wikipedia.org", "other", None),
        (".wikipedia.org", "other", None),
        ("en..wikipedia.org", "other", None),
        ("en.wikipedia.org.example.com", "other", None),
        ("en.wikipedia.com", "other", None),
        ("EN.WIKIPEDIA.ORG", "other", None),
        ("wikimedia.org", "other", None),
        ("", "other", None),
        (_MISSING, "other", None),
    ],
)
def test_project_and_language_follow_the_host_table(
    server_name: Any, project: str, language: str | None
) -> None:
    ev = norm(event(server_name=server_name))
    assert (ev["project"], ev["language"]) == (project, language)


@pytest.mark.parametrize(
    ("kind", "length", "delta"),
    [
        ("edit", {"old": 100, "new": 130}, 30),
        ("edit", {"old": 130, "new": 100}, -30),
        ("edit", {"new": 40}, 40),
        ("edit", {"old": 40}, -40),
        ("edit", {}, 0),
        ("edit", _MISSING, 0),
        ("edit", {"old": 5, "new": None}, -5),
        ("new", {"new": 2500}, 2500),
        ("new", _MISSING, 0),
        ("log", {"old": 1, "new": 900}, 0),
        ("categorize", {"old": 1, "new": 900}, 0),
        ("external", {"old": 1, "new": 900}, 0),
        ("142", {"old": 1, "new": 900}, 0),
        ("edit", {"old": 2**31, "new": 10}, 10),
        ("edit", {"old": 1, "new": 10.0}, -1),
        ("edit", {"old": "1", "new": 10}, 10),
        ("edit", {"old": True, "new": 10}, 10),
        ("edit", [{"old": 1, "new": 10}], 0),
    ],
)
def test_length_delta_per_type_and_missing_sides(kind: str, length: Any, delta: int) -> None:
    ev = norm(event(type=kind, length=length))
    assert ev["length_delta"] == delta
    assert ev["bytes_added"] == max(delta, 0)
    assert ev["bytes_removed"] == max(-delta, 0)


@pytest.mark.parametrize(
    ("given", "kind"),
    [
        ("edit", "edit"),
        ("new", "new"),
        ("log", "log"),
        ("categorize", "categorize"),
        ("external", "external"),
        ("142", "other"),
        (142, "other"),
        ("Edit", "other"),
        ("", "other"),
        (None, "other"),
        (_MISSING, "other"),
    ],
)
def test_type_mapping(given: Any, kind: str) -> None:
    assert norm(event(type=given))["type"] == kind


def test_bot_and_minor_default_to_false_and_only_booleans_count() -> None:
    assert norm(event(bot=_MISSING, minor=_MISSING))["is_bot"] is False
    assert norm(event(bot=_MISSING, minor=_MISSING))["is_minor"] is False
    assert norm(event(bot=True, minor=True))["is_bot"] is True
    assert norm(event(bot=True, minor=True))["is_minor"] is True
    assert norm(event(bot="true"))["is_bot"] is False
    assert norm(event(bot=1))["is_bot"] is False


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        ("2024-08-22T04:03:29Z", utc(2024, 8, 22, 4, 3, 29)),
        ("2026-02-26T10:00:00.123Z", utc(2026, 2, 26, 10, 0, 0, 123000)),
        ("2026-02-26T10:00:00.1Z", utc(2026, 2, 26, 10, 0, 0, 100000)),
        ("2026-02-26T10:00:00.123456789Z", utc(2026, 2, 26, 10, 0, 0, 123456)),
        ("2024-08-22T06:03:29+02:00", utc(2024, 8, 22, 4, 3, 29)),
        ("2024-08-21T22:33:29.5-05:30", utc(2024, 8, 22, 4, 3, 29, 500000)),
        ("2024-08-22T00:03:29-00:00", utc(2024, 8, 22, 0, 3, 29)),
        ("2024-08-22T22:03:29+18:00", utc(2024, 8, 22, 4, 3, 29)),
        ("2024-02-29T00:00:00Z", utc(2024, 2, 29)),
    ],
)
def test_meta_dt_formats(dt: str, expected: datetime) -> None:
    ev = norm(event(meta={"dt": dt}, timestamp=_MISSING))
    assert ev["event_time"] == expected
    assert ev["event_time"].tzinfo == UTC
    assert ev["window_start"] == expected.replace(second=0, microsecond=0)


@pytest.mark.parametrize(
    "dt",
    [
        "2024-08-22T04:03:29",  # no zone
        "2024-08-22 04:03:29Z",  # space
        "2024-08-22t04:03:29z",  # lower case
        "2024-08-22T04:03:29.Z",  # empty fraction
        "2024-08-22T04:03:29.1234567890Z",  # ten digits
        "2024-08-22T04:03:29+0200",  # basic offset
        "2024-08-22T04:03:29+18:30",  # beyond java.time's range
        "2023-02-29T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-08-22T24:00:00Z",
        "2024-08-22T23:59:60Z",
        "2024-08-22",
        "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:30:00-01:00",  # after year 9999 in UTC
        "2024-08-22T04:03:29Z\n",
        "٢٠٢٤-08-22T04:03:29Z",  # non-ASCII digits
        "",
    ],
)
def test_unparseable_meta_dt_falls_back_to_timestamp(dt: str) -> None:
    ev = norm(event(meta={"dt": dt}, timestamp=1700000000))
    assert ev["event_time"] == utc(2023, 11, 14, 22, 13, 20)


def test_missing_meta_dt_falls_back_to_timestamp() -> None:
    assert norm(event(meta={"dt": _MISSING}, timestamp=0))["event_time"] == utc(1970, 1, 1)
    assert norm(event(meta={"dt": None}, timestamp=-60))["event_time"] == utc(1969, 12, 31, 23, 59)


@pytest.mark.parametrize("timestamp", [_MISSING, None, "1700000000", 1700000000.0, True, 10**15])
def test_both_times_failing_is_a_dead_letter(timestamp: Any) -> None:
    assert reason(event(meta={"dt": "yesterday"}, timestamp=timestamp)) == "invalid_event_time"


def test_comment_is_cut_to_500_code_points() -> None:
    long = "é" * 499 + "😀" + "x" * 100
    ev = norm(event(comment=long))
    assert ev["comment"] == "é" * 499 + "😀"
    assert len(ev["comment"]) == 500
    assert norm(event(comment=_MISSING))["comment"] is None


def test_non_string_values_in_string_fields_take_their_json_text() -> None:
    assert norm(event(title=123))["title"] == "123"
    assert norm(event(title=True))["title"] == "true"
    assert norm(event(title=1e20))["title"] == "1.0E20"
    assert norm(event(title=100000.0))["title"] == "100000.0"
    assert norm(event(title={"k": "x\u001fy"}))["title"] == '{"k":"x\\u001Fy"}'
    assert norm(event(meta={"id": 5}))["event_id"] == "5"
    assert (
        norm(b'{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"},"title":"\\ud800x"}')["title"] == "?x"
    )


def test_namespace_must_be_a_32_bit_integer() -> None:
    assert norm(event(namespace=2600))["namespace"] == 2600
    assert norm(event(namespace=-1))["namespace"] == -1
    assert norm(event(namespace="4"))["namespace"] is None
    assert norm(event(namespace=4.0))["namespace"] is None
    assert norm(event(namespace=2**31))["namespace"] is None


def test_canary_is_flagged() -> None:
    assert norm(event(meta={"domain": "canary"}))["is_canary"] is True
    assert norm(event(meta={"domain": "Canary"}))["is_canary"] is False


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (None, "empty_value"),
        (b"", "invalid_json"),
        (b"   ", "invalid_json"),
        (b"not json", "invalid_json"),
        (b'{"meta": {"id": "a"}', "invalid_json"),
        (b"{'meta': {'id': 'a'}}", "invalid_json"),
        (b'{"meta":{"id":"a","id":"b"}}', "invalid_json"),
        (b'{"meta":{"id":"a"},"x":NaN}', "invalid_json"),
        (b'{"meta":{"id":"a"},"t":"tab\there"}', "invalid_json"),
        (b'\xef\xbb\xbf{"meta":{"id":"a"}}', "invalid_json"),
        (b'{"meta":{"id":"a"},"x":' + b"1" * 1001 + b"}", "invalid_json"),
        (b'{"meta":{"id":"\xff"}}', "invalid_utf8"),
        (b'[{"meta":{"id":"a"}}]', "not_an_object"),
        (b"42", "not_an_object"),
        (b'"text"', "not_an_object"),
        (b"null", "not_an_object"),
        (b'{"type":"edit"}', "missing_event_id"),
        (b'{"meta":{"id":""},"timestamp":1}', "missing_event_id"),
        (b'{"meta":{"id":null},"timestamp":1}', "missing_event_id"),
        (b'{"meta":"x","timestamp":1}', "missing_event_id"),
        (b'{"meta":[{"id":"a"}],"timestamp":1}', "missing_event_id"),
        (b'{"meta":{"id":"a"}}', "invalid_event_time"),
    ],
)
def test_dead_letter_reasons(raw: bytes | None, why: str) -> None:
    assert reason(raw) == why


def test_leading_whitespace_and_trailing_text_are_tolerated() -> None:
    line = b' \r\n{"meta":{"id":"a","dt":"2024-08-22T04:03:29Z"}} trailing {'
    assert norm(line)["event_id"] == "a"


# --- tables ----------------------------------------------------------------------------------


def _scenario() -> list[bytes]:
    """Seven lines: two minutes, a duplicate, a canary, a dead letter, a bot, a 142."""
    return [
        event(
            meta={"id": "e1", "dt": "2024-08-22T04:03:01Z"},
            minor=True,
            length={"old": 100, "new": 150},
        ),
        event(
            meta={"id": "e2", "dt": "2024-08-22T04:03:59.999Z"},
            title="Other",
            user="Bot1",
            bot=True,
            length={"old": 500, "new": 400},
        ),
        event(
            meta={"id": "e1", "dt": "2024-08-22T04:03:01Z"},
            minor=True,
            length={"old": 100, "new": 150},
        ),  # duplicate of e1
        event(
            meta={"id": "e3", "dt": "2024-08-22T04:04:00Z"},
            type="new",
            title="Fresh",
            length={"new": 70},
            server_name="fr.wikipedia.org",
            wiki="frwiki",
            namespace=2,
        ),
        event(meta={"id": "e4", "dt": "2024-08-22T04:03:30Z", "domain": "canary"}),
        event(
            meta={"id": "e5", "dt": "2024-08-22T04:03:40Z"},
            type=142,
            namespace=2600,
            length=_MISSING,
            minor=_MISSING,
        ),
        b'{"meta":{"dt":"2024-08-22T04:03:00Z"},"type":"edit"}',  # no id: dead letter
    ]


def test_tables_by_hand() -> None:
    tables = oracle.compute_tables(_scenario())
    m3, m4 = utc(2024, 8, 22, 4, 3), utc(2024, 8, 22, 4, 4)
    assert tables["traffic_minute"] == {
        (m3,): {
            "window_start": m3,
            "events": 3,
            "edits": 2,
            "new_pages": 0,
            "log_events": 0,
            "categorize_events": 0,
            "other_events": 1,
            "bot_events": 1,
            "human_events": 2,
            "minor_edits": 1,
            "major_edits": 1,
            "bytes_added": 50,
            "bytes_removed": 100,
            "net_bytes": -50,
        },
        (m4,): {
            "window_start": m4,
            "events": 1,
            "edits": 0,
            "new_pages": 1,
            "log_events": 0,
            "categorize_events": 0,
            "other_events": 0,
            "bot_events": 0,
            "human_events": 1,
            "minor_edits": 0,
            "major_edits": 0,
            "bytes_added": 70,
            "bytes_removed": 0,
            "net_bytes": 70,
        },
    }
    assert tables["wiki_minute"] == {
        (m3, "enwiki"): {
            "window_start": m3,
            "wiki": "enwiki",
            "server_name": "en.wikipedia.org",
            "project": "wikipedia",
            "language": "en",
            "events": 3,
            "edits": 2,
            "new_pages": 0,
            "bot_events": 1,
            "bytes_added": 50,
            "bytes_removed": 100,
        },
        (m4, "frwiki"): {
            "window_start": m4,
            "wiki": "frwiki",
            "server_name": "fr.wikipedia.org",
            "project": "wikipedia",
            "language": "fr",
            "events": 1,
            "edits": 0,
            "new_pages": 1,
            "bot_events": 0,
            "bytes_added": 70,
            "bytes_removed": 0,
        },
    }
    assert tables["namespace_minute"] == {
        (m3, 0): {"window_start": m3, "namespace": 0, "events": 2},
        (m3, 2600): {"window_start": m3, "namespace": 2600, "events": 1},
        (m4, 2): {"window_start": m4, "namespace": 2, "events": 1},
    }
    assert tables["page_minute"] == {
        (m3, "enwiki", "Example"): {
            "window_start": m3,
            "wiki": "enwiki",
            "title": "Example",
            "events": 1,
            "bytes_added": 50,
            "bytes_removed": 0,
        },
        (m3, "enwiki", "Other"): {
            "window_start": m3,
            "wiki": "enwiki",
            "title": "Other",
            "events": 1,
            "bytes_added": 0,
            "bytes_removed": 100,
        },
        (m4, "frwiki", "Fresh"): {
            "window_start": m4,
            "wiki": "frwiki",
            "title": "Fresh",
            "events": 1,
            "bytes_added": 70,
            "bytes_removed": 0,
        },
    }
    assert tables["user_minute"] == {
        (m3, "Alice"): {
            "window_start": m3,
            "user": "Alice",
            "events": 2,
            "edits": 1,
            "bot_events": 0,
            "bytes_added": 50,
            "bytes_removed": 0,
        },
        (m3, "Bot1"): {
            "window_start": m3,
            "user": "Bot1",
            "events": 1,
            "edits": 1,
            "bot_events": 1,
            "bytes_added": 0,
            "bytes_removed": 100,
        },
        (m4, "Alice"): {
            "window_start": m4,
            "user": "Alice",
            "events": 1,
            "edits": 1,
            "bot_events": 0,
            "bytes_added": 70,
            "bytes_removed": 0,
        },
    }
    assert sorted(tables["recent_changes"]) == [("e1",), ("e2",), ("e3",), ("e5",)]
    assert tables["recent_changes"][("e5",)] == {
        "event_id": "e5",
        "event_time": utc(2024, 8, 22, 4, 3, 40),
        "wiki": "enwiki",
        "server_name": "en.wikipedia.org",
        "type": "other",
        "namespace": 2600,
        "title": "Example",
        "user": "Alice",
        "is_bot": False,
        "is_minor": False,
        "length_delta": 0,
        "comment": "fix",
    }


def test_first_occurrence_of_an_id_wins() -> None:
    first = event(meta={"id": "dup", "dt": "2024-08-22T04:03:10Z"}, title="First")
    second = event(meta={"id": "dup", "dt": "2024-08-22T04:02:10Z"}, title="Second")
    events = oracle.deduplicated_events([first, second])
    assert [e["title"] for e in events] == ["First"]


def test_events_without_a_key_field_are_left_out_of_that_table_only() -> None:
    lines = [event(wiki=_MISSING, user=None, namespace="0", title=_MISSING)]
    tables = oracle.compute_tables(lines)
    assert [r["events"] for r in tables["traffic_minute"].values()] == [1]
    assert tables["wiki_minute"] == {}
    assert tables["namespace_minute"] == {}
    assert tables["page_minute"] == {}
    assert tables["user_minute"] == {}
    assert len(tables["recent_changes"]) == 1


def test_wiki_minute_reports_the_greatest_host_and_derives_from_it() -> None:
    lines = [
        event(meta={"id": "h1"}, server_name="en.wikipedia.org"),
        event(meta={"id": "h2"}, server_name="www.wikidata.org"),
        event(meta={"id": "h3"}, server_name=_MISSING),
    ]
    (row,) = oracle.compute_tables(lines)["wiki_minute"].values()
    assert (row["server_name"], row["project"], row["language"], row["events"]) == (
        "www.wikidata.org",
        "wikidata",
        None,
        3,
    )


# --- the corpus ------------------------------------------------------------------------------


def test_the_corpus_is_what_the_tests_expect(data_dir: Path) -> None:
    corpus = data_dir / "recentchange"
    files = sorted(corpus.glob("*.jsonl"))
    assert len(files) == 7, f"corpus not found or changed under {corpus}"
    lines = oracle.load_events(files)
    # PROVENANCE.md's "Totals" say 5,281 rows / 5,239 ids; its per-file table and the files
    # themselves add up to 5,087 rows / 5,045 ids.
    assert len(lines) == 5087
    assert all(oracle.normalize_event(line)[1] is None for line in lines)
    events = oracle.deduplicated_events(lines)
    assert len(events) == 5045
    kinds: dict[str, int] = {}
    for ev in events:
        kinds[ev["type"]] = kinds.get(ev["type"], 0) + 1
    assert kinds["other"] == 3  # the three Flow "142" events
    assert sum(ev["length_delta"] for ev in events if ev["type"] not in ("edit", "new")) == 0
