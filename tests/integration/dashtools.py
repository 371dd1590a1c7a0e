"""Helpers for the dashboard's browser tests: a Voila server, a database link that can be
cut, Chromium, and waits on the DOM markers the dashboard renders."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wiki_lib.bench.dashboard import CHART_SELECTORS, serve_dashboard
from wiki_lib.config import REPO_ROOT, Settings
from wiki_lib.stack._proc import free_port

ARTIFACTS = REPO_ROOT / "test-artifacts" / "dashboard"
FIRST_PAINT_S = 180.0
"""Bound on opening a page and drawing every chart (a loaded 2-core machine is slow)."""
ROUND_S = 60.0
"""Bound on one refresh after a control changed."""

SELECTORS = CHART_SELECTORS
"""One selector per chart, matching one element per mark (line, bar, slice, dot, row)."""


class TcpRelay:
    """A TCP forwarder to PostgreSQL that can be cut and restored: an outage on demand."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(32)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Refuse new connections and drop the open ones, as a stopped server does."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._server.close()
            self._server = None
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


@contextlib.contextmanager
def voila_server(settings: Settings, name: str, **dashboard: Any) -> Iterator[tuple[str, int]]:
    """``wikipulse dashboard`` on a free port for ``settings``; yields (url, pid)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve_dashboard(settings, ARTIFACTS / f"voila-{name}.log", **dashboard) as served:
        yield served


def kernel_pids(voila_pid: int) -> list[int]:
    """The kernels a Voila server runs now (its ipykernel children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != voila_pid or fields[0] == "Z":
                continue
            cmdline = (stat.parent / "cmdline").read_bytes()
            if b"ipykernel" in cmdline:
                found.append(int(stat.parent.name))
    return found


def wait_for(check: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail saying ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def status(page: Any) -> dict[str, str]:
    """The status line's markers: round, status, lookback, query."""
    line = page.locator(".wp-status-line")
    if line.count() == 0:
        return {}
    return {
        key: line.get_attribute(f"data-{key}") or ""
        for key in ("round", "status", "lookback", "query")
    }


def wait_round_after(
    page: Any,
    previous: int,
    timeout: float = ROUND_S,
    *,
    has: tuple[str, ...] = (),
    lacks: tuple[str, ...] = (),
    **expected: str,
) -> dict[str, str]:
    """Wait for a refresh newer than round ``previous`` whose markers match ``expected`` and
    whose view (``data-query``) has every string of ``has`` and none of ``lacks``."""

    def check() -> dict[str, str] | None:
        now = status(page)
        if not now or int(now["round"] or 0) <= previous:
            return None
        if not all(now.get(k) == v for k, v in expected.items()):
            return None
        view = now.get("query", "")
        if not all(h in view for h in has) or any(x in view for x in lacks):
            return None
        return now

    return wait_for(check, timeout, f"a refresh after round {previous} with {expected} {has}")


def counts(page: Any) -> dict[str, int]:
    """How many marks each chart shows now."""
    return {name: page.locator(sel).count() for name, sel in SELECTORS.items()}


def tile_values(page: Any) -> dict[str, str]:
    """The raw ``data-value`` of every KPI tile."""
    tiles = page.locator(".wp-tile")
    return {
        tiles.nth(i).get_attribute("data-key") or "": tiles.nth(i).get_attribute("data-value") or ""
        for i in range(tiles.count())
    }


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
