"""The live source: Wikimedia EventStreams (Server-Sent Events) with resume and reconnects.

sseclient-py splits the byte stream into frames. The fields of each frame are parsed here at
byte level rather than with ``SSEClient.events()``, because that method decodes text (one
non-UTF-8 byte would end the stream) and silently drops frames without ``data:``, which must
reach the dead-letter topic instead, and ``retry:``-only frames, whose delay must be honoured.

Resume follows the EventStreams protocol: the last ``id:`` seen (a JSON list of
topic/partition/offset or timestamp) is sent back as ``Last-Event-ID`` on every reconnect; a
restart passes the persisted id in; ``since`` starts from a point in the past instead.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.exceptions
from sseclient import SSEClient

from wiki_lib.errors import TerminalSourceError, TransientSourceError
from wiki_lib.events import REASON_SSE_NO_DATA
from wiki_lib.sources.base import RawEvent, Source

__all__ = ["Frame", "SSESource", "iter_frames", "parse_frame"]

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024
_MIN_BACKOFF_S = 0.01


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE frame (the lines up to a blank line), fields undecoded where it matters."""

    event: str | None
    id: str | None
    data: bytes | None
    """The ``data:`` lines joined by ``\\n``; ``None`` when the frame had no ``data:`` line."""
    retry: int | None
    raw: bytes

    @property
    def is_empty(self) -> bool:
        """Only comments (``:ok``, heartbeats): nothing to dispatch or remember."""
        return self.event is None and self.id is None and self.data is None and self.retry is None


def parse_frame(chunk: bytes) -> Frame:
    """Parse one frame as the SSE specification says, keeping ``data`` as bytes."""
    event: str | None = None
    event_id: str | None = None
    retry: int | None = None
    data: list[bytes] = []
    for line in chunk.splitlines():
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"id":
            if b"\0" not in value:
                event_id = value.decode("utf-8", "replace")
        elif field == b"event":
            event = value.decode("utf-8", "replace")
        elif field == b"retry" and value.isdigit():
            retry = int(value)
    return Frame(event, event_id, b"\n".join(data) if data else None, retry, chunk)


class _FrameSplitter(SSEClient):
    """sseclient-py's stitching of network chunks into frames, with our field parser."""

    def frames(self) -> Iterator[Frame]:
        for chunk in self._read():
            yield parse_frame(chunk)


def iter_frames(chunks: Iterable[bytes]) -> Iterator[Frame]:
    """Frames of a byte stream given in arbitrary pieces (network reads, file lines)."""
    yield from _FrameSplitter(_Closable(chunks)).frames()


class _Closable:
    """The iterable-with-close() that sseclient-py expects as its event source."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def _read_chunks(raw: Any) -> Iterator[bytes]:
    """Whatever has arrived, as soon as it arrives (``read1``), until the server closes."""
    while chunk := raw.read1(_READ_SIZE):
        yield chunk


class SSESource(Source):
    """Wikimedia EventStreams (or anything speaking the same SSE dialect) as a :class:`Source`."""

    name = "live"
    resumable = True

    def __init__(
        self,
        url: str,
        *,
        user_agent: str,
        last_event_id: str | None = None,
        since: str | None = None,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        """``user_agent`` must name a contact (Wikimedia's policy); ``since`` is ISO 8601 or ms."""
        super().__init__()
        self.url = url
        self.user_agent = user_agent
        self.last_event_id = last_event_id
        self.since = since
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.server_retry_s: float | None = None
        self._retry_after_s: float | None = None
        self._closed = threading.Event()
        self._session = requests.Session()
        self._response: requests.Response | None = None
        self._lock = threading.Lock()
        self._rng = random.Random()

    def __iter__(self) -> Iterator[RawEvent]:
        attempt = 0
        while not self._closed.is_set():
            self._retry_after_s = None
            try:
                for raw in self._stream():
                    attempt = 0
                    yield raw
                problem = "the server ended the stream"
            except TransientSourceError as exc:
                problem = str(exc)
            if self._closed.is_set():
                return
            self.reconnects += 1
            delay = self.backoff(attempt)
            attempt += 1
            log.warning(
                "%s: %s; reconnect %d in %.2fs with Last-Event-ID %s",
                self.name,
                problem,
                self.reconnects,
                delay,
                self.last_event_id,
            )
            if self._closed.wait(delay):
                return

    def backoff(self, attempt: int) -> float:
        """Exponential delay from the server's ``retry:`` (or our initial one), with jitter."""
        base = self.server_retry_s if self.server_retry_s is not None else self.initial_backoff_s
        delay = min(self.max_backoff_s, max(base, _MIN_BACKOFF_S) * 2**attempt)
        delay = self._rng.uniform(delay / 2, delay)
        if self._retry_after_s is not None:
            delay = max(delay, min(self._retry_after_s, self.max_backoff_s))
        return delay

    def _request_headers(self) -> tuple[dict[str, str], dict[str, str]]:
        headers = {
            "Accept": "text/event-stream",
            "Cache-Control": "no-cache",
            "User-Agent": self.user_agent,
        }
        params: dict[str, str] = {}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        elif self.since is not None:
            params["since"] = self.since
        return headers, params

    def _stream(self) -> Iterator[RawEvent]:
        headers, params = self._request_headers()
        try:
            response = self._session.get(
                self.url, headers=headers, params=params, stream=True, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise TransientSourceError(f"cannot connect to {self.url}: {exc}") from exc
        with self._lock:
            self._response = response
        try:
            self._check_status(response)
            yield from self._events(response)
        finally:
            with self._lock:
                self._response = None
            response.close()

    def _check_status(self, response: requests.Response) -> None:
        code = response.status_code
        if code == 200:
            return
        try:
            body = response.text[:300].strip()
        except requests.RequestException:
            body = ""
        where = f"HTTP {code} {response.reason} from {self.url}"
        if code == 429 or code >= 500:
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit():
                self._retry_after_s = float(retry_after)
            raise TransientSourceError(f"{where} (will retry): {body}")
        raise TerminalSourceError(
            f"{where}: {body or 'no body'}. Retrying cannot help: check the URL, the "
            f"User-Agent ({self.user_agent!r} must name a contact) and the Last-Event-ID "
            f"({self.last_event_id!r}) or since ({self.since!r})."
        )

    def _events(self, response: requests.Response) -> Iterator[RawEvent]:
        frames = iter_frames(_read_chunks(response.raw))
        try:
            for frame in frames:
                if self._closed.is_set():
                    return
                if frame.retry is not None:
                    self.server_retry_s = frame.retry / 1000
                if frame.id is not None:
                    self.last_event_id = frame.id
                if frame.data is not None:
                    yield RawEvent(frame.data, self.last_event_id, self.name)
                elif frame.event is not None or frame.id is not None:
                    yield RawEvent(frame.raw, self.last_event_id, self.name, REASON_SSE_NO_DATA)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            if not self._closed.is_set():
                raise TransientSourceError(f"stream from {self.url} broke: {exc}") from exc

    def close(self) -> None:
        """Stop iterating: wakes a read blocked on the socket by shutting the connection down."""
        self._closed.set()
        with self._lock:
            response = self._response
        if response is not None:
            sock = getattr(getattr(response.raw, "connection", None), "sock", None)
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._session.close()
