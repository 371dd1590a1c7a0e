"""The live dashboard: controls, panels and the refresh loop assembled, and notebook entries.

:func:`live` is what ``voila_dashboards/live.ipynb`` calls; it is a notebook's edge, so it
reads the settings and the page's query string (Voila puts it in ``QUERY_STRING``) there and
passes them down. :class:`LiveDashboard` takes them as arguments. :func:`show_panel` puts
one panel with its own refresh into any notebook::

    from wiki_lib.dashboard import show_panel
    show_panel("battlefield", lookback="5m", wiki="enwiki")
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import ipywidgets as widgets

from wiki_lib import query
from wiki_lib.config import Settings, load_settings
from wiki_lib.dashboard import markup
from wiki_lib.dashboard.panels import (
    PANEL_TYPES,
    ActionsPanel,
    BattlefieldPanel,
    BytesPanel,
    CharacterPanel,
    HealthPanel,
    KpiPanel,
    PagesPanel,
    Panel,
    RatePanel,
    WatchPanel,
)
from wiki_lib.dashboard.params import (
    BOT_CHOICES,
    LOOKBACKS,
    PROJECTS,
    REFRESH_RANGE,
    TOP_N_CHOICES,
    TYPE_CHOICES,
    ViewParams,
    parse_query_string,
    to_query_string,
)
from wiki_lib.dashboard.refresh import RefreshLoop, Ticker
from wiki_lib.dashboard.snapshot import Snapshot, take_snapshot
from wiki_lib.dashboard.watchlist import save_terms, saved_terms
from wiki_lib.errors import WikiError

__all__ = ["Controls", "LiveDashboard", "PanelView", "live", "notebook_view", "show_panel"]

log = logging.getLogger(__name__)


def notebook_view(
    settings: Settings, query_string: str, **parameters: Any
) -> tuple[ViewParams, tuple[str, ...]]:
    """The view of a notebook's parameters with the page URL applied on top; plus warnings.

    Parameters use the URL's formats (``lookback="15m"``, ``wiki="enwiki,dewiki"``,
    ``bot="human"``), so both go through the same validation. Empty values keep the defaults;
    ``refresh_s=0`` means the ``dashboard.refresh_s`` setting.
    """
    given = {k: v for k, v in parameters.items() if v is not None and v != ""}
    seconds = given.pop("refresh_s", 0)
    if given.pop("paused", False):
        given["refresh"] = "pause"
    elif seconds:
        given["refresh"] = seconds
    if "types" in given:
        given["type"] = given.pop("types")
    base = ViewParams(refresh_s=settings.dashboard.refresh_s)
    from_notebook = parse_query_string(urlencode({k: str(v) for k, v in given.items()}), base)
    from_url = parse_query_string(query_string, from_notebook.params)
    return from_url.params, from_notebook.warnings + from_url.warnings


class Controls:
    """The widgets that set the view; ``on_change`` gets a new :class:`ViewParams`."""

    def __init__(
        self, view: ViewParams, on_change: Callable[[ViewParams, tuple[str, ...]], None]
    ) -> None:
        self._base = view
        self._on_change = on_change
        self.lookback = widgets.Dropdown(
            options=[(label, key) for key, label in LOOKBACKS.items()],
            value=view.lookback,
            description="Lookback",
            layout=widgets.Layout(width="190px"),
        )
        self.lookback.add_class("wp-control-lookback")
        low, high = REFRESH_RANGE
        self.refresh = widgets.IntSlider(
            value=int(view.refresh_s),
            min=low,
            max=high,
            step=1,
            description="Refresh (s)",
            continuous_update=False,
            layout=widgets.Layout(width="260px"),
        )
        self.refresh.add_class("wp-control-refresh")
        self.pause = widgets.ToggleButton(
            value=view.paused,
            description="Pause",
            icon="pause",
            tooltip="stop refreshing",
            layout=widgets.Layout(width="90px"),
        )
        self.pause.add_class("wp-control-pause")
        self.top_n = widgets.Dropdown(
            options=sorted({*TOP_N_CHOICES, view.top_n}),
            value=view.top_n,
            description="Top",
            layout=widgets.Layout(width="160px"),
        )
        self.top_n.add_class("wp-control-top")
        self.wiki = self._text("Wiki", view.wiki, "enwiki, dewiki", "wp-control-wiki")
        self.project = widgets.Combobox(
            value=",".join(view.project),
            options=list(PROJECTS),
            placeholder="wikipedia",
            description="Project",
            ensure_option=False,
            continuous_update=False,
            layout=widgets.Layout(width="220px"),
        )
        self.project.add_class("wp-control-project")
        self.language = self._text("Language", view.language, "en, de", "wp-control-language")
        self.namespace = self._text(
            "Namespace", tuple(str(n) for n in view.namespace), "0, 14", "wp-control-namespace"
        )
        self.bot = widgets.ToggleButtons(
            options=list(BOT_CHOICES),
            value=next(k for k, v in BOT_CHOICES.items() if v == view.bot),
            style={"button_width": "76px"},
        )
        self.bot.add_class("wp-control-bot")
        self.types = {
            kind: widgets.ToggleButton(
                value=kind in view.types, description=kind, layout=widgets.Layout(width="92px")
            )
            for kind in TYPE_CHOICES
        }
        for kind, button in self.types.items():
            button.add_class("wp-control-type")
            button.add_class(f"wp-control-type-{kind}")
        self.end = self._text(
            "End", (view.end,) if view.end else (), "live · latest · ISO time", "wp-control-end"
        )
        for control in self._all():
            control.observe(self._changed, names="value")
        row1 = widgets.HBox([self.lookback, self.refresh, self.pause, self.top_n, self.end])
        row2 = widgets.HBox([self.wiki, self.project, self.language, self.namespace])
        row3 = widgets.HBox(
            [self.bot, widgets.HTML('<span class="wp-label">Types</span>'), *self.types.values()]
        )
        for row in (row1, row2, row3):
            row.add_class("wp-row")
        self.widget = widgets.VBox([row1, row2, row3])
        self.widget.add_class("wp-controls")

    @staticmethod
    def _text(label: str, values: Sequence[str], hint: str, css: str) -> widgets.Text:
        text = widgets.Text(
            value=", ".join(values),
            placeholder=hint,
            description=label,
            continuous_update=False,
            layout=widgets.Layout(width="220px"),
        )
        text.add_class(css)
        return text

    def _all(self) -> list[widgets.Widget]:
        return [
            self.lookback,
            self.refresh,
            self.pause,
            self.top_n,
            self.wiki,
            self.project,
            self.language,
            self.namespace,
            self.bot,
            self.end,
            *self.types.values(),
        ]

    def view(self) -> tuple[ViewParams, tuple[str, ...]]:
        """The view the controls show, and what in them was not understood."""
        fields = {
            "lookback": self.lookback.value,
            "wiki": self.wiki.value,
            "project": self.project.value,
            "language": self.language.value,
            "namespace": self.namespace.value,
            "bot": self.bot.value,
            "type": ",".join(k for k, b in self.types.items() if b.value),
            "top": str(self.top_n.value),
            "end": self.end.value.strip(),
            "refresh": "pause" if self.pause.value else str(self.refresh.value),
        }
        parsed = parse_query_string(urlencode(fields), self._base)
        return parsed.params, parsed.warnings

    def _changed(self, _change: object) -> None:
        self._on_change(*self.view())


class LiveDashboard:
    """Every panel of the live picture, refreshed in place off the UI thread."""

    def __init__(
        self,
        settings: Settings,
        view: ViewParams,
        *,
        reader: query.Reader | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.view = view
        self.reader = reader or query.connect(settings)
        self._warnings = tuple(warnings)
        self._last_good: Snapshot | None = None
        self._down_since: Snapshot | None = None
        self.rounds = 0
        self.controls = Controls(view, self._set_view)
        self.health = HealthPanel(settings.dashboard.stale_after_s)
        self.watch = WatchPanel(view.watch, self._set_terms, self._save_terms)
        self.panels: list[Panel] = [
            KpiPanel(),
            RatePanel(),
            BytesPanel(),
            ActionsPanel(),
            PANEL_TYPES["wikis"](),
            PANEL_TYPES["languages"](),
            PANEL_TYPES["projects"](),
            PagesPanel(),
            PANEL_TYPES["users"](),
            PANEL_TYPES["namespaces"](),
            CharacterPanel(),
            BattlefieldPanel(),
            self.watch,
            self.health,
        ]
        self.banner = widgets.HTML("")
        self.banner.add_class("wp-banner-box")
        self.status = widgets.HTML("")
        self.status.add_class("wp-status")
        self.loop: RefreshLoop[ViewParams, Snapshot] = RefreshLoop(self._work, self._show)
        self.ticker = Ticker(view.interval_s, self._tick)
        self.widget = self._layout()
        self.ticker.start()

    def _layout(self) -> widgets.VBox:
        by_name = {p.name: p.widget for p in self.panels}

        def grid(*names: str, css: str = "wp-grid") -> widgets.Box:
            box = widgets.Box([by_name[n] for n in names])
            box.add_class(css)
            return box

        def section(title: str, *children: widgets.Widget) -> widgets.VBox:
            head = widgets.HTML(f'<h3 class="wp-section-title">{markup.escape(title)}</h3>')
            box = widgets.VBox([head, *children])
            box.add_class("wp-section")
            return box

        header = widgets.HTML(
            '<div class="wp-header"><span class="wp-logo">wikipulse</span> '
            "<span>every edit on every Wikimedia wiki, live</span></div>"
        )
        root = widgets.VBox(
            [
                widgets.HTML(markup.stylesheet() + markup.bars_sweeper()),
                header,
                self.controls.widget,
                self.banner,
                by_name["health"],
                by_name["kpis"],
                section("Traffic", grid("rate", "bytes", "actions")),
                section(
                    "Leaderboards",
                    grid("wikis", "languages", "projects"),
                    grid("pages", "users", "namespaces"),
                ),
                section("Edit character", by_name["character"]),
                section("The battlefield", by_name["battlefield"]),
                section("Watchlist", by_name["watch"]),
                self.status,
                self.ticker.widget,
            ]
        )
        root.add_class("wp-dashboard")
        root.add_class("wp-state-loading")
        return root

    # --- the loop --------------------------------------------------------------------------

    def _work(self, view: ViewParams) -> Snapshot:
        return take_snapshot(
            self.reader,
            view,
            recent_limit=self.settings.dashboard.recent_limit,
            previous=self._last_good,
        )

    def _show(self, snapshot: Snapshot) -> None:
        self.rounds += 1
        if snapshot.has_data:
            self._last_good = snapshot
            self._down_since = None
            for panel in self.panels:
                panel.update(snapshot)
        elif self._down_since is None:
            self._down_since = snapshot
        self.banner.value = self._banner(snapshot)
        self.status.value = self._status(snapshot)
        for css in list(self.widget._dom_classes):
            if css.startswith("wp-state-"):
                self.widget.remove_class(css)
        self.widget.add_class(f"wp-state-{snapshot.status}")

    def _banner(self, snapshot: Snapshot) -> str:
        parts = [markup.banner("info", [f"Ignored: {w}" for w in self._warnings])]
        if snapshot.status == "db_down":
            since = self._down_since.taken_at if self._down_since else snapshot.taken_at
            shown = (
                f" Showing data from {self._last_good.taken_at:%H:%M:%S} UTC."
                if self._last_good
                else ""
            )
            parts.append(
                markup.banner(
                    "error",
                    [
                        f"Database unreachable since {since:%H:%M:%S} UTC; retrying at every "
                        f"refresh.{shown}"
                    ],
                )
            )
        elif snapshot.status == "error":
            parts.append(markup.banner("error", [f"Refresh failed: {snapshot.message}"]))
        elif snapshot.status in ("waiting", "empty"):
            parts.append(markup.banner("info", [snapshot.message]))
        if snapshot.has_data and not snapshot.view.end and self.health.is_stale(snapshot):
            age = float(snapshot.health["seconds_since_commit"].iloc[0])
            committed = snapshot.taken_at - timedelta(seconds=age)
            parts.append(
                markup.banner(
                    "warn",
                    [
                        "Data is stale: the pipeline's last batch was committed "
                        f"{markup.ago(committed, snapshot.taken_at)}."
                    ],
                )
            )
        return "".join(parts)

    def _status(self, snapshot: Snapshot) -> str:
        view = snapshot.view
        window = (
            f"{snapshot.window_start:%Y-%m-%d %H:%M} to {snapshot.window_end:%Y-%m-%d %H:%M} UTC"
            if snapshot.window_start and snapshot.window_end
            else "-"
        )
        link = to_query_string(view, ViewParams(refresh_s=self.settings.dashboard.refresh_s))
        return (
            f'<div class="wp-status-line" data-round="{self.rounds}" '
            f'data-status="{snapshot.status}" data-lookback="{markup.escape(view.lookback)}" '
            f'data-query="{markup.escape(link)}">'
            f"Updated {snapshot.taken_at:%H:%M:%S} UTC in {snapshot.seconds:.2f} s · "
            f"window {window} · "
            f'<a class="wp-permalink" href="?{markup.escape(link)}">link to this view</a></div>'
        )

    def _tick(self) -> None:
        self.loop.request(self.view)

    # --- control callbacks (kernel main thread) -------------------------------------------------

    def _set_view(self, view: ViewParams, warnings: tuple[str, ...] = ()) -> None:
        self._warnings = warnings
        view = view.replace(watch=self.view.watch)
        interval_changed = (view.paused, view.refresh_s) != (self.view.paused, self.view.refresh_s)
        self.view = view
        if interval_changed:
            self.ticker.set_interval(view.interval_s)
        self.loop.request(view)

    def _set_terms(self, terms: tuple[str, ...]) -> None:
        self.view = self.view.replace(watch=terms)
        self.loop.request(self.view)

    def _save_terms(self, terms: tuple[str, ...]) -> None:
        def job() -> None:
            try:
                added = save_terms(self.settings, terms, schema=self.reader.schema)
                noun = "term" if len(terms) == 1 else "terms"
                self.watch.show_saved(f"saved {len(terms)} {noun} ({added} new)")
            except WikiError as exc:
                self.watch.show_saved(f"not saved: {exc}")

        if terms:
            self.loop.call(job)

    # --- public ------------------------------------------------------------------------------

    def refresh(self, *, wait: bool = False) -> Snapshot | None:
        """Refresh now: on this thread when ``wait``, else through the loop."""
        if wait:
            return self.loop.run_now(self.view)
        self.loop.request(self.view)
        return None

    def load_saved_terms(self) -> tuple[str, ...]:
        """Saved terms, or none when the table is missing or the database down."""
        try:
            return saved_terms(self.reader)
        except WikiError:
            return ()

    def close(self) -> None:
        """Stop refreshing and release the connection and the widgets."""
        self.ticker.stop()
        self.loop.stop()
        self.reader.close()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


class PanelView:
    """One panel with its own controls-free refresh, for any notebook."""

    def __init__(self, panel: Panel, settings: Settings, view: ViewParams) -> None:
        self.panel = panel
        self.view = view
        self.reader = query.connect(settings)
        self.banner = widgets.HTML("")
        limit = settings.dashboard.recent_limit
        self._last: Snapshot | None = None
        self.loop: RefreshLoop[ViewParams, Snapshot] = RefreshLoop(
            lambda v: take_snapshot(
                self.reader, v, recent_limit=limit, panels=panel.needs, previous=self._last
            ),
            self._show,
        )
        self.ticker = Ticker(view.interval_s, lambda: self.loop.request(self.view))
        sweeper = widgets.HTML(markup.bars_sweeper(), layout=widgets.Layout(display="none"))
        self.widget = widgets.VBox([sweeper, self.banner, panel.widget, self.ticker.widget])
        self.widget.add_class("wp-panel-view")
        self.ticker.start()

    def _show(self, snapshot: Snapshot) -> None:
        if snapshot.has_data:
            self._last = snapshot
            self.panel.update(snapshot)
        self.banner.value = (
            "" if snapshot.status == "ok" else markup.banner("info", [snapshot.message])
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _edge_settings(settings: Settings | None) -> Settings:
    """Settings at a notebook's edge; waits for the request first in a preheated Voila kernel."""
    if os.environ.get("VOILA_PREHEAT") == "True":
        from voila.utils import wait_for_request

        wait_for_request()
    return settings or load_settings()


