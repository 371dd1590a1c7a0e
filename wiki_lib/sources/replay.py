"""Replay of recorded events: JSON-lines files and raw ``.sse`` transcripts, in event-time order.

Recordings are read whole, ordered by event time (records whose time cannot be read keep the
time of the record before them, so broken lines stay where they were), then yielded at the
original pacing divided by ``speed``, or as fast as possible with ``speed=0``, optionally in a
loop. The bytes are never re-encoded: what the file holds is what the producer sends.
"""

from __future__ import annotations

import glob
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from wiki_lib.config import REPO_ROOT
from wiki_lib.errors import TerminalSourceError
from wiki_lib.events import REASON_SSE_NO_DATA, event_time
from wiki_lib.sources.base import RawEvent, Source
from wiki_lib.sources.sse import iter_frames

__all__ = [
    "DEFAULT_CORPUS",
    "SAMPLE_CAPTURE",
    "ReplaySource",
    "expand_patterns",
    "read_jsonl",
    "read_records",
    "read_transcript",
]

SAMPLE_CAPTURE = Path(__file__).resolve().parents[1] / "data" / "sample_recentchange.jsonl"
"""A small real capture shipped with the package (see ``wiki_lib/data/NOTICE``)."""
_SHARED_CORPUS = REPO_ROOT.parent / "shared" / "data" / "recentchange"
DEFAULT_CORPUS = _SHARED_CORPUS if _SHARED_CORPUS.is_dir() else SAMPLE_CAPTURE
"""The recorded corpus beside the checkout when there is one, else the shipped capture."""

_LOOP_GAP_S = 1.0
_SUFFIXES = (".jsonl", ".ndjson", ".json", ".sse")


def expand_patterns(patterns: Iterable[str | Path]) -> list[Path]:
    """Files named by globs, paths or directories (their recordings), each once, in order."""
    paths: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        if Path(text).is_dir():
            matches = sorted(str(p) for p in Path(text).iterdir() if p.suffix in _SUFFIXES)
        else:
            matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise TerminalSourceError(f"no recording matches {text!r}")
        paths.extend(Path(m) for m in matches if Path(m).is_file())
    return list(dict.fromkeys(paths))


def read_jsonl(path: Path, source: str = "replay") -> Iterator[RawEvent]:
    """One record per non-blank line, the line's bytes without its line ending."""
    for lineno, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line.strip():
            yield RawEvent(line, f"{path}:{lineno}", source)


def read_transcript(path: Path, source: str = "replay") -> Iterator[RawEvent]:
    """The ``data:`` payloads of an SSE transcript; a frame without ``data:`` is a defect."""
    with path.open("rb") as stream:
        number = 0
        for frame in iter_frames(stream):
            if frame.data is not None:
                number += 1
                yield RawEvent(frame.data, f"{path}#{number}", source)
            elif frame.event is not None or frame.id is not None:
                number += 1
                yield RawEvent(frame.raw, f"{path}#{number}", source, REASON_SSE_NO_DATA)


def read_records(path: Path, source: str = "replay") -> Iterator[RawEvent]:
    """Records of a recording, by its suffix: ``.sse`` is a transcript, anything else JSONL."""
    if path.suffix == ".sse":
        return read_transcript(path, source)
    return read_jsonl(path, source)


def _time_of(data: bytes) -> float | None:
    try:
        return event_time(json.loads(data))
    except (ValueError, RecursionError):
        return None


class ReplaySource(Source):
    """Recordings replayed in event-time order, paced by ``speed`` (0 = as fast as possible)."""

    name = "replay"

    def __init__(
        self,
        patterns: Sequence[str | Path],
        *,
        speed: float = 0.0,
        loop: bool = False,
        start_after: str | None = None,
    ) -> None:
        """``start_after`` is the position of the last record already delivered (a resume)."""
        super().__init__()
        if speed < 0:
            raise TerminalSourceError(f"speed must be >= 0, not {speed}")
        # Absolute paths: record positions name them, and a resume must find them again.
        self.paths = [p.resolve() for p in expand_patterns(patterns)]
        self.speed = speed
        self.loop = loop
        self.start_after = start_after
        self.resumable = not loop
        self._records: list[tuple[float, RawEvent]] | None = None
        self._closed = threading.Event()

    @property
    def total(self) -> int | None:
        """The number of records still to replay, unless looping."""
        return None if self.loop else len(self._remaining())

    def records(self) -> list[tuple[float, RawEvent]]:
        """``(event time, record)`` of every file, ordered by time (read on first use)."""
        if self._records is None:
            timed: list[tuple[float | None, RawEvent]] = []
            for path in self.paths:
                try:
                    timed.extend((_time_of(raw.data), raw) for raw in read_records(path, self.name))
                except OSError as exc:
                    raise TerminalSourceError(f"cannot read recording {path}: {exc}") from exc
            known = [t for t, _ in timed if t is not None]
            previous = known[0] if known else 0.0
            filled: list[tuple[float, RawEvent]] = []
            for t, raw in timed:
                previous = previous if t is None else t
                filled.append((previous, raw))
            filled.sort(key=lambda item: item[0])
            self._records = filled
        return self._records

    def _remaining(self) -> list[tuple[float, RawEvent]]:
        """The records after ``start_after`` (all of them without it)."""
        records = self.records()
        if self.start_after is None:
            return records
        for index, (_, raw) in enumerate(records):
            if raw.position == self.start_after:
                return records[index + 1 :]
        raise TerminalSourceError(
            f"the saved position {self.start_after!r} is not in {len(self.paths)} recording(s); "
            "they changed since: replay them from the start (produce --from-start)"
        )

    def __iter__(self) -> Iterator[RawEvent]:
        records = self._remaining()
        if not records:
            return
        first, last = records[0][0], records[-1][0]
        started = time.monotonic()
        offset = 0.0
        round_ = 0
        while not self._closed.is_set():
            for event_t, raw in records:
                if self.speed > 0:
                    wait = started + (offset + event_t - first) / self.speed - time.monotonic()
                    if wait > 0 and self._closed.wait(wait):
                        return
                elif self._closed.is_set():
                    return
                if round_:
                    yield RawEvent(raw.data, f"{raw.position}@{round_}", raw.source, raw.defect)
                else:
                    yield raw
            if not self.loop:
                return
            round_ += 1
            offset += last - first + _LOOP_GAP_S

    def close(self) -> None:
        """Stop after the current record (also interrupts a pacing wait)."""
        self._closed.set()
