"""Dashboard benchmark: first paint in a browser, one refresh round, browser memory over time.

Three figures for the live dashboard against a throw-away schema of the real serving tables:

* **first paint**: seconds from opening the page in Chromium (a fresh browser context, so
  nothing is cached, and a fresh Voila kernel) to the first round drawn with every chart's
  marks, read from the page's own markers (``.wp-status-line[data-round]`` and one selector
  per chart, as the browser tests use); median and max over a few loads;
* **refresh round**: the server-side seconds of :func:`~wiki_lib.dashboard.snapshot.take_snapshot`,
  the dashboard's one round of queries, with ``hours`` of data at ``rate`` events/s, once as the
  2 s loop runs it (slow panels reused from the previous round) and once with every panel
  queried (after a control changes), plus the seconds the panels take to apply it;
* **memory**: one page refreshing every 2 s for ``minutes``, sampled every minute after a
  forced garbage collection: JS heap (CDP ``Performance.getMetrics``), DOM nodes, event
  listeners, the renderer processes' RSS and the Voila kernel's RSS; start, end and the
  least-squares growth per hour.

The data is generated inside PostgreSQL with the query benchmark's table templates (a Spark
run of ~5 million events would take longer than the measurement), and while the page is open a
feeder keeps adding the newest events and minutes, so every refresh draws new data, as live.
Playwright is a development dependency and is imported only when the browser parts run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from psycopg2 import sql

from wiki_lib import db, query
from wiki_lib.bench.serving_data import HOURS_SQL, MINUTES_SQL, TABLE_SQL, WIKIS_SQL
from wiki_lib.config import Settings, settings_env
from wiki_lib.dashboard.params import ViewParams
from wiki_lib.dashboard.snapshot import Snapshot, take_snapshot
from wiki_lib.errors import WikiError
from wiki_lib.query.plan import ROLLED_UNTIL, kept_from_key
from wiki_lib.stack._proc import free_port, port_open

__all__ = [
    "CHART_SELECTORS",
    "dashboard_bench",
    "growth_per_hour",
    "load_live_data",
    "memory_summary",
    "quantile",
    "serve_dashboard",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
CHART_SELECTORS = {
    "rate": ".wp-chart-rate .svg-figure g.curve path.line",
    "bytes": ".wp-chart-bytes .svg-figure g.curve path.line",
    "actions": ".wp-chart-actions .svg-figure rect.bar",
    "wikis": ".wp-chart-wikis .svg-figure rect.bar",
    "languages": ".wp-chart-languages .svg-figure rect.bar",
    "projects": ".wp-chart-projects .svg-figure rect.bar",
    "users": ".wp-chart-users .svg-figure rect.bar",
    "namespaces": ".wp-chart-namespaces .svg-figure rect.bar",
    "peruser": ".wp-chart-peruser .svg-figure rect.bar",
    "minor": ".wp-chart-minor .svg-figure path.slice",
    "adddel": ".wp-chart-adddel .svg-figure path.slice",
    "scatter": ".wp-chart-scatter .svg-figure path.dot",
    "pages": ".wp-pages .wp-page-row",
}
"""One selector per chart, one element per mark (the browser tests' ``dashtools.SELECTORS``)."""

PAINT_TIMEOUT_S = 300.0
PLAYWRIGHT_MISSING = (
    "the dashboard benchmark needs Playwright (a dev dependency): pip install -e '.[dev]'"
)

_RECENT = """
INSERT INTO {t} (event_id, event_time, wiki, server_name, type, namespace, title, "user",
    is_bot, is_minor, length_delta, comment)
SELECT %(prefix)s || i, %(rc_first)s + i * %(step)s * interval '1 second', w.wiki, w.server_name,
    (ARRAY['edit', 'edit', 'edit', 'categorize', 'categorize', 'log', 'new'])[1 + i %% 7],
    (ARRAY[0, 0, 0, 14, 6, 2, 4, 1, 3, 10])[1 + (i / 7) %% 10],
    CASE WHEN i %% 97 < 3 THEN 'Hot page ' || i %% 30 ELSE 'Page ' || (i * 40503 %% 2000000) END,
    CASE WHEN i %% 3 = 0 THEN 'Bot ' || i %% 50 ELSE 'User ' || (i * 7919 %% 60000) END,
    i %% 3 = 0, i %% 5 = 0, (i * 2654435761 + %(salt)s) %% 2001 - 800,
    'bench edit #' || i %% 1000
FROM generate_series(0::bigint, %(rc_rows)s - 1) AS i
JOIN bench_wikis AS w ON w.id = CASE WHEN i %% 10 < 4 THEN i %% 3 + 1 ELSE i * 7919 %% 300 + 1 END
"""
"""``rc_rows`` events ``step`` seconds apart from ``rc_first``; ids start with ``prefix``."""

_PROGRESS = """
INSERT INTO {t} (query_name, batch_id, committed_at, rows_read, rows_written, rows_late,
    duplicates_dropped, watermark, max_event_time, processing_ms, input_rows_per_s,
    processed_rows_per_s)
VALUES (%(name)s, %(batch)s, %(now)s, %(rows)s, %(rows)s, 0, 0, %(now)s - interval '2 minutes',
    %(now)s, 300, %(rate)s, %(rate)s * 3)
"""

_PER_MINUTE = {  # rows per minute, top value as a share of a minute's events
    "traffic_minute": (1, 0.0),
    "wiki_minute": (250, 0.3),
    "namespace_minute": (20, 0.4),
    "activity_minute": (450, 0.2),
    "page_minute": (1500, 0.0),
    "user_minute": (700, 0.0),
}
_ENTITY_TOP = {"page_minute": 2, "user_minute": 20}


# --- pure helpers ---------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` with linear interpolation (numpy's default)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def growth_per_hour(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` samples, per hour (0 for under two)."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    spread = sum((t - mean_t) ** 2 for t, _ in samples)
    if spread == 0:
        return 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in samples) / spread
    return slope * 3600.0