def live(settings: Settings | None = None, **parameters: Any) -> LiveDashboard:
    """The live dashboard for a notebook cell: parameters, then the page URL, then draw.

    Keyword parameters are those of ``voila_dashboards/live.ipynb``. The first refresh runs
    before returning, so the page opens with data (or with its message) rather than blank.
    """
    settings = _edge_settings(settings)
    view, warnings = notebook_view(settings, os.environ.get("QUERY_STRING", ""), **parameters)
    dashboard = LiveDashboard(settings, view, warnings=warnings)
    if not view.watch:
        saved = dashboard.load_saved_terms()
        if saved:
            dashboard.watch.show_saved(f"saved: {', '.join(saved)}")
    dashboard.refresh(wait=True)
    return dashboard


def show_panel(name: str, settings: Settings | None = None, **parameters: Any) -> PanelView:
    """One panel (``rate``, ``battlefield``, ``wikis``, ... see ``PANEL_TYPES``), refreshing."""
    if name not in PANEL_TYPES:
        raise KeyError(f"unknown panel {name!r}; choose from {', '.join(PANEL_TYPES)}")
    settings = _edge_settings(settings)
    view, _ = notebook_view(settings, os.environ.get("QUERY_STRING", ""), **parameters)
    panel_view = PanelView(PANEL_TYPES[name](), settings, view)
    panel_view.loop.run_now(view)
    return panel_view
