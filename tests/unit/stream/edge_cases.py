"""Hand-made inputs for the corners the corpus does not reach, shared by the stream's tests."""

from __future__ import annotations

import json
from typing import Any


def _event(n: int, meta: dict[str, Any] | None = None, **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "meta": {"id": f"edge-{n}", "dt": "2024-08-22T04:03:29Z", "domain": "en.wikipedia.org"},
        "type": "edit",
        "namespace": 0,
        "title": "Page",
        "comment": "c",
        "timestamp": 1724299409,
        "user": "U",
        "bot": False,
        "minor": False,
        "length": {"old": 10, "new": 25},
        "server_name": "en.wikipedia.org",
        "wiki": "enwiki",
    }
    body["meta"].update(meta or {})
    for key, value in fields.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def awkward_lines() -> list[bytes | None]:
    variants: list[tuple[dict[str, Any] | None, dict[str, Any]]] = [
        (None, {"type": 142}),
        (None, {"type": "142"}),
        (None, {"type": 142.0}),
        (None, {"type": True}),
        (None, {"type": {"x": [1, 2]}}),
        (None, {"type": None}),
        (None, {"type": ...}),
        (None, {"type": "Edit"}),
        (None, {"type": "external"}),
        (None, {"type": "new", "length": {"new": 99}}),
        (None, {"type": "log"}),
        (None, {"type": "categorize", "length": {"old": 1, "new": 5}}),
        (None, {"bot": ...}),
        (None, {"bot": "yes"}),
        (None, {"bot": 1}),
        (None, {"bot": True}),
        (None, {"minor": ...}),
        (None, {"minor": True}),
        (None, {"namespace": "3"}),
        (None, {"namespace": 3.0}),
        (None, {"namespace": 2**31}),
        (None, {"namespace": -1}),
        (None, {"namespace": True}),
        (None, {"namespace": ...}),
        (None, {"length": ...}),
        (None, {"length": {"new": 7}}),
        (None, {"length": {"old": 7}}),
        (None, {"length": {"old": 2**31, "new": 3}}),
        (None, {"length": {"old": 1, "new": 2.5}}),
        (None, {"length": 5}),
        (None, {"length": [{"old": 1, "new": 9}]}),
        (None, {"length": {"old": -(2**31), "new": 2**31 - 1}}),
        ({"dt": "2026-02-26T10:00:00.123Z"}, {}),
        ({"dt": "2026-02-26T10:00:00.123456789Z"}, {}),
        ({"dt": "2026-02-26T10:00:00.9999999Z"}, {}),
        ({"dt": "2026-02-26T10:00:00.1234567890Z"}, {}),
        ({"dt": "2024-08-22T06:03:29+02:00"}, {}),
        ({"dt": "2024-08-21T22:33:29.5-05:30"}, {}),
        ({"dt": "2024-08-22T22:03:29+18:00"}, {}),
        ({"dt": "2024-08-22T22:03:29+18:30"}, {}),
        ({"dt": "2024-08-22T04:03:29z"}, {}),
        ({"dt": "2024-08-22 04:03:29Z"}, {}),
        ({"dt": "2024-08-22"}, {}),
        ({"dt": "2023-02-29T00:00:00Z"}, {}),
        ({"dt": "2024-02-29T00:00:00Z"}, {}),
        ({"dt": "2024-08-22T24:00:00Z"}, {}),
        ({"dt": "2024-08-22T23:59:60Z"}, {}),
        ({"dt": "2024-08-22T04:03:29Z\n"}, {}),
        ({"dt": "0001-01-01T00:30:00+01:00"}, {}),
        ({"dt": "9999-12-31T23:30:00-01:00"}, {}),
        ({"dt": "0000-01-01T00:00:00Z"}, {}),
        ({"dt": "2024-08-22T04:03:29+0200"}, {}),
        ({"dt": 1724299409}, {}),
        ({"dt": None}, {"timestamp": -1}),
        ({"dt": "bad"}, {"timestamp": 253402300799}),
        ({"dt": "bad"}, {"timestamp": 253402300800}),
        ({"dt": "bad"}, {"timestamp": -62135596800}),
        ({"dt": "bad"}, {"timestamp": -62135596801}),
        ({"dt": "bad"}, {"timestamp": 2**63 - 1}),
        ({"dt": "bad"}, {"timestamp": "1724299409"}),
        ({"dt": "bad"}, {"timestamp": 1724299409.0}),
        ({"dt": "bad"}, {"timestamp": ...}),
        ({"id": 5}, {}),
        ({"id": ""}, {}),
        ({"id": None}, {}),
        ({"id": {"a": 1}}, {}),
        ({"domain": "canary"}, {}),
        (None, {"comment": "é" * 499 + "😀" + "tail" * 50}),
        (None, {"comment": 12}),
        (None, {"comment": ...}),
        (None, {"title": 123}),
        (None, {"title": 1e20}),
        (None, {"title": 12345678.0}),
        (None, {"title": 0.001}),
        (None, {"title": 1e-5}),
        (None, {"title": -0.0}),
        (None, {"title": True}),
        (None, {"title": {"k": 'x\u001fy\n"/é', "n": [1.5, None]}}),
        (None, {"title": "nul\u0000byte"}),
        (None, {"title": ...}),
        (None, {"user": None}),
        (None, {"wiki": ...}),
        (None, {"wiki": 7}),
    ]
    hosts = [
        "zh-min-nan.wikipedia.org",
        "simple.wikipedia.org",
        "en.m.wikipedia.org",
        "fr.wiktionary.org",
        "ja.wikibooks.org",
        "pl.wikinews.org",
        "zh.wikiquote.org",
        "as.wikisource.org",
        "en.wikiversity.org",
        "en.wikivoyage.org",
        "www.wikidata.org",
        "test.wikidata.org",
        "foo.wikidata.org",
        "commons.wikimedia.org",
        "meta.wikimedia.org",
        "species.wikimedia.org",
        "incubator.wikimedia.org",
        "wikimania.wikimedia.org",
        "a.commons.wikimedia.org",
        "www.mediawiki.org",
        "test.mediawiki.org",
        "www.wikifunctions.org",
        "wikifunctions.org",
        "wikipedia.org",
        ".wikipedia.org",
        "en..wikipedia.org",
        "en.wikipedia.org.example.com",
        "EN.WIKIPEDIA.ORG",
        "",
        42,
        ...,
    ]
    lines: list[bytes | None] = [
        _event(i, meta, **fields) for i, (meta, fields) in enumerate(variants)
    ]
    lines += [_event(1000 + i, None, server_name=h) for i, h in enumerate(hosts)]
    lines += [
        None,
        b"",
        b"   ",
        b"not json",
        b'{"meta":{"id":"x"}',
        b"{'meta':{'id':'x'}}",
        b'{"meta":{"id":"d1","id":"d2","dt":"2024-08-22T04:03:29Z"}}',
        b'{"meta":{"id":"n1","dt":"2024-08-22T04:03:29Z"},"x":NaN}',
        b'{"meta":{"id":"n2","dt":"2024-08-22T04:03:29Z"},"x":-Infinity}',
        b'{"meta":{"id":"t1","dt":"2024-08-22T04:03:29Z"},"title":"raw\ttab"}',
        b'\xef\xbb\xbf{"meta":{"id":"b1","dt":"2024-08-22T04:03:29Z"}}',
        b'{"meta":{"id":"big","dt":"2024-08-22T04:03:29Z"},"x":' + b"1" * 1001 + b"}",
        b'{"meta":{"id":"big2","dt":"2024-08-22T04:03:29Z"},"x":' + b"1" * 999 + b"}",
        b'{"meta":{"id":"deep","dt":"2024-08-22T04:03:29Z"},"x":'
        + b"[" * 1200
        + b"]" * 1200
        + b"}",
        b'[{"meta":{"id":"arr","dt":"2024-08-22T04:03:29Z"}}]',
        b"42",
        b'"text"',
        b"null",
        b"[]",
        b'{"type":"edit","timestamp":1}',
        b'{"meta":"x","timestamp":1}',
        b'{"meta":[{"id":"a"}],"timestamp":1}',
        b'{"meta":{"id":"no-time"}}',
        b' \r\n{"meta":{"id":"ws","dt":"2024-08-22T04:03:29Z"}} trailing {',
        b'{"meta":{"id":"case","dt":"2024-08-22T04:03:29Z"},"TYPE":"edit","Bot":true}',
        b'{"meta":{"id":"sur","dt":"2024-08-22T04:03:29Z"},"title":"\\ud800x\\udc00"}',
        b'{"meta":{"id":"pair","dt":"2024-08-22T04:03:29Z"},"title":"\\ud83d\\ude00"}',
        b'{"meta":{"id":"huge","dt":"2024-08-22T04:03:29Z"},"title":1e400}',
    ]
    return lines


INVALID_UTF8: list[bytes | None] = [
    b'{"meta":{"id":"u1","dt":"2024-08-22T04:03:29Z"},"title":"\xc3\xa9"}',
    b'{"meta":{"id":"u2","dt":"2024-08-22T04:03:29Z"},"title":"\xff"}',
    b'{"meta":{"id":"u3","dt":"2024-08-22T04:03:29Z"},"title":"\xc0\x80"}',
    b'{"meta":{"id":"u4","dt":"2024-08-22T04:03:29Z"},"title":"\xed\xa0\x80"}',
    b'{"meta":{"id":"u5","dt":"2024-08-22T04:03:29Z"},"title":"\xf4\x90\x80\x80"}',
    b'{"meta":{"id":"u6","dt":"2024-08-22T04:03:29Z"},"title":"\xe2\x82"}',
]