def memory_summary(samples: Sequence[dict[str, float]], key: str, scale: float = 1.0) -> str:
    """``start → end, growth/h`` of one sampled measure (``samples`` carry ``t_s`` and ``key``;
    values divided by ``scale``); samples without the key are skipped."""
    points = [(s["t_s"], s[key] / scale) for s in samples if s.get(key) is not None]
    if not points:
        return "n/a"
    start, end = points[0][1], points[-1][1]
    return f"{start:,.1f} → {end:,.1f}, {growth_per_hour(points):+,.1f}/h"


def _ms(values: Sequence[float]) -> str:
    median, p95 = quantile(values, 0.5) * 1000, quantile(values, 0.95) * 1000
    return f"median {median:,.0f} ms, p95 {p95:,.0f} ms"


# --- data -----------------------------------------------------------------------------------


def _minute_tables(cur: Any, schema: str, first: datetime, minutes: int, rate: float) -> None:
    """``minutes`` minutes from ``first`` into every ``*_minute`` table (existing rows kept)."""
    for name, (rows, share) in _PER_MINUTE.items():
        top = _ENTITY_TOP.get(name, int(rate * 60 * share))
        statement = TABLE_SQL[name].format(
            t=f"{schema}.{name}",
            time=MINUTES_SQL.format(n=minutes - 1),
            rows=rows,
            top=top,
            scale=60,
        )
        cur.execute(statement + " ON CONFLICT DO NOTHING", {"rate": rate, "first": first})


