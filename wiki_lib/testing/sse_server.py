"""A local EventStreams look-alike over real HTTP, for tests, demos and failure drills.

It serves a recorded corpus the way ``stream.wikimedia.org`` does (HTTP/1.1 chunked
``text/event-stream``, ``:ok``, then ``event: message`` / ``id: [...]`` / ``data: {...}`` /
blank line), resumes after the position in ``Last-Event-ID`` or from ``?since=``, and can
misbehave on request: cut every connection after N events or T seconds, stall, inject
malformed frames, or answer with an HTTP error status. The live source runs against it
unchanged; only the URL differs::

    with SSEServer.from_files(["events.jsonl"], cut_every=50) as server:
        source = SSESource(server.url, user_agent="me (me@example.org)")
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from wiki_lib.events import event_time, parse_iso_time
from wiki_lib.sources.replay import expand_patterns, read_records

__all__ = ["MalformedKind", "RequestRecord", "SSEServer"]

log = logging.getLogger(__name__)

MalformedKind = Literal["no_data", "truncated_json", "not_utf8", "not_object"]
_BATCH_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What one client request asked for (tests assert on resume and User-Agent)."""

    last_event_id: str | None
    user_agent: str | None
    query: str
    start: int | None
    """Index of the first event served, ``None`` when the request was refused."""


@dataclass(slots=True)
class _Options:
    cut_every: int | None = None
    cut_after_s: float | None = None
    stall_after: int | None = None
    stall_s: float = 30.0
    malformed_every: int | None = None
    malformed: MalformedKind = "no_data"
    status: int | None = None
    status_count: int | None = None
    retry_after_s: int | None = None
    retry_ms: int | None = None
    rate: float | None = None
    heartbeat_s: float = 0.5
    topic: str = "local.mediawiki.recentchange"
    requests: list[RequestRecord] = field(default_factory=list)


