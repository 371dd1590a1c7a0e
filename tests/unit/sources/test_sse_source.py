"""The live SSE source against the local server over real HTTP: resume, reconnects, errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from wiki_lib.errors import TerminalSourceError
from wiki_lib.events import REASON_SSE_NO_DATA
from wiki_lib.sources import SSESource, iter_frames
from wiki_lib.sources.base import RawEvent
from wiki_lib.sources.sse import parse_frame
from wiki_lib.testing import SSEServer

UA = "wikipulse-tests/1 (contact: tests@example.org)"


def payloads(n: int) -> list[bytes]:
    return [
        json.dumps(
            {"meta": {"id": f"id-{i}", "dt": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}}
        ).encode()
        for i in range(n)
    ]


def take(source: SSESource, n: int, timeout: float = 20.0) -> list[RawEvent]:
    """The first ``n`` records, read in a thread so a hang fails the test instead of the run."""
    out: list[RawEvent] = []

    def read() -> None:
        for raw in source:
            out.append(raw)
            if len(out) == n:
                break

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    source.close()
    reader.join(5)
    assert not reader.is_alive(), f"source hung after {len(out)} records"
    return out


def ids(records: list[RawEvent]) -> list[str]:
    return [json.loads(r.data)["meta"]["id"] for r in records]


def test_frames_are_parsed_like_the_specification_says() -> None:
    frame = parse_frame(
        b": comment\r\nevent: message\r\nid: [1]\r\ndata: a\r\ndata:b\r\nretry: 250\r\n"
    )
    assert (frame.event, frame.id, frame.data, frame.retry) == ("message", "[1]", b"a\nb", 250)
    assert parse_frame(b":ok\n").is_empty
    assert parse_frame(b"id: x\0y\nretry: soon\nfoo: bar\n").is_empty
    no_data = parse_frame(b"event: message\nid: [2]\n")
    assert no_data.data is None and no_data.id == "[2]"
    assert parse_frame(b"data: \xff\xfe\n").data == b"\xff\xfe"
    assert parse_frame(b"data\n").data == b""


def test_frames_survive_arbitrary_network_chunking() -> None:
    stream = b':ok\n\nevent: message\nid: 1\ndata: {"a": 1}\n\nid: 2\r\ndata: x\r\n\r\n'
    pieces = [stream[i : i + 3] for i in range(0, len(stream), 3)]
    frames = [f for f in iter_frames(pieces) if not f.is_empty]
    assert [(f.id, f.data) for f in frames] == [("1", b'{"a": 1}'), ("2", b"x")]


def test_every_event_arrives_byte_for_byte_with_our_headers(tmp_path: Path) -> None:
    data = [*payloads(300), '{"title": "multi\\nline é"}'.encode()]
    with SSEServer(data) as server:
        records = take(SSESource(server.url, user_agent=UA), len(data))
        assert [r.data for r in records] == data
        assert records[0].position == server.event_id(0)
        assert records[-1].position == server.event_id(len(data) - 1)
        first = server.requests[0]
        assert first.user_agent == UA
        assert first.last_event_id is None


def test_cut_connections_resume_after_the_last_id_without_gaps_or_duplicates() -> None:
    data = payloads(500)
    with SSEServer(data, cut_every=50, retry_ms=5) as server:
        source = SSESource(server.url, user_agent=UA)
        records = take(source, len(data))
        assert ids(records) == [f"id-{i}" for i in range(500)]
        assert source.reconnects == 9
        resumed = [r.last_event_id for r in server.requests[1:]]
        assert resumed[:2] == [server.event_id(49), server.event_id(99)]
        assert all(r.start == 50 * (k + 1) for k, r in enumerate(server.requests[1:]))


def test_a_restart_with_the_persisted_id_resumes_after_it() -> None:
    with SSEServer(payloads(100)) as server:
        source = SSESource(server.url, user_agent=UA, last_event_id=server.event_id(41))
        assert ids(take(source, 3)) == ["id-42", "id-43", "id-44"]


def test_since_starts_at_a_point_in_time() -> None:
    with SSEServer(payloads(100)) as server:
        source = SSESource(server.url, user_agent=UA, since="2024-01-01T00:01:10Z")
        assert ids(take(source, 2)) == ["id-70", "id-71"]
        assert server.requests[0].query == "since=2024-01-01T00%3A01%3A10Z"


def test_server_retry_field_sets_the_backoff_base() -> None:
    with SSEServer(payloads(10), cut_every=5, retry_ms=300) as server:
        source = SSESource(server.url, user_agent=UA, initial_backoff_s=0.001)
        started = time.monotonic()
        take(source, 10)
        assert source.server_retry_s == 0.3
        assert time.monotonic() - started >= 0.15
        assert all(0.15 <= source.backoff(0) <= 0.3 for _ in range(50))
        assert all(0.6 <= source.backoff(2) <= 1.2 for _ in range(50))
        assert source.backoff(30) <= source.max_backoff_s


@pytest.mark.parametrize("status", [429, 500, 503])
def test_429_and_5xx_are_transient(status: int) -> None:
    with SSEServer(payloads(5), status=status, status_count=2) as server:
        source = SSESource(server.url, user_agent=UA, initial_backoff_s=0.01)
        assert ids(take(source, 5)) == [f"id-{i}" for i in range(5)]
        assert source.reconnects == 2


def test_retry_after_is_honoured() -> None:
    with SSEServer(payloads(1), status=429, status_count=1, retry_after_s=1) as server:
        source = SSESource(server.url, user_agent=UA, initial_backoff_s=0.01)
        started = time.monotonic()
        take(source, 1)
        assert time.monotonic() - started >= 0.9


@pytest.mark.parametrize("status", [400, 403, 404])
def test_other_4xx_are_terminal_with_a_clear_message(status: int) -> None:
    with SSEServer(payloads(5), status=status) as server:
        source = SSESource(server.url, user_agent=UA)
        with pytest.raises(TerminalSourceError, match=f"HTTP {status}") as info:
            next(iter(source))
        assert "User-Agent" in str(info.value)
        assert len(server.requests) == 1


def test_a_stalled_stream_is_dropped_and_resumed() -> None:
    with SSEServer(payloads(20), stall_after=5, stall_s=30, retry_ms=5) as server:
        source = SSESource(server.url, user_agent=UA, read_timeout_s=0.5)
        started = time.monotonic()
        records = take(source, 20)
        assert ids(records) == [f"id-{i}" for i in range(20)]
        assert time.monotonic() - started < 10
        assert source.reconnects >= 1


def test_malformed_frames_reach_the_consumer_as_records() -> None:
    with SSEServer(payloads(4), malformed_every=2) as server:
        records = take(SSESource(server.url, user_agent=UA), 6)
    assert [r.defect for r in records] == [None, None, REASON_SSE_NO_DATA] * 2
    assert records[2].position == records[1].position
    with SSEServer(payloads(2), malformed_every=1, malformed="not_utf8") as server:
        records = take(SSESource(server.url, user_agent=UA), 4)
    assert records[1].data == b'{"title":"\xff\xfe broken"}'


def test_close_from_another_thread_ends_a_quiet_stream() -> None:
    with SSEServer(payloads(1), heartbeat_s=60) as server:
        source = SSESource(server.url, user_agent=UA)
        got: list[RawEvent] = []
        reader = threading.Thread(target=lambda: got.extend(source), daemon=True)
        reader.start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        source.close()
        reader.join(5)
        assert not reader.is_alive()
        assert len(got) == 1


def test_an_unreachable_server_is_retried_not_fatal() -> None:
    with SSEServer(payloads(1)) as server:
        url = server.url
    source = SSESource(url, user_agent=UA, initial_backoff_s=0.01, max_backoff_s=0.05)
    reader = threading.Thread(target=lambda: list(source), daemon=True)
    reader.start()
    time.sleep(0.5)
    source.close()
    reader.join(5)
    assert not reader.is_alive()
    assert source.reconnects >= 3