def load_live_data(
    settings: Settings, schema: str, *, rate: float, hours: float, now: datetime
) -> dict[str, int]:
    """Fill a migrated ``schema`` as a pipeline running at ``rate`` events/s for ``hours``
    would have left it at ``now`` (and as long before, so "previous period" figures exist):
    every minute table, the hourly roll-ups of whole hours, ``recent_changes`` for ``hours``,
    the serving marks and the progress log. Returns rows per table."""
    minute_end = now.replace(second=0, microsecond=0)
    hour_end = minute_end.replace(minute=0)
    minutes = int(hours * 2 * 60) + 60
    whole_hours = int(hours * 2) + 1
    rc_first = now - timedelta(hours=hours)
    rc_rows = int(rate * 3600 * hours)
    conn = db.connect(settings.postgres, "admin")
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute(WIKIS_SQL)
            _minute_tables(cur, schema, minute_end - timedelta(minutes=minutes - 1), minutes, rate)
            for name, (rows, share) in _PER_MINUTE.items():
                hour = name.replace("_minute", "_hour")
                top = _ENTITY_TOP.get(name, int(rate * 60 * share))
                hour_rows = rows if name == "namespace_minute" else rows * 3
                if name in ("page_minute", "user_minute"):
                    hour_rows = min(rows * 4, settings.retention.top_k_per_hour)
                cur.execute(
                    TABLE_SQL[name].format(
                        t=f"{schema}.{hour}",
                        time=HOURS_SQL.format(n=whole_hours - 1),
                        rows=1 if name == "traffic_minute" else hour_rows,
                        top=top * 60,
                        scale=3600,
                    ),
                    {"rate": rate, "first_hour": hour_end - timedelta(hours=whole_hours)},
                )
            cur.execute(
                _RECENT.format(t=f"{schema}.recent_changes"),
                {
                    "prefix": "l",
                    "rc_first": rc_first,
                    "step": 1 / rate,
                    "rc_rows": rc_rows,
                    "salt": 0,
                },
            )
            cur.execute(
                f"INSERT INTO {schema}.hour_cutoffs SELECT %(first)s + h * interval '1 hour', 2, 3 "
                f"FROM generate_series(0, {whole_hours - 1}) AS h",
                {"first": hour_end - timedelta(hours=whole_hours)},
            )
            marks = {
                ROLLED_UNTIL: hour_end,
                kept_from_key("page_minute"): minute_end - timedelta(minutes=minutes - 1),
                kept_from_key("user_minute"): minute_end - timedelta(minutes=minutes - 1),
                kept_from_key("recent_changes"): rc_first,
            }
            for key, at in marks.items():
                cur.execute(f"INSERT INTO {schema}.serving_state VALUES (%s, %s)", (key, at))
            for batch in range(100):
                cur.execute(
                    _PROGRESS.format(t=f"{schema}.pipeline_progress"),
                    {
                        "name": settings.stream.query_name,
                        "batch": batch,
                        "now": now - timedelta(seconds=(100 - batch) * 2),
                        "rows": int(rate * 2),
                        "rate": rate,
                    },
                )
            counts = {}
            for name in (
                "recent_changes",
                *_PER_MINUTE,
                *(n.replace("_minute", "_hour") for n in _PER_MINUTE),
            ):
                cur.execute(f"SELECT count(*) FROM {schema}.{name}")
                counts[name] = int(cur.fetchone()[0])
        db.vacuum_analyze(conn, schema, counts)
    finally:
        conn.close()
    return counts


class Feeder:
    """Keeps a loaded schema live: every ``every_s`` the events since the last call go into
    ``recent_changes`` with a progress row, and each new minute into the minute tables."""

    def __init__(self, settings: Settings, schema: str, rate: float, since: datetime) -> None:
        self.settings = settings
        self.schema = schema
        self.rate = rate
        self.last = since
        self.last_minute = since.replace(second=0, microsecond=0)
        self.batch = 100
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="dashboard-bench-feeder", daemon=True
        )

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        conn = db.connect(self.settings.postgres, "admin")
        try:
            with conn, conn.cursor() as cur:
                cur.execute(WIKIS_SQL)  # a temporary table: one per connection
            while not self._stop.wait(2.0):
                try:
                    self._feed(conn)
                except Exception:  # the measurement goes on with stale data; counted
                    conn.rollback()
                    self.failures += 1
        finally:
            conn.close()

    def _feed(self, conn: Any) -> None:
        now = datetime.now(UTC)
        rows = int((now - self.last).total_seconds() * self.rate)
        schema = self.schema
        with conn, conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = off")
            cur.execute(
                _RECENT.format(t=f"{schema}.recent_changes"),
                {
                    "prefix": f"f{self.batch}-",
                    "rc_first": self.last,
                    "step": 1 / self.rate,
                    "rc_rows": rows,
                    "salt": self.batch * 7,
                },
            )
            minute = now.replace(second=0, microsecond=0)
            if minute > self.last_minute:
                _minute_tables(
                    cur,
                    schema,
                    self.last_minute + timedelta(minutes=1),
                    int((minute - self.last_minute) / timedelta(minutes=1)),
                    self.rate,
                )
                self.last_minute = minute
            cur.execute(
                _PROGRESS.format(t=f"{schema}.pipeline_progress"),
                {
                    "name": self.settings.stream.query_name,
                    "batch": self.batch,
                    "now": now,
                    "rows": rows,
                    "rate": self.rate,
                },
            )
        self.batch += 1
        self.last = self.last + timedelta(seconds=rows / self.rate)


