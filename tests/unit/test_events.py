"""Validation of single events: the real corpus passes, every kind of breakage has its reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wiki_lib.errors import ValidationError
from wiki_lib.events import (
    MAX_EVENT_BYTES,
    Event,
    _checked_event,
    _hot_path,
    _parse,
    event_time,
    parse_iso_time,
    validate,
)

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")

GOOD: dict[str, Any] = {
    "$schema": "/mediawiki/recentchange/1.0.0",
    "meta": {
        "id": "0d1c4a5e-0000-4000-8000-000000000001",
        "dt": "2024-08-22T04:02:22Z",
        "domain": "en.wikipedia.org",
        "stream": "mediawiki.recentchange",
    },
    "type": "edit",
    "namespace": 0,
    "title": "Example",
    "comment": "c",
    "timestamp": 1724299342,
    "user": "Someone",
    "bot": False,
    "minor": True,
    "length": {"old": 10, "new": 12},
    "server_name": "en.wikipedia.org",
    "wiki": "enwiki",
}


def encode(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def mutate(path: str, value: Any = ...) -> bytes:
    """GOOD with ``path`` (dotted) set to ``value``, or deleted when no value is given."""
    obj = json.loads(json.dumps(GOOD))
    *parents, leaf = path.split(".")
    target = obj
    for name in parents:
        target = target[name]
    if value is ...:
        del target[leaf]
    else:
        target[leaf] = value
    return encode(obj)


def reason_of(data: bytes, **kwargs: Any) -> str:
    with pytest.raises(ValidationError) as info:
        validate(data, **kwargs)
    return info.value.reason


def corpus_lines(folder: str) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted((DATA / folder).glob("*.jsonl")):
        lines.extend(line for line in path.read_bytes().split(b"\n") if line)
    return lines


@pytest.mark.parametrize("folder", ["recentchange", "recentchange_legacy"])
def test_every_recorded_event_is_valid(folder: str) -> None:
    lines = corpus_lines(folder)
    assert len(lines) > 5000
    events = [validate(line) for line in lines]
    assert not any(e.is_canary for e in events)
    assert {json.loads(line)["meta"]["id"] for line in lines} == {e.id for e in events}


def test_routing_view_of_a_good_event() -> None:
    event = validate(encode(GOOD))
    assert event.id == GOOD["meta"]["id"]
    assert event.wiki == "enwiki"
    assert event.type == "edit"
    assert event.namespace == 0
    assert event.bot is False
    assert event.domain == "en.wikipedia.org"
    assert event.time == 1724299342.0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"meta": {"id": "x"', "invalid_json"),
        (b"", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b'{"title": "\xff\xfe"}', "not_utf8"),
        (b'["a list"]', "not_object"),
        (b'"a string"', "not_object"),
        (b"42", "not_object"),
        (b"null", "not_object"),
        (mutate("meta"), "missing_field:meta"),
        (mutate("meta", "x"), "wrong_type:meta"),
        (mutate("meta.id"), "missing_field:meta.id"),
        (mutate("meta.id", 5), "wrong_type:meta.id"),
        (mutate("meta.id", ""), "bad_value:meta.id"),
        (mutate("meta.domain", 1), "wrong_type:meta.domain"),
        (mutate("wiki"), "missing_field:wiki"),
        (mutate("wiki", ""), "bad_value:wiki"),
        (mutate("wiki", ["enwiki"]), "wrong_type:wiki"),
        (mutate("type"), "missing_field:type"),
        (mutate("type", 142), "wrong_type:type"),
        (mutate("namespace"), "missing_field:namespace"),
        (mutate("namespace", "0"), "wrong_type:namespace"),
        (mutate("namespace", True), "wrong_type:namespace"),
        (mutate("namespace", 1.5), "wrong_type:namespace"),
        (mutate("title", None), "missing_field:title"),
        (mutate("user", 7), "wrong_type:user"),
        (mutate("server_name"), "missing_field:server_name"),
        (mutate("comment", 1), "wrong_type:comment"),
        (mutate("bot", "yes"), "wrong_type:bot"),
        (mutate("minor", 0), "wrong_type:minor"),
        (mutate("length", [1, 2]), "wrong_type:length"),
        (mutate("length.old", "10"), "wrong_type:length.old"),
        (mutate("length.new", 1.0), "wrong_type:length.new"),
    ],
)
def test_broken_events_get_their_reason(data: bytes, reason: str) -> None:
    assert reason_of(data) == reason


def test_optional_fields_may_be_missing_or_null() -> None:
    for path in ("comment", "bot", "minor", "length", "meta.domain", "length.old"):
        validate(mutate(path))
    event = validate(mutate("bot", None))
    assert event.bot is False
    validate(mutate("length.old", None))


def test_too_large_is_checked_before_parsing() -> None:
    big = mutate("comment", "x" * MAX_EVENT_BYTES)
    assert reason_of(big) == "too_large"
    assert reason_of(encode(GOOD), max_bytes=10) == "too_large"


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        ("2024-08-22T04:02:22Z", 1724299342.0),
        ("2024-08-22T04:02:22.250Z", 1724299342.25),
        ("2024-08-22T06:02:22+02:00", 1724299342.0),
        ("2024-08-22T04:02:22", 1724299342.0),
        ("2024-08-22T04:02:22.123456789Z", 1724299342.123456),
    ],
)
def test_event_time_formats(dt: str, expected: float) -> None:
    assert parse_iso_time(dt) == pytest.approx(expected)
    assert validate(mutate("meta.dt", dt)).time == pytest.approx(expected)


def test_event_time_falls_back_to_timestamp() -> None:
    assert validate(mutate("meta.dt")).time == 1724299342.0
    assert validate(mutate("meta.dt", "yesterday")).time == 1724299342.0
    no_dt = json.loads(mutate("meta.dt"))
    del no_dt["timestamp"]
    assert reason_of(encode(no_dt)) == "missing_field:meta.dt"
    bad_dt = json.loads(mutate("meta.dt", "yesterday"))
    bad_dt["timestamp"] = "1724299342"
    assert reason_of(encode(bad_dt)) == "bad_value:meta.dt"
    typed_dt = json.loads(mutate("meta.dt", 1724299342))
    del typed_dt["timestamp"]
    assert reason_of(encode(typed_dt)) == "wrong_type:meta.dt"
    assert event_time([1]) is None
    assert event_time({"timestamp": True}) is None


def test_canary_is_valid_but_flagged() -> None:
    event = validate(mutate("meta.domain", "canary"))
    assert event.is_canary


def test_huge_integers_and_deep_nesting_are_handled_like_the_standard_library() -> None:
    validate(mutate("revision", {"new": 10**30}))
    deep = b'{"x":' * 100_000 + b"1" + b"}" * 100_000
    assert reason_of(deep, max_bytes=10**7) == "invalid_json"


def test_every_single_field_breakage_is_explained() -> None:
    """Whenever changing one field makes an event invalid, the reason names a field."""
    wrong_values: list[Any] = [None, 1, 1.5, True, "s", [], {}]
    paths = [*GOOD.keys(), *(f"meta.{k}" for k in GOOD["meta"]), "length.old", "length.new"]
    for path in paths:
        for value in [..., *wrong_values]:
            data = mutate(path, value)
            try:
                validate(data)
            except ValidationError as exc:
                assert exc.reason.split(":")[0] in {"missing_field", "wrong_type", "bad_value"}


def test_strict_mode_applies_the_official_schema() -> None:
    validate(encode(GOOD), strict=True)
    legacy = corpus_lines("recentchange_legacy")[0]
    validate(legacy)
    assert reason_of(legacy, strict=True).startswith("schema:")
    assert reason_of(mutate("patrolled", "no"), strict=True) == "schema:patrolled"


def _slow_path(data: bytes) -> Event | None:
    try:
        obj = _parse(data)
    except ValidationError:
        return None
    if type(obj) is not dict:
        return None
    try:
        return _checked_event(obj)
    except ValidationError:
        return None


def _variants() -> list[bytes]:
    """Breakages of every kind the msgspec hot path could judge differently from orjson."""
    good = encode(GOOD)
    variants = [good, good.replace(b'"Example"', b'"Exa\\ud800mple"')]
    wrong_values: list[Any] = [None, 1, 1.5, 10**30, True, "", "s", [], {}]
    paths = [*GOOD.keys(), *(f"meta.{k}" for k in GOOD["meta"]), "length.old", "length.new"]
    for path in paths:
        variants.extend(mutate(path, value) for value in [..., *wrong_values])
    extra = [
        b'"x":"\xff\xfe"',  # invalid UTF-8 in a field the hot path skips
        b'"x":"\xed\xa0\x80"',  # an encoded surrogate
        b'"x":"\xc0\xaf"',  # an overlong encoding
        b'"x":"a\x01b"',  # a raw control character
        b'"x":1e400',
        b'"x":NaN',
        b'"x":[1,]',
        b'"wiki":5',  # duplicate keys: the last one counts
        b'"wiki":"dewiki"',
        b'"meta":{"id":"other"}',
        b'"timestamp":"later"',
    ]
    variants.extend(good[:-1] + b"," + field + b"}" for field in extra)
    variants.extend(b"{" + field + b"," + good[1:] for field in extra)
    return variants


def test_the_hot_path_accepts_only_what_the_slow_path_accepts_and_agrees() -> None:
    corpus = corpus_lines("recentchange") + corpus_lines("recentchange_legacy")
    served = 0
    for data in [*corpus, *_variants()]:
        hot = _hot_path(data)
        if hot is not None:
            served += 1
            assert hot == _slow_path(data), data[:200]
    assert sum(_hot_path(line) is not None for line in corpus) >= 0.99 * len(corpus)
    assert served > len(corpus)
