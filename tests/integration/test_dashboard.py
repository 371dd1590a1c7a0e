"""The live dashboard in a real browser (Debian's Chromium) against the real corpus.

The corpus goes through the real stream job into its own schema; ``wikipulse dashboard``
serves it through a TCP relay, so a test can take the database away and give it back. What
the page shows is compared with what the query API returns for the same view.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashtools import (
    ARTIFACTS,
    FIRST_PAINT_S,
    ROUND_S,
    TcpRelay,
    counts,
    kernel_pids,
    screenshot,
    status,
    tile_values,
    voila_server,
    wait_for,
    wait_round_after,
)
from streamtools import CorpusTopic, job_settings, run_to_end

from wiki_lib import db, query
from wiki_lib.bench.dashboard import CHROMIUM, CHROMIUM_ARGS
from wiki_lib.config import Settings, settings_env

pytestmark = pytest.mark.integration

END = "2024-08-22T20:40:00Z"
"""Five minutes after the corpus' last events: 5m holds one capture, 24h two."""
KNOWN_TITLE = "Cullen, County Tipperary"
"""An enwiki page edited in the corpus on 2024-08-22 at 04:03 UTC."""
WATCH_TERM = "Tipperary"
"""A watch term that finds it (and two categories that name the county)."""


@pytest.fixture(scope="module")
def loaded(
    corpus: CorpusTopic, spark: object, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """A schema filled from the corpus by one availableNow run of the stream job."""
    schema = f"dash_{uuid.uuid4().hex[:8]}"
    db.migrate(corpus.settings.postgres, schema)
    settings = job_settings(corpus, schema, tmp_path_factory.mktemp("dash"))
    run_to_end(settings, spark, schema)
    return settings


@pytest.fixture(scope="module")
def relay(loaded: Settings) -> Iterator[TcpRelay]:
    """The dashboard's way to PostgreSQL, which tests may cut."""
    link = TcpRelay(loaded.postgres.port)
    link.start()
    try:
        yield link
    finally:
        link.stop()


@pytest.fixture(scope="module")
def served(loaded: Settings, relay: TcpRelay) -> Iterator[tuple[str, int]]:
    """Voila on the loaded schema, through the relay, culling idle kernels quickly."""
    through = loaded.with_overrides(postgres={"port": relay.port})
    with voila_server(through, "corpus", cull_idle_s=20, cull_interval_s=5) as server:
        yield server


@pytest.fixture(scope="module")
def reader(loaded: Settings) -> Iterator[query.Reader]:
    """The query API straight on the loaded schema: what the page must show."""
    with query.connect(loaded) as session:
        yield session


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Page:
    """A tab with its console errors collected."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 3400})
        self.page = self.context.new_page()
        self.page.set_default_timeout(ROUND_S * 1000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def open(self, url: str) -> float:
        """Load ``url`` and wait for the first refresh; returns the seconds it took."""
        started = time.perf_counter()
        self.page.goto(url, timeout=FIRST_PAINT_S * 1000)
        wait_for(lambda: status(self.page), FIRST_PAINT_S, "the first refresh of the page")
        return time.perf_counter() - started

    def close(self, *, unload: bool = True) -> None:
        """Close the tab, running its unload handlers (Voila's kernel shutdown) if asked."""
        if unload and not self.page.is_closed():
            with contextlib.suppress(Exception):
                self.page.close(run_before_unload=True)
                if not self.page.is_closed():
                    self.page.wait_for_event("close", timeout=10_000)
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[Page]:
    """A fresh browser tab, closed (with its unload handlers) after the test."""
    page = Page(browser)
    try:
        yield page
    finally:
        page.close()


def expected(reader: query.Reader, lookback: str, **filters: Any) -> dict[str, Any]:
    """What the page must show for a view, straight from the query API."""
    f = query.Filters(**filters)
    common = {"end": END, "filters": f}
    kpis = query.kpis(reader, lookback, **common).iloc[0]
    traffic = query.traffic(reader, lookback, **common)
    wikis = query.top_wikis(reader, lookback, n=10, **common)
    edits = query.Filters(**{**filters, "type": ["edit", "new"]})
    return {
        "counts": {
            "rate": 3,
            "bytes": 2,
            "actions": 5 * len(traffic),
            "wikis": len(wikis),
            "languages": len(query.top_languages(reader, lookback, n=10, **common)),
            "projects": len(query.top_projects(reader, lookback, n=10, **common)),
            "users": len(query.top_users(reader, lookback, n=10, **common)),
            "namespaces": len(query.namespaces(reader, lookback, n=10, **common)),
            "peruser": len(query.edits_per_user(reader, lookback, **common)),
            "minor": 2,
            "adddel": 2,
            "scatter": len(
                query.recent_changes(reader, lookback, end=END, filters=edits, limit=400)
            ),
            "pages": len(query.top_pages(reader, lookback, n=10, **common)),
        },
        "tiles": {
            "events": float(kpis["events"]),
            "edits": float(kpis["edits"]),
            "bytes_added": kpis["bytes_added"] / 1e6,
            "bytes_removed": kpis["bytes_removed"] / 1e6,
            "events_per_second": float(kpis["events_per_second"]),
            "bot_share": float(kpis["bot_share"]),
            "top_wiki": str(wikis["wiki"].iloc[0]),
        },
    }


def _differences(page: Any, want: dict[str, Any]) -> list[str]:
    found = counts(page)
    problems = [
        f"{k}: {found[k]} marks, want {v}" for k, v in want["counts"].items() if found[k] != v
    ]
    tiles = tile_values(page)
    for key, value in want["tiles"].items():
        shown = tiles.get(key, "")
        if isinstance(value, str):
            ok = shown == value
        elif math.isnan(value):
            ok = shown in ("", "nan")
        else:
            ok = shown != "" and float(shown) == pytest.approx(value, rel=1e-9)
        if not ok:
            problems.append(f"tile {key}: {shown!r}, want {value!r}")
    return problems


def assert_page_shows(page: Any, want: dict[str, Any]) -> None:
    """Every chart has the API's number of marks and every tile the API's value."""
    deadline = time.monotonic() + ROUND_S
    problems = _differences(page, want)
    while problems and time.monotonic() < deadline:
        time.sleep(0.25)
        problems = _differences(page, want)
    assert problems == []


def test_every_chart_and_tile_shows_what_the_query_api_returns(
    served: tuple[str, int], tab: Page, reader: query.Reader
) -> None:
    url, _ = served
    want = expected(reader, "5m")
    assert want["counts"]["scatter"] > 50 and want["counts"]["wikis"] == 10
    seconds = tab.open(f"{url}?lookback=5m&end={END}")
    drawn = time.perf_counter()
    assert_page_shows(tab.page, want)
    total = seconds + time.perf_counter() - drawn
    assert status(tab.page)["status"] == "ok"
    assert tab.page.locator(".wp-banner-error").count() == 0
    link = tab.page.locator(".wp-pages a.wp-link").first.get_attribute("href") or ""
    assert link.startswith("https://") and "/wiki/" in link
    screenshot(tab.page, "live-5m")
    ARTIFACTS.joinpath("first-paint.json").write_text(
        json.dumps({"url_to_all_charts_s": round(total, 2), "first_refresh_s": round(seconds, 2)})
    )
    assert tab.errors == []


def test_url_controls_lookback_and_filters_change_the_charts(
    served: tuple[str, int], tab: Page, reader: query.Reader
) -> None:
    url, _ = served
    tab.open(f"{url}?lookback=15m&wiki=enwiki&end={END}")
    page = tab.page
    assert page.locator(".wp-control-wiki input").input_value() == "enwiki"
    assert status(page)["lookback"] == "15m"
    enwiki = expected(reader, "15m", wiki="enwiki")
    assert enwiki["tiles"]["events"] > 0, (
        "filtered figures come from activity_minute: the stream job must write it"
    )
    assert_page_shows(page, enwiki)
    assert page.locator(".wp-chart-wikis .svg-figure rect.bar").count() == 1
    page.evaluate("document.querySelector('.wp-chart-rate .svg-figure').dataset.kept = 'yes'")

    before = int(status(page)["round"])
    page.locator(".wp-control-lookback select").select_option(label="24 hours")
    wait_round_after(page, before, lookback="24h")
    assert_page_shows(page, expected(reader, "24h", wiki="enwiki"))

    before = int(status(page)["round"])
    page.locator(".wp-control-wiki input").fill("")
    page.locator(".wp-control-wiki input").press("Enter")
    wait_round_after(page, before, lookback="24h", lacks=("wiki=",))
    unfiltered = expected(reader, "24h")
    assert_page_shows(page, unfiltered)
    assert unfiltered["counts"]["wikis"] == 10

    before = int(status(page)["round"])
    page.locator(".wp-control-bot button", has_text="human").click()
    wait_round_after(page, before, has=("bot=human",))
    humans = expected(reader, "24h", bot=False)
    assert humans["tiles"]["bot_share"] == 0.0
    assert_page_shows(page, humans)
    screenshot(page, "live-24h-humans")
    # the charts were updated, not re-created
    assert page.evaluate("document.querySelector('.wp-chart-rate .svg-figure').dataset.kept")
    assert tab.errors == []


def test_watchlist_finds_a_known_title_and_saves_terms(
    served: tuple[str, int], tab: Page, reader: query.Reader, loaded: Settings
) -> None:
    url, _ = served
    matches = query.watchlist(reader, [WATCH_TERM], "24h", end=END)
    assert KNOWN_TITLE in set(matches["title"])
    tab.open(f"{url}?lookback=24h&end={END}")
    page = tab.page
    before = int(status(page)["round"])
    page.locator(".wp-watch-input input").fill(WATCH_TERM)
    page.locator(".wp-watch-input input").press("Enter")
    wait_round_after(page, before, has=(f"watch={WATCH_TERM}",))
    link = page.locator(".wp-watch-list").get_by_role("link", name=KNOWN_TITLE, exact=True)
    link.wait_for()
    assert link.get_attribute("href") == "https://en.wikipedia.org/wiki/Cullen%2C_County_Tipperary"
    badge = page.locator(f'.wp-badge[data-term="{WATCH_TERM}"]')
    assert badge.get_attribute("data-count") == str(len(matches))
    assert page.locator(".wp-watch-list-item").count() == len(matches)

    page.locator("button.wp-watch-save").click()
    page.locator(".wp-saved-text", has_text="saved 1 term (1 new)").wait_for()
    screenshot(page, "watchlist")
    from wiki_lib.dashboard.watchlist import saved_terms

    assert WATCH_TERM in saved_terms(reader)


def test_refreshes_update_in_place_every_interval(served: tuple[str, int], tab: Page) -> None:
    url, _ = served
    tab.open(f"{url}?lookback=5m&end={END}&refresh=2")
    page = tab.page
    wait_for(lambda: counts(page)["rate"] == 3, ROUND_S, "the first chart")
    page.evaluate(
        "for (const el of document.querySelectorAll('.wp-chart .svg-figure')) el.dataset.kept = 1"
    )
    figures = page.locator(".wp-chart .svg-figure").count()
    first = int(status(page)["round"])
    started = time.monotonic()
    wait_for(lambda: int(status(page)["round"]) >= first + 3, ROUND_S, "three more refreshes")
    elapsed = time.monotonic() - started
    assert elapsed >= 3.5, "refreshes come every 2 s, not faster"
    assert page.locator(".wp-chart .svg-figure").count() == figures
    assert page.locator(".wp-chart .svg-figure[data-kept='1']").count() == figures
    page.locator("button.wp-control-pause").click()
    time.sleep(1)
    paused_at = int(status(page)["round"])
    time.sleep(5)
    assert int(status(page)["round"]) == paused_at
    assert tab.errors == []


def test_a_database_outage_shows_a_banner_and_recovers(
    served: tuple[str, int], browser: Any, relay: TcpRelay
) -> None:
    url, _ = served
    first, second = Page(browser), Page(browser)
    try:
        first.open(f"{url}?lookback=5m&end={END}&refresh=2")
        wait_for(lambda: counts(first.page)["rate"] == 3, ROUND_S, "charts before the outage")
        relay.stop()
        try:
            wait_for(lambda: status(first.page).get("status") == "db_down", ROUND_S, "db_down")
            banner = first.page.locator(".wp-banner-error").inner_text()
            assert "Database unreachable since" in banner
            assert first.page.locator(".wp-chart-rate .svg-figure g.curve path.line").count() == 3
            screenshot(first.page, "outage-open-page")

            second.open(f"{url}?lookback=5m&end={END}")
            assert status(second.page)["status"] == "db_down"
            assert "Database unreachable" in second.page.locator(".wp-banner-error").inner_text()
            assert "Traceback" not in second.page.content()
            screenshot(second.page, "outage-new-page")
        finally:
            relay.start()
        for tab in (first, second):
            wait_for(lambda t=tab: status(t.page).get("status") == "ok", ROUND_S, "recovery")
            assert tab.page.locator(".wp-banner-error").count() == 0
        wait_for(lambda: counts(second.page)["rate"] == 3, ROUND_S, "charts after recovery")
        screenshot(second.page, "outage-recovered")
    finally:
        first.close()
        second.close()


def test_an_empty_database_says_waiting_for_data(
    loaded: Settings, browser: Any, pg_schema: str
) -> None:
    empty = loaded.with_overrides(postgres={"schema_name": pg_schema})
    with voila_server(empty, "empty") as (url, _):
        tab = Page(browser)
        try:
            tab.open(url)
            assert status(tab.page)["status"] == "waiting"
            assert "Waiting for data" in tab.page.locator(".wp-banner-info").inner_text()
            assert "no batch committed yet" in tab.page.locator(".wp-health").inner_text()
            assert tab.page.locator(".wp-tile").count() == 7
            assert "Traceback" not in tab.page.content()
            screenshot(tab.page, "empty-database")
            assert tab.errors == []
        finally:
            tab.close()


def test_closed_tabs_leave_no_kernels(served: tuple[str, int], browser: Any) -> None:
    url, voila_pid = served
    before = set(kernel_pids(voila_pid))
    polite = Page(browser)
    polite.open(f"{url}?lookback=5m&end={END}")
    mine = set(kernel_pids(voila_pid)) - before
    assert len(mine) == 1
    polite.close(unload=True)
    wait_for(lambda: not mine & set(kernel_pids(voila_pid)), 60, "shutdown on unload")

    crashed = Page(browser)
    crashed.open(f"{url}?lookback=5m&end={END}&refresh=2")
    theirs = set(kernel_pids(voila_pid)) - before
    assert len(theirs) == 1
    # Once the page's clock ticks, the kernel stops nudging it and only ticks keep it busy.
    first = int(status(crashed.page)["round"])
    wait_round_after(crashed.page, first)
    crashed.close(unload=False)  # no unload handler runs: only culling can reclaim it
    wait_for(lambda: not theirs & set(kernel_pids(voila_pid)), 120, "the culler", interval=2)


def test_the_notebook_executes_headless(
    loaded: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import papermill

    for key, value in settings_env(loaded, {}).items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "live.ipynb"
    papermill.execute_notebook(
        str(loaded.dashboard.notebook),
        str(out),
        parameters={"lookback": "24h", "end": END, "watch": WATCH_TERM},
        kernel_name="python3",
        progress_bar=False,
        execution_timeout=300,
    )
    nb = json.loads(out.read_text())
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "injected-parameters" in cells[1]["metadata"]["tags"]
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    views = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 1
    state = nb["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    html = " ".join(
        str(m["state"].get("value", "")) for m in state.values() if m["model_name"] == "HTMLModel"
    )
    assert 'data-status="ok"' in html and KNOWN_TITLE in html