# --- refresh round --------------------------------------------------------------------------


def refresh_rounds(
    settings: Settings, schema: str, lookback: str, *, rounds: int, every_s: float = 2.0
) -> dict[str, str]:
    """Time the dashboard's query round for ``lookback``: ``rounds`` rounds ``every_s`` apart
    as the live loop runs them (reusing slow panels), then ``rounds`` with every panel, and
    the seconds the dashboard's panels take to apply a snapshot."""
    from wiki_lib.dashboard.app import LiveDashboard

    view = ViewParams(lookback=lookback, refresh_s=every_s)
    figures: dict[str, str] = {}
    with query.connect(settings, schema=schema) as reader:
        page = LiveDashboard(settings, view.replace(paused=True), reader=reader)
        try:
            steady: list[float] = []
            full: list[float] = []
            apply: list[float] = []
            previous: Snapshot | None = None
            statuses: set[str] = set()
            for i in range(rounds + 1):
                started = time.monotonic()
                snap = take_snapshot(
                    reader, view, recent_limit=settings.dashboard.recent_limit, previous=previous
                )
                statuses.add(snap.status)
                applied = time.perf_counter()
                page._show(snap)
                if i:  # the first round has nothing to reuse
                    steady.append(snap.seconds)
                    apply.append(time.perf_counter() - applied)
                previous = snap if snap.has_data else previous
                time.sleep(max(0.0, every_s - (time.monotonic() - started)))
            for _ in range(rounds):
                snap = take_snapshot(reader, view, recent_limit=settings.dashboard.recent_limit)
                statuses.add(snap.status)
                full.append(snap.seconds)
        finally:
            page.ticker.stop()
            page.loop.stop()
            page.widget.close()
    figures[f"refresh {lookback}, live loop (slow panels reused)"] = _ms(steady)
    figures[f"refresh {lookback}, every panel queried"] = _ms(full)
    figures[f"refresh {lookback}, panels applying the snapshot"] = _ms(apply)
    figures[f"refresh {lookback}, statuses"] = ",".join(sorted(statuses))
    return figures


# --- browser --------------------------------------------------------------------------------


