"""How the job stops: the wait for the running batch, and the progress listener's end."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import pytest

from wiki_lib.stream.job import ProgressListener, stop_query


class _ScriptedQuery:
    """Reports a running trigger for its first ``busy`` looks at ``status``, then none.

    Its last reported batch is 7 until look ``batch_ends`` (if given), then 8.
    """

    name = "scripted"

    def __init__(self, busy: int, *, active: bool = True, batch_ends: int | None = None) -> None:
        self.busy = busy
        self.isActive = active
        self.batch_ends = batch_ends
        self.looks = 0
        self.stopped_at: int | None = None

    @property
    def lastProgress(self) -> dict[str, object]:
        ended = self.batch_ends is not None and self.looks >= self.batch_ends
        return {"batchId": 8 if ended else 7}

    @property
    def status(self) -> dict[str, object]:
        self.looks += 1
        return {"isTriggerActive": self.looks <= self.busy, "isDataAvailable": True}

    def stop(self) -> None:
        self.stopped_at = self.looks
        self.isActive = False


def test_stop_waits_for_the_running_trigger() -> None:
    query = _ScriptedQuery(busy=3)
    stop_query(query, drain_s=30)  # type: ignore[arg-type]
    assert query.stopped_at == 4  # stopped at the first look that found no trigger running


def test_stop_in_a_backlog_waits_for_the_running_batch_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a backlog a trigger is always running; the stop waits for the next progress."""
    query = _ScriptedQuery(busy=10**9, batch_ends=3)
    with caplog.at_level(logging.WARNING, logger="wiki_lib.stream.job"):
        stop_query(query, drain_s=30)  # type: ignore[arg-type]
    assert query.stopped_at == 3
    assert "still in a batch" not in caplog.text


def test_stop_cancels_a_batch_that_outlasts_the_drain(caplog: pytest.LogCaptureFixture) -> None:
    query = _ScriptedQuery(busy=10**9)
    with caplog.at_level(logging.WARNING, logger="wiki_lib.stream.job"):
        stop_query(query, drain_s=0.2)  # type: ignore[arg-type]
    assert query.stopped_at is not None and 1 <= query.stopped_at < 100
    assert "still in a batch after 0.2 s" in caplog.text


def test_a_terminated_query_is_stopped_without_waiting() -> None:
    query = _ScriptedQuery(busy=10**9, active=False)
    stop_query(query, drain_s=30)  # type: ignore[arg-type]
    assert query.stopped_at == 0


class _RecordingSink:
    """Stands in for PostgresSink's two calls the listener makes; notes their order."""

    def __init__(self, record_s: float = 0.0) -> None:
        self.record_s = record_s
        self.calls: list[str] = []

    def record_spark_progress(self, query_name: str, progress: object) -> None:
        self.calls.append("record started")
        time.sleep(self.record_s)
        self.calls.append("record finished")

    def close(self) -> None:
        self.calls.append("closed")


def _progress(name: str) -> SimpleNamespace:
    return SimpleNamespace(progress=SimpleNamespace(name=name, batchId=7))


def test_listener_records_its_own_query_until_closed() -> None:
    sink = _RecordingSink()
    listener = ProgressListener(sink, "mine")  # type: ignore[arg-type]
    listener.onQueryProgress(_progress("someone_else"))
    listener.onQueryProgress(_progress("mine"))
    listener.close()
    listener.onQueryProgress(_progress("mine"))
    assert sink.calls == ["record started", "record finished", "closed"]


def test_listener_close_waits_for_the_record_in_flight() -> None:
    sink = _RecordingSink(record_s=0.3)
    listener = ProgressListener(sink, "mine")  # type: ignore[arg-type]
    recording = threading.Thread(target=listener.onQueryProgress, args=(_progress("mine"),))
    recording.start()
    while not sink.calls:
        time.sleep(0.005)
    listener.close()
    recording.join()
    assert sink.calls == ["record started", "record finished", "closed"]


def test_listener_tells_when_a_run_has_ended() -> None:
    listener = ProgressListener(_RecordingSink(), "mine")  # type: ignore[arg-type]
    assert not listener.await_end("run-1", timeout_s=0.05)
    later = threading.Timer(0.1, listener.onQueryTerminated, args=(SimpleNamespace(runId="run-1"),))
    later.start()
    listener.onQueryTerminated(SimpleNamespace(runId="run-of-another-query"))
    assert listener.await_end("run-1", timeout_s=5)
    later.join()
