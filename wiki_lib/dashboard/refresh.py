"""The refresh loop: queries on a worker thread, a clock that lives in the browser.

Two pieces, usable apart:

* :class:`RefreshLoop` runs ``work(params)`` on one daemon thread and hands the result to
  ``show``. Requests coalesce (only the newest pending one runs), so a slow database never
  builds a queue, and the kernel's main thread, which handles the controls, never waits for
  a query.
* :class:`Ticker` is a hidden ``ipywidgets.Play`` whose timer runs in the page. Every tick
  asks the loop for a refresh. When the tab closes, the ticks stop, the kernel goes quiet and
  Voila's culler can reclaim it; a timer in the kernel would keep it looking busy forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import ipywidgets as widgets

__all__ = ["LoopStats", "RefreshLoop", "Ticker"]

log = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class LoopStats:
    """What the loop has done so far."""

    rounds: int
    failures: int
    last_seconds: float | None
    busy: bool


class RefreshLoop(Generic[P, R]):
    """Run ``work`` off the UI thread for the newest requested params, then ``show`` it."""

    def __init__(
        self,
        work: Callable[[P], R],
        show: Callable[[R], None],
        *,
        name: str = "wikipulse-refresh",
    ) -> None:
        self._work = work
        self._show = show
        self._name = name
        self._wake = threading.Condition()
        self._pending: P | None = None
        self._jobs: list[Callable[[], None]] = []
        self._stopped = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self._rounds = 0
        self._failures = 0
        self._last: float | None = None

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def request(self, params: P) -> None:
        """Ask for a refresh with ``params``; replaces a request that has not started yet."""
        with self._wake:
            if self._stopped:
                return
            self._pending = params
            self._ensure_thread()
            self._wake.notify()

    def call(self, job: Callable[[], None]) -> None:
        """Run a one-off ``job`` (a save, say) on the worker thread, before the next refresh."""
        with self._wake:
            if self._stopped:
                return
            self._jobs.append(job)
            self._ensure_thread()
            self._wake.notify()

    def run_now(self, params: P) -> R:
        """Work and show on the calling thread (the first paint, or a script without a page)."""
        result = self._timed(params)
        self._show(result)
        return result

    def _timed(self, params: P) -> R:
        started = time.perf_counter()
        try:
            return self._work(params)
        finally:
            self._last = time.perf_counter() - started
            self._rounds += 1

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._jobs and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                jobs, self._jobs = self._jobs, []
                params, self._pending = self._pending, None
                self._busy = True
            try:
                for job in jobs:
                    self._guard(job)
                if params is not None:
                    self._guard(lambda p=params: self._show(self._timed(p)))
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _guard(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            self._failures += 1
            log.exception("refresh job failed")

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is pending or running (tests, scripts); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._busy or self._pending is not None or self._jobs:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Let the worker finish its round and end; later requests are ignored."""
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def stats(self) -> LoopStats:
        """Rounds done, failures, the last round's seconds, whether one is running."""
        return LoopStats(self._rounds, self._failures, self._last, self._busy)


class Ticker:
    """A clock in the page: calls ``on_tick`` every ``interval_s`` while the tab is open.

    The page's ``Play`` widget only starts its timer when it sees ``playing`` turn true, and
    it cannot see that before its view exists, which the kernel cannot know. So
    :meth:`start` turns it off and on again, backing off, until the first tick arrives (or
    ``kick_for_s`` passes: no page, as in a headless run, or a tab closed before it ticked;
    the kicks count as activity, so they must end for the culler to see an idle kernel).
    Pausing just ignores ticks; the page keeps ticking, which is cheap and keeps an open
    page's kernel from being culled.
    """

    def __init__(
        self, interval_s: float | None, on_tick: Callable[[], None], *, kick_for_s: float = 120.0
    ) -> None:
        self.widget = widgets.Play(
            value=0,
            min=0,
            max=10**9,
            step=1,
            interval=int((interval_s or 5) * 1000),
            repeat=True,
            show_repeat=False,
            playing=False,
            layout=widgets.Layout(display="none"),
        )
        self.widget.add_class("wp-ticker")
        self.paused = interval_s is None
        self.ticks = 0
        self._on_tick = on_tick
        self._kick_for_s = kick_for_s
        self._ticked = threading.Event()
        self._stopped = threading.Event()
        self._kicker: threading.Thread | None = None
        self.widget.observe(self._tick, names="value")

    def start(self) -> None:
        """Start the page's clock (idempotent)."""
        if self._kicker is None:
            self._kicker = threading.Thread(target=self._kick, name="wikipulse-ticker", daemon=True)
            self._kicker.start()

    def _kick(self) -> None:
        deadline = time.monotonic() + self._kick_for_s
        delay = 0.5
        while not (self._ticked.is_set() or self._stopped.is_set()):
            if time.monotonic() > deadline:
                return
            self.widget.playing = False
            self.widget.playing = True
            self._ticked.wait(delay)
            delay = min(delay * 2, 8.0)

    def _tick(self, _change: object) -> None:
        self.ticks += 1
        self._ticked.set()
        if not self.paused:
            self._on_tick()

    def set_interval(self, interval_s: float | None) -> None:
        """Tick every ``interval_s`` seconds; None pauses."""
        self.paused = interval_s is None
        if interval_s is not None:
            self.widget.interval = int(interval_s * 1000)

    def stop(self) -> None:
        """Stop kicking and ticking."""
        self._stopped.set()
        self.paused = True
        self.widget.playing = False