@contextlib.contextmanager
def serve_dashboard(
    settings: Settings, log_path: Path, **dashboard: Any
) -> Iterator[tuple[str, int]]:
    """``wikipulse dashboard`` on a free port, 2 s refreshes unless ``dashboard`` says
    otherwise; yields (url, pid) and stops it afterwards (benchmarks and browser tests)."""
    port = free_port()
    served = settings.with_overrides(dashboard={"port": port, "refresh_s": 2, **dashboard})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wiki_lib.cli", "dashboard"],
            env=settings_env(served),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while not port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise WikiError(f"Voila did not start; see {log_path}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/", proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _page_state(page: Any) -> dict[str, Any]:
    """The status line's round and status and every chart's mark count, in one call."""
    return page.evaluate(
        """(selectors) => {
            const line = document.querySelector('.wp-status-line');
            const marks = {};
            for (const [name, sel] of Object.entries(selectors)) {
                marks[name] = document.querySelectorAll(sel).length;
            }
            return {
                round: line ? Number(line.dataset.round || 0) : 0,
                status: line ? line.dataset.status : '',
                marks: marks,
                nodes: document.getElementsByTagName('*').length,
                // what bqplot's Bars leave behind at each redraw (see markup.bars_sweeper)
                stray: document.querySelectorAll(
                    '.wp-chart g:has(> g.bargroup) > g:not([class]):empty').length,
            };
        }""",
        CHART_SELECTORS,
    )


def _drawn(state: dict[str, Any]) -> bool:
    return state["round"] >= 1 and state["status"] == "ok" and all(state["marks"].values())


def _wait(page: Any, check: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the page may be navigating
            state = _page_state(page)
            if check(state):
                return state
        time.sleep(0.1)
    raise WikiError(f"the dashboard did not draw in {timeout:.0f}s (last state: {state})")


def first_paint(browser: Any, url: str, loads: int) -> dict[str, Any]:
    """Seconds from ``goto`` to every chart drawn, over ``loads`` fresh contexts."""
    seconds = []
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1400, "height": 3400})
        page = context.new_page()
        try:
            started = time.perf_counter()
            page.goto(url, timeout=PAINT_TIMEOUT_S * 1000)
            state = _wait(page, _drawn, PAINT_TIMEOUT_S)
            seconds.append(time.perf_counter() - started)
            marks = state["marks"]
        finally:
            with contextlib.suppress(Exception):
                page.close(run_before_unload=True)
                time.sleep(1.0)  # Voila's unload handler shuts the kernel down
            context.close()
    return {
        "first paint loads": loads,
        "first paint median s": round(quantile(seconds, 0.5), 2),
        "first paint max s": round(max(seconds), 2),
        "first paint all s": ", ".join(f"{s:.1f}" for s in seconds),
        "marks drawn (last load)": ", ".join(f"{k} {v}" for k, v in marks.items()),
    }


