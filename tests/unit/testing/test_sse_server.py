"""The local EventStreams look-alike, checked with a plain HTTP client."""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path

import pytest

from wiki_lib.testing import SSEServer

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")


def get(
    server: SSEServer, headers: dict[str, str] | None = None, query: str = ""
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("GET", "/v2/stream/recentchange" + query, headers=headers or {})
    return conn.getresponse()


def read_until(response: http.client.HTTPResponse, marker: bytes, limit: float = 5) -> bytes:
    data = b""
    deadline = time.monotonic() + limit
    while marker not in data and time.monotonic() < deadline:
        chunk = response.read1(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_frames_look_like_eventstreams() -> None:
    with SSEServer([b'{"a":1}', b'{"b":2}'], retry_ms=1500) as server:
        response = get(server)
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        body = read_until(response, b'{"b":2}\n\n')
    id0, id1 = server.event_id(0).encode(), server.event_id(1).encode()
    assert body == (
        b":ok\n\nretry: 1500\n\n"
        b"event: message\nid: " + id0 + b'\ndata: {"a":1}\n\n'
        b"event: message\nid: " + id1 + b'\ndata: {"b":2}\n\n'
    )
    assert json.loads(id0) == [
        {"topic": "local.mediawiki.recentchange", "partition": 0, "offset": 0}
    ]


def test_multiline_payloads_and_missing_data() -> None:
    with SSEServer([b"line1\nline2", None]) as server:
        body = read_until(get(server), b'offset":1}]\n\n')
    assert b"data: line1\ndata: line2\n\n" in body
    assert body.endswith(b"event: message\nid: " + server.event_id(1).encode() + b"\n\n")


def test_last_event_id_resumes_after_that_event() -> None:
    with SSEServer([b"0", b"1", b"2", b"3"]) as server:
        body = read_until(get(server, {"Last-Event-ID": server.event_id(1)}), b"data: 3\n")
        assert b"data: 0\n" not in body and b"data: 1\n" not in body
        assert b"data: 2\n" in body
        assert server.requests[-1].start == 2
        assert server.start_index(
            json.dumps([{"topic": "local.mediawiki.recentchange", "partition": 0, "timestamp": 0}]),
            None,
        ) == len(server.payloads)


def test_a_bad_last_event_id_is_refused() -> None:
    with SSEServer([b"0"]) as server:
        assert get(server, {"Last-Event-ID": "garbage"}).status == 400
        assert get(server, {"Last-Event-ID": '[{"topic":"other","offset":1}]'}).status == 400


def test_since_selects_by_event_time() -> None:
    events = [json.dumps({"meta": {"dt": f"2024-01-01T00:00:0{i}Z"}}).encode() for i in range(5)]
    with SSEServer(events) as server:
        body = read_until(get(server, query="?since=2024-01-01T00:00:03Z"), b"00:04Z")
        assert server.requests[-1].start == 3
        assert b"00:02Z" not in body
        millis = str(1704067203 * 1000)
        assert server.start_index(None, millis) == 3
        assert get(server, query="?since=never").status == 400


def test_status_answers_then_recovers() -> None:
    with SSEServer([b"0"], status=429, status_count=1, retry_after_s=7) as server:
        refused = get(server)
        assert refused.status == 429
        assert refused.getheader("Retry-After") == "7"
        assert b"429" in refused.read()
        assert get(server).status == 200
        assert [r.start for r in server.requests] == [None, 0]


def test_cut_every_drops_the_connection_without_closing_the_chunked_body() -> None:
    with SSEServer([str(i).encode() for i in range(10)], cut_every=3) as server:
        response = get(server)
        with pytest.raises(http.client.IncompleteRead):
            response.read()
        assert server.events_sent == 3


def test_cut_after_seconds() -> None:
    with SSEServer([b"0"], cut_after_s=0.3, heartbeat_s=0.05) as server:
        started = time.monotonic()
        with pytest.raises(http.client.IncompleteRead):
            get(server).read()
        assert 0.25 <= time.monotonic() - started < 3


def test_the_corpus_is_served_and_exhaustion_is_signalled() -> None:
    server = SSEServer.from_files([DATA / "sse" / "*.sse"])
    assert len(server.payloads) == 1950 + 341 + 62 + 1 + 3
    assert server.payloads.count(None) == 1
    with server:
        response = get(server)
        read_until(response, server.event_id(len(server.payloads) - 1).encode(), limit=10)
        assert server.exhausted.wait(5)
        assert server.events_sent == len(server.payloads)


def test_stop_releases_the_port() -> None:
    server = SSEServer([b"0"]).start()
    port = server.port
    server.stop()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
