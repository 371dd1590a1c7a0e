"""``stop_query``'s wait for the running batch, on a query that reports scripted statuses."""

from __future__ import annotations

import logging

import pytest

from wiki_lib.stream.job import stop_query


class _ScriptedQuery:
    """Reports a running trigger for its first ``busy`` looks at ``status``, then none."""

    name = "scripted"

    def __init__(self, busy: int, *, active: bool = True) -> None:
        self.busy = busy
        self.isActive = active
        self.looks = 0
        self.stopped_at: int | None = None

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
