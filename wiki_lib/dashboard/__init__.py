"""Live dashboards: bqplot charts that update in place, a refresh loop off the UI thread.

The Voila page ``voila_dashboards/live.ipynb`` is two lines over :func:`live`. Any notebook can
reuse the pieces: ``show_panel("battlefield", lookback="5m")`` for one refreshing panel, or the
chart builders in :mod:`.charts` with data from :mod:`wiki_lib.query`.
"""

from wiki_lib.dashboard.app import LiveDashboard, PanelView, live, show_panel
from wiki_lib.dashboard.charts import (
    BarChart,
    PieChart,
    ScatterChart,
    StackedBarsChart,
    TimeSeriesChart,
)
from wiki_lib.dashboard.params import ViewParams, parse_query_string
from wiki_lib.dashboard.refresh import RefreshLoop, Ticker
from wiki_lib.dashboard.snapshot import Snapshot, take_snapshot

__all__ = [
    "BarChart",
    "LiveDashboard",
    "PanelView",
    "PieChart",
    "RefreshLoop",
    "ScatterChart",
    "Snapshot",
    "StackedBarsChart",
    "Ticker",
    "TimeSeriesChart",
    "ViewParams",
    "live",
    "parse_query_string",
    "show_panel",
    "take_snapshot",
]