def _proc_tree() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    tree = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmd = (
                (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            tree[int(stat.parent.name)] = (ppid, cmd)
    return tree


def _descendants(tree: dict[int, tuple[int, str]], root: int) -> list[int]:
    found, todo = [], [root]
    while todo:
        parent = todo.pop()
        children = [pid for pid, (ppid, _) in tree.items() if ppid == parent]
        found += children
        todo += children
    return found


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss(marker: str, voila_pid: int) -> dict[str, float | None]:
    """RSS of the renderers of the browser started with ``marker``, and of Voila's kernels."""
    tree = _proc_tree()
    browsers = [p for p, (_, cmd) in tree.items() if marker in cmd and "--type=" not in cmd]
    renderers = [
        p
        for b in browsers
        for p in _descendants(tree, b)
        if "--type=renderer" in tree.get(p, (0, ""))[1]
    ]
    kernels = [p for p in _descendants(tree, voila_pid) if "ipykernel" in tree.get(p, (0, ""))[1]]
    out: dict[str, float | None] = {"renderer_rss_mib": None, "kernel_rss_mib": None}
    with contextlib.suppress(OSError):
        if renderers:
            out["renderer_rss_mib"] = round(sum(_rss_mib(p) for p in renderers), 1)
        if kernels:
            out["kernel_rss_mib"] = round(sum(_rss_mib(p) for p in kernels), 1)
    return out


def memory_run(
    browser: Any, url: str, minutes: float, marker: str, voila_pid: int, progress: Path
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One page refreshing every 2 s for ``minutes``; a sample a minute after a forced GC."""
    context = browser.new_context(viewport={"width": 1400, "height": 3400})
    page = context.new_page()
    samples: list[dict[str, Any]] = []
    try:
        page.goto(url, timeout=PAINT_TIMEOUT_S * 1000)
        _wait(page, _drawn, PAINT_TIMEOUT_S)
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        started = time.monotonic()
        for i in range(int(minutes) + 1):
            time.sleep(max(0.0, started + 60 * i - time.monotonic()))
            cdp.send("HeapProfiler.collectGarbage")
            metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            state = _page_state(page)
            sample = {
                "t_s": round(time.monotonic() - started, 1),
                "round": state["round"],
                "status": state["status"],
                "js_heap_mib": round(metrics["JSHeapUsedSize"] / 2**20, 2),
                "dom_nodes": state["nodes"],
                "cdp_nodes": metrics.get("Nodes"),
                "listeners": metrics.get("JSEventListeners"),
                "marks": sum(state["marks"].values()),
                "stray_bar_groups": state["stray"],
                **_rss(marker, voila_pid),
            }
            samples.append(sample)
            with progress.open("a") as f:
                f.write(json.dumps(sample) + "\n")
    finally:
        with contextlib.suppress(Exception):
            page.close(run_before_unload=True)
        context.close()
    rounds = samples[-1]["round"] - samples[0]["round"]
    span = samples[-1]["t_s"] - samples[0]["t_s"]
    figures = {
        "memory minutes": round(span / 60, 1),
        "memory refresh rounds": f"{rounds} ({span / max(rounds, 1):.1f} s each)",
        "JS heap MiB (start → end, growth)": memory_summary(samples, "js_heap_mib"),
        "DOM nodes (start → end, growth)": memory_summary(samples, "dom_nodes"),
        "empty bar groups (start → end, growth)": memory_summary(samples, "stray_bar_groups"),
        "JS event listeners (start → end, growth)": memory_summary(samples, "listeners"),
        "renderer RSS MiB (start → end, growth)": memory_summary(samples, "renderer_rss_mib"),
        "Voila kernel RSS MiB (start → end, growth)": memory_summary(samples, "kernel_rss_mib"),
    }
    return figures, samples


# --- the suite ------------------------------------------------------------------------------


def dashboard_bench(
    settings: Settings,
    *,
    out: Path,
    minutes: float = 30.0,
    rate: float = 500.0,
    hours: float = 3.0,
    rounds: int = 20,
    loads: int = 5,
    keep: bool = False,
) -> dict[str, Any]:
    """The three dashboard figures (see the module), against a fresh schema it drops after."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise WikiError(PLAYWRIGHT_MISSING) from exc
    if not Path(CHROMIUM).exists():
        raise WikiError(f"{CHROMIUM} is missing: apt-get install chromium")
    schema = f"bench_dash_{uuid.uuid4().hex[:8]}"
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    progress = out / f"dashboard-{stamp}-samples.jsonl"
    figures: dict[str, Any] = {
        "data": f"{hours:g} h at {rate:g} events/s (10x live) in schema {schema}",
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    db.migrate(settings.postgres, schema)
    settings = settings.with_overrides(postgres={"schema_name": schema})
    try:
        started = time.perf_counter()
        now = datetime.now(UTC)
        counts = load_live_data(settings, schema, rate=rate, hours=hours, now=now)
        figures["load s"] = round(time.perf_counter() - started, 1)
        figures.update(
            {
                f"rows {k}": v
                for k, v in counts.items()
                if k in ("recent_changes", "activity_minute")
            }
        )
        for lookback in ("3h", "15m"):
            figures.update(refresh_rounds(settings, schema, lookback, rounds=rounds))
        marker = f"--wikipulse-bench={uuid.uuid4().hex[:8]}"
        with (
            Feeder(settings, schema, rate, now) as feeder,
            serve_dashboard(settings, out / f"dashboard-{stamp}-voila.log") as (url, voila_pid),
            sync_playwright() as pw,
        ):
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, marker])
            try:
                figures.update(first_paint(browser, url + "?lookback=15m", loads))
                memory, samples = memory_run(
                    browser, url + "?lookback=15m&refresh=2", minutes, marker, voila_pid, progress
                )
                figures.update(memory)
            finally:
                browser.close()
            figures["feeder failures"] = feeder.failures
        figures["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        samples_path = out / f"dashboard-{stamp}-memory.json"
        samples_path.write_text(json.dumps(samples, indent=1))
        figures["memory samples"] = samples_path.name
    finally:
        if not keep:
            conn = db.connect(settings.postgres, "admin")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.close()
    return figures
