"""The assembled dashboard without a database: messages instead of tracebacks, controls."""

from __future__ import annotations

import pytest

from wiki_lib.config import load_settings
from wiki_lib.dashboard import show_panel
from wiki_lib.dashboard.app import LiveDashboard
from wiki_lib.dashboard.params import ViewParams
from wiki_lib.stack._proc import free_port


def _dashboard(**view: object) -> LiveDashboard:
    settings = load_settings(postgres={"port": free_port()})
    return LiveDashboard(settings, ViewParams(**view), warnings=("lookback='2m' is not one",))


def test_database_down_renders_a_banner() -> None:
    dashboard = _dashboard()
    try:
        snapshot = dashboard.refresh(wait=True)
        assert snapshot is not None and snapshot.status == "db_down"
        assert "wp-state-db_down" in dashboard.widget._dom_classes
        assert "wp-state-loading" not in dashboard.widget._dom_classes
        assert "Database unreachable since" in dashboard.banner.value
        assert "Ignored: lookback=" in dashboard.banner.value
        assert 'data-status="db_down"' in dashboard.status.value
        assert "Traceback" not in dashboard.banner.value
    finally:
        dashboard.close()


def test_controls_make_a_new_view_and_ask_for_a_refresh() -> None:
    dashboard = _dashboard(lookback="15m", refresh_s=5)
    try:
        controls = dashboard.controls
        controls.lookback.value = "1h"
        controls.wiki.value = "enwiki, dewiki"
        controls.bot.value = "human"
        controls.types["edit"].value = True
        controls.namespace.value = "0, talk"
        assert dashboard.view.lookback == "1h"
        assert dashboard.view.wiki == ("enwiki", "dewiki")
        assert dashboard.view.bot is False
        assert dashboard.view.types == ("edit",)
        assert dashboard.view.namespace == (0,)
        assert any("talk" in w for w in dashboard._warnings)
        controls.pause.value = True
        assert dashboard.view.paused and dashboard.ticker.paused
        controls.pause.value = False
        controls.refresh.value = 2
        assert not dashboard.ticker.paused and dashboard.ticker.widget.interval == 2000
        dashboard.watch.box.value = "Paris, Olympics"
        assert dashboard.view.watch == ("Paris", "Olympics")
        assert dashboard.view.lookback == "1h"
        assert dashboard.loop.wait_idle(30)
        assert dashboard.rounds >= 1
    finally:
        dashboard.close()


def test_one_panel_goes_into_any_notebook_in_two_lines() -> None:
    settings = load_settings(postgres={"port": free_port()})
    view = show_panel("battlefield", settings, lookback="5m")
    try:
        assert view.view.lookback == "5m"
        assert view.panel.name == "battlefield"
        assert "Database unreachable" in view.banner.value
        assert view.ticker.widget in view.widget.children
    finally:
        view.ticker.stop()
        view.loop.stop()
    with pytest.raises(KeyError, match="unknown panel"):
        show_panel("pie-in-the-sky", settings)