class SSEServer:
    """An SSE server of ``payloads`` (``None`` = a frame without ``data:``) on ``host:port``."""

    def __init__(
        self,
        payloads: Iterable[bytes | None],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cut_every: int | None = None,
        cut_after_s: float | None = None,
        stall_after: int | None = None,
        stall_s: float = 30.0,
        malformed_every: int | None = None,
        malformed: MalformedKind = "no_data",
        status: int | None = None,
        status_count: int | None = None,
        retry_after_s: int | None = None,
        retry_ms: int | None = None,
        rate: float | None = None,
        heartbeat_s: float = 0.5,
        topic: str = "local.mediawiki.recentchange",
    ) -> None:
        """Misbehaviour is off by default.

        ``cut_every``/``cut_after_s`` drop each connection abruptly after that many events or
        seconds; ``stall_after`` goes silent for ``stall_s`` after that many events on a
        connection; ``malformed_every`` adds a broken frame of kind ``malformed`` after every
        Nth event; ``status`` answers the first ``status_count`` requests (all if ``None``)
        with that HTTP status and ``Retry-After: retry_after_s``; ``retry_ms`` is sent as the
        SSE ``retry:`` field; ``rate`` paces events per second; after the last event the
        connection is held open with a comment every ``heartbeat_s``.
        """
        self.payloads: list[bytes | None] = list(payloads)
        self.options = _Options(
            cut_every=cut_every,
            cut_after_s=cut_after_s,
            stall_after=stall_after,
            stall_s=stall_s,
            malformed_every=malformed_every,
            malformed=malformed,
            status=status,
            status_count=status_count,
            retry_after_s=retry_after_s,
            retry_ms=retry_ms,
            rate=rate,
            heartbeat_s=heartbeat_s,
            topic=topic,
        )
        self.exhausted = threading.Event()
        """Set once the last event has been written to some connection."""
        self.stopping = threading.Event()
        self._times: list[float | None] | None = None
        self._lock = threading.Lock()
        self._events_sent = 0
        self._httpd = _HTTPServer((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    @classmethod
    def from_files(cls, patterns: Sequence[str | Path], **options: Any) -> SSEServer:
        """Serve the recordings (JSONL or ``.sse``) matched by ``patterns``, in file order."""
        payloads: list[bytes | None] = []
        for path in expand_patterns(patterns):
            payloads.extend(None if r.defect else r.data for r in read_records(path))
        return cls(payloads, **options)

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        """The bound port (a free one when 0 was asked for)."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The stream URL, shaped like EventStreams' ``/v2/stream/recentchange``."""
        return f"http://{self.host}:{self.port}/v2/stream/recentchange"

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self.options.requests)

    @property
    def events_sent(self) -> int:
        """Event frames written over all connections (resent ones count again)."""
        with self._lock:
            return self._events_sent

    def event_id(self, index: int) -> str:
        """The ``id:`` of the event at ``index``, EventStreams-style (a JSON list)."""
        return json.dumps(
            [{"topic": self.options.topic, "partition": 0, "offset": index}],
            separators=(",", ":"),
        )

    def start(self) -> SSEServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name=f"sse-server:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the ``serve-sse`` command)."""
        try:
            self._httpd.serve_forever()
        finally:
            self.stopping.set()
            self._httpd.server_close()

    def stop(self) -> None:
        """Stop serving and release the port; open streams end within a heartbeat."""
        self.stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SSEServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _record(self, record: RequestRecord) -> int:
        with self._lock:
            self.options.requests.append(record)
            return len(self.options.requests)

    def _count_sent(self, n: int) -> None:
        with self._lock:
            self._events_sent += n

    def _time_of(self, index: int) -> float | None:
        if self._times is None:
            times: list[float | None] = []
            for payload in self.payloads:
                try:
                    times.append(event_time(json.loads(payload)) if payload else None)
                except (ValueError, RecursionError):
                    times.append(None)
            self._times = times
        return self._times[index]

    def start_index(self, last_event_id: str | None, since: str | None) -> int:
        """Where a request resumes: after ``Last-Event-ID``, else at ``since``, else at 0."""
        if last_event_id:
            entries = json.loads(last_event_id)
            if not isinstance(entries, list):
                raise ValueError("Last-Event-ID must be a JSON list")
            for entry in entries:
                if isinstance(entry, dict) and entry.get("topic") == self.options.topic:
                    if isinstance(entry.get("offset"), int):
                        return int(entry["offset"]) + 1
                    if isinstance(entry.get("timestamp"), int):
                        return self._first_at(entry["timestamp"] / 1000)
            raise ValueError(f"Last-Event-ID names no position in {self.options.topic}")
        if since:
            at = float(since) / 1000 if since.isdigit() else parse_iso_time(since)
            if at is None:
                raise ValueError(f"since={since!r} is neither ISO 8601 nor milliseconds")
            return self._first_at(at)
        return 0

    def _first_at(self, at: float) -> int:
        for index in range(len(self.payloads)):
            t = self._time_of(index)
            if t is not None and t >= at:
                return index
        return len(self.payloads)

    def frame(self, index: int) -> bytes:
        """The SSE frame of event ``index`` (no ``data:`` line when its payload is ``None``)."""
        head = b"event: message\nid: " + self.event_id(index).encode() + b"\n"
        payload = self.payloads[index]
        if payload is None:
            return head + b"\n"
        data = b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n"))
        return head + data + b"\n"

    def malformed_frame(self, index: int) -> bytes:
        """The broken frame injected after event ``index`` (same id, so resume skips it)."""
        head = b"event: message\nid: " + self.event_id(index).encode() + b"\n"
        kind = self.options.malformed
        if kind == "no_data":
            return head + b"\n"
        body = {
            "truncated_json": (self.payloads[index] or b'{"meta":{}}')[:40],
            "not_utf8": b'{"title":"\xff\xfe broken"}',
            "not_object": b'["not", "an", "object"]',
        }[kind]
        return head + b"data: " + body + b"\n\n"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type, owner: SSEServer) -> None:
        self.owner = owner
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sse-server %s - " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        owner = self.server.owner
        opts = owner.options
        last_event_id = self.headers.get("Last-Event-ID")
        query = urlsplit(self.path).query
        if opts.status is not None and (
            opts.status_count is None or len(owner.requests) < opts.status_count
        ):
            owner._record(RequestRecord(last_event_id, self.headers.get("User-Agent"), query, None))
            self._refuse(opts.status, f"simulated HTTP {opts.status}")
            return
        since = parse_qs(query).get("since", [None])[0]
        try:
            start = owner.start_index(last_event_id, since)
        except ValueError as exc:
            owner._record(RequestRecord(last_event_id, self.headers.get("User-Agent"), query, None))
            self._refuse(400, str(exc))
            return
        owner._record(RequestRecord(last_event_id, self.headers.get("User-Agent"), query, start))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._stream(owner, start)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            log.debug("sse-server: client went away")
        self.close_connection = True

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.server.owner.options.retry_after_s is not None:
            self.send_header("Retry-After", str(self.server.owner.options.retry_after_s))
        self.end_headers()
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _cut(self) -> None:
        """Drop the connection mid-stream, without the closing chunk, like a network failure."""
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stream(self, owner: SSEServer, index: int) -> None:
        opts = owner.options
        opened = time.monotonic()
        self._chunk(b":ok\n\n" + (b"retry: %d\n\n" % opts.retry_ms if opts.retry_ms else b""))
        sent = 0
        buffer: list[bytes] = []
        size = 0
        while index < len(owner.payloads):
            if owner.stopping.is_set():
                break
            if opts.cut_after_s is not None and time.monotonic() - opened >= opts.cut_after_s:
                self._flush(buffer, owner)
                self._cut()
                return
            if opts.rate:
                wait = opened + sent / opts.rate - time.monotonic()
                if wait > 0 and owner.stopping.wait(wait):
                    break
            frame = owner.frame(index)
            if opts.malformed_every and (index + 1) % opts.malformed_every == 0:
                frame += owner.malformed_frame(index)
            buffer.append(frame)
            size += len(frame)
            sent += 1
            index += 1
            cut = opts.cut_every is not None and sent % opts.cut_every == 0
            stall = opts.stall_after is not None and sent == opts.stall_after
            if cut or stall or opts.rate or size >= _BATCH_BYTES or index == len(owner.payloads):
                self._flush(buffer, owner)
                size = 0
            if index == len(owner.payloads):
                owner.exhausted.set()
            if cut:
                self._cut()
                return
            if stall and owner.stopping.wait(opts.stall_s):
                break
        self._flush(buffer, owner)
        self._hold(owner, opened)

    def _flush(self, buffer: list[bytes], owner: SSEServer) -> None:
        if buffer:
            self._chunk(b"".join(buffer))
            owner._count_sent(len(buffer))
            buffer.clear()

    def _hold(self, owner: SSEServer, opened: float) -> None:
        """After the last event: keep the stream open with comments, like a quiet live feed."""
        opts = owner.options
        owner.exhausted.set()
        while not owner.stopping.wait(opts.heartbeat_s):
            if opts.cut_after_s is not None and time.monotonic() - opened >= opts.cut_after_s:
                self._cut()
                return
            self._chunk(b":\n\n")
        self._chunk(b"")
