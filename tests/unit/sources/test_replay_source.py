"""Replay of recordings: bytes kept, event-time order, pacing, looping, transcripts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from wiki_lib.errors import TerminalSourceError
from wiki_lib.events import REASON_SSE_NO_DATA, event_time
from wiki_lib.sources import ReplaySource, expand_patterns, read_records

DATA = Path(__file__).resolve().parents[4] / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")


def event(n: int, second: int) -> bytes:
    return json.dumps(
        {"meta": {"id": f"id-{n}", "dt": f"2024-01-01T00:00:{second:02d}Z"}, "n": n}
    ).encode()


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Four events out of order, one broken line in the middle, a blank line, CRLF endings."""
    path = tmp_path / "small.jsonl"
    lines = [event(0, 3), event(1, 1), b"{broken", b"", event(2, 2), event(3, 0)]
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    return path


def test_jsonl_lines_are_kept_byte_for_byte() -> None:
    for path in sorted((DATA / "recentchange").glob("*.jsonl")):
        lines = [line for line in path.read_bytes().split(b"\n") if line]
        assert [r.data for r in read_records(path)] == lines


def test_transcripts_carry_the_same_payloads_as_their_jsonl() -> None:
    for transcript in sorted((DATA / "sse").glob("*.sse")):
        records = list(read_records(transcript))
        name = transcript.stem.replace("example.events", "example_events") + ".jsonl"
        jsonl = DATA / "recentchange" / name
        assert [r.data for r in records if r.defect is None] == [
            r.data for r in read_records(jsonl)
        ]


def test_truncated_transcript_ends_with_a_frame_without_data() -> None:
    path = DATA / "sse" / "kirajano_wiki-streams__wiki_recentchange_2021-09-30.sse"
    records = list(read_records(path))
    assert len(records) == 63
    assert [r.defect for r in records].count(REASON_SSE_NO_DATA) == 1
    assert records[-1].defect == REASON_SSE_NO_DATA
    assert records[-1].data.startswith(b"event: message\nid: [")


def test_records_come_in_event_time_order_and_broken_lines_stay_put(small: Path) -> None:
    source = ReplaySource([small])
    records = list(source)
    assert source.total == 5
    assert [r.data for r in records] == [
        event(3, 0),
        event(1, 1),
        b"{broken",
        event(2, 2),
        event(0, 3),
    ]
    assert records[2].position == f"{small}:3"
    assert all(r.source == "replay" for r in records)


def test_whole_corpus_is_ordered_by_event_time() -> None:
    source = ReplaySource([DATA / "recentchange", str(DATA / "sse" / "*.sse")])
    times = [event_time(json.loads(r.data)) for r in source if r.defect is None]
    assert len(times) == source.total - 1
    assert times == sorted(times)


def test_pacing_follows_event_time_divided_by_speed(small: Path) -> None:
    started = time.monotonic()
    stamps = [time.monotonic() - started for _ in ReplaySource([small], speed=10)]
    assert stamps[-1] == pytest.approx(0.3, abs=0.15)
    assert stamps[1] == pytest.approx(0.1, abs=0.08)


def test_loop_goes_round_again_with_distinct_positions(small: Path) -> None:
    source = ReplaySource([small], loop=True)
    assert source.total is None
    records = []
    for record in source:
        records.append(record)
        if len(records) == 12:
            source.close()
    assert len(records) == 12
    assert records[5].data == records[0].data
    assert records[5].position == f"{records[0].position}@1"
    assert records[10].position == f"{records[0].position}@2"


def test_close_interrupts_a_pacing_wait(small: Path) -> None:
    source = ReplaySource([small], speed=0.001)
    records = []
    reader = threading.Thread(target=lambda: records.extend(source))
    reader.start()
    time.sleep(0.2)
    source.close()
    reader.join(timeout=5)
    assert not reader.is_alive()
    assert len(records) == 1


def test_patterns_must_match_something(tmp_path: Path) -> None:
    with pytest.raises(TerminalSourceError, match="no recording matches"):
        expand_patterns([tmp_path / "*.jsonl"])
    with pytest.raises(TerminalSourceError):
        ReplaySource([small_file(tmp_path)], speed=-1)


def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "one.jsonl"
    path.write_bytes(event(0, 0) + b"\n")
    return path


def test_globs_and_directories_expand_once_each(tmp_path: Path) -> None:
    path = small_file(tmp_path)
    assert expand_patterns([tmp_path, str(tmp_path / "*.jsonl"), path]) == [path]


def test_a_resumed_replay_continues_after_the_saved_position(small: Path) -> None:
    everything = list(ReplaySource([small]))
    assert ReplaySource([small]).resumable and not ReplaySource([small], loop=True).resumable
    resumed = ReplaySource([small], start_after=everything[1].position)
    assert resumed.total == 3
    assert [r.position for r in resumed] == [r.position for r in everything[2:]]
    assert list(ReplaySource([small], start_after=everything[-1].position)) == []


def test_a_position_the_recordings_do_not_have_is_refused(small: Path) -> None:
    with pytest.raises(TerminalSourceError, match="changed since"):
        list(ReplaySource([small], start_after=f"{small}:99"))


def test_relative_and_absolute_names_give_the_same_positions(
    small: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(small.parent)
    relative = [r.position for r in ReplaySource([small.name])]
    assert relative == [r.position for r in ReplaySource([small])]
