"""The refresh loop: off the calling thread, coalescing, surviving failures."""

from __future__ import annotations

import threading
import time

from wiki_lib.dashboard.refresh import RefreshLoop, Ticker


def test_work_runs_off_the_calling_thread_and_newest_request_wins() -> None:
    started = threading.Event()
    release = threading.Event()
    shown: list[tuple[int, str]] = []

    def work(n: int) -> tuple[int, str]:
        started.set()
        release.wait(5)
        return n, threading.current_thread().name

    loop: RefreshLoop[int, tuple[int, str]] = RefreshLoop(work, shown.append)
    loop.request(1)
    assert started.wait(5)
    for n in range(2, 20):
        loop.request(n)  # returns at once although the worker is busy
    release.set()
    assert loop.wait_idle(5)
    loop.stop()
    assert [n for n, _ in shown] == [1, 19]
    assert {name for _, name in shown} == {"wikipulse-refresh"}
    assert loop.stats.rounds == 2 and loop.stats.failures == 0


def test_a_failing_round_is_counted_and_the_loop_goes_on() -> None:
    shown: list[int] = []

    def work(n: int) -> int:
        if n == 1:
            raise RuntimeError("boom")
        return n

    loop: RefreshLoop[int, int] = RefreshLoop(work, shown.append)
    loop.request(1)
    assert loop.wait_idle(5)
    loop.request(2)
    assert loop.wait_idle(5)
    loop.stop()
    assert shown == [2]
    assert loop.stats.failures == 1


def test_jobs_run_on_the_worker_and_stop_ends_it() -> None:
    ran: list[str] = []
    loop: RefreshLoop[int, int] = RefreshLoop(lambda n: n, lambda n: None)
    loop.call(lambda: ran.append(threading.current_thread().name))
    assert loop.wait_idle(5)
    loop.stop()
    loop.request(3)
    time.sleep(0.1)
    assert ran == ["wikipulse-refresh"]
    assert loop.stats.rounds == 0


def test_run_now_works_on_the_calling_thread() -> None:
    loop: RefreshLoop[int, int] = RefreshLoop(lambda n: n * 2, lambda n: None)
    assert loop.run_now(21) == 42
    assert loop.stats.last_seconds is not None


def test_ticker_ticks_pause_and_resume() -> None:
    ticks: list[int] = []
    ticker = Ticker(5, lambda: ticks.append(1))
    assert ticker.widget.interval == 5000
    ticker.widget.value += 1  # what the page's timer does
    ticker.widget.value += 1
    assert len(ticks) == 2
    ticker.set_interval(None)
    ticker.widget.value += 1
    assert len(ticks) == 2 and ticker.ticks == 3
    ticker.set_interval(2)
    ticker.widget.value += 1
    assert len(ticks) == 3 and ticker.widget.interval == 2000


def test_ticker_kicks_the_page_clock_until_it_ticks() -> None:
    ticker = Ticker(2, lambda: None, kick_for_s=30)
    seen: list[bool] = []
    ticker.widget.observe(lambda change: seen.append(change["new"]), names="playing")
    ticker.start()
    deadline = time.monotonic() + 10
    while seen.count(True) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seen.count(True) >= 2, "no page yet: it keeps turning the clock on"
    ticker.widget.value += 1  # the page ticked
    time.sleep(2.5)
    kicks = len(seen)
    time.sleep(2.5)
    assert len(seen) == kicks, "after the first tick it leaves the clock alone"
    ticker.stop()
    assert not ticker.widget.playing


def test_ticker_gives_up_without_a_page() -> None:
    ticker = Ticker(2, lambda: None, kick_for_s=0.2)
    ticker.start()
    assert ticker._kicker is not None
    ticker._kicker.join(5)
    assert not ticker._kicker.is_alive()
