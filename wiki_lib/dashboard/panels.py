"""Dashboard panels: a chart (or table) plus the snapshot frames it reads.

A panel declares the query-API frames it ``needs`` and draws itself from a
:class:`~wiki_lib.dashboard.snapshot.Snapshot` with ``update``. The live dashboard runs all of
them off one round of queries; :func:`wiki_lib.dashboard.app.show_panel` runs one alone with
only its queries. Derivations from frames to chart arrays are small pure functions here, so
the charts stay free of database knowledge.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ClassVar

import ipywidgets as widgets
import pandas as pd

from wiki_lib.dashboard import markup
from wiki_lib.dashboard.charts import (
    ADDED,
    BOT,
    HUMAN,
    PALETTE,
    REMOVED,
    BarChart,
    PieChart,
    ScatterChart,
    StackedBarsChart,
    TimeSeriesChart,
    held,
)
from wiki_lib.dashboard.params import split_list
from wiki_lib.dashboard.snapshot import (
    TILE_LABELS,
    WATCH_LIMIT,
    Snapshot,
    concentration,
    kpi_tiles,
    term_counts,
)

__all__ = [
    "PANEL_TYPES",
    "ActionsPanel",
    "BattlefieldPanel",
    "BytesPanel",
    "CharacterPanel",
    "HealthPanel",
    "KpiPanel",
    "LeaderboardPanel",
    "PagesPanel",
    "Panel",
    "RatePanel",
    "WatchPanel",
    "alert_summary",
    "edit_names",
    "per_second",
    "tick_format",
]


def tick_format(snapshot: Snapshot, *, seconds: bool = False) -> str:
    """Time axis labels that fit the window's length (with seconds for short ones if asked)."""
    if snapshot.window_start is None or snapshot.window_end is None:
        return "%H:%M"
    length = snapshot.window_end - snapshot.window_start
    if length > timedelta(days=2):
        return "%d %b"
    if length > timedelta(hours=6):
        return "%a %H:%M"
    if seconds and length <= timedelta(minutes=30):
        return "%H:%M:%S"
    return "%H:%M"


def per_second(traffic: pd.DataFrame, bot_human: pd.DataFrame) -> pd.DataFrame:
    """Events, human and bot events per second of each bucket."""
    if traffic.empty:
        return pd.DataFrame(columns=["bucket_start", "all", "human", "bot"])
    seconds = pd.Timedelta(traffic.attrs.get("bucket", timedelta(minutes=1))).total_seconds()
    out = pd.DataFrame(
        {"bucket_start": traffic["bucket_start"], "all": traffic["events"] / seconds}
    )
    if bot_human.empty:
        out["human"] = float("nan")
        out["bot"] = float("nan")
        return out
    joined = out.merge(bot_human, on="bucket_start", how="left").fillna(0)
    out["human"] = (joined["human_events"] / seconds).to_numpy()
    out["bot"] = (joined["bot_events"] / seconds).to_numpy()
    return out


def edit_names(recent: pd.DataFrame) -> list[str]:
    """The tooltip text of each edit in the scatter: wiki, title, user, comment."""
    names = []
    for row in recent.itertuples(index=False):
        comment = "" if pd.isna(row.comment) or row.comment is None else str(row.comment)
        comment = comment if len(comment) <= 120 else comment[:119] + "…"
        names.append(f"{row.wiki} · {row.title} · {row.user} · {comment}".rstrip(" ·"))
    return names


def alert_summary(alerts: pd.DataFrame, now: datetime) -> tuple[int, str]:
    """How many alerts are open and the strip's words for them (the newest one's message)."""
    total = int(alerts.attrs.get("total", len(alerts)))
    if alerts.empty:
        return total, "none"
    newest = alerts.iloc[0]
    when = markup.ago(newest["fired_at"].to_pydatetime(), now)
    message = str(newest["message"])
    message = message if len(message) <= 160 else message[:159] + "…"
    return total, f"{total:,} open; newest {when}: {message}"


class Panel(abc.ABC):
    """A box on the dashboard that redraws itself from a snapshot."""

    name: str = "panel"
    needs: frozenset[str] = frozenset()

    def __init__(self, *children: widgets.Widget) -> None:
        self.note = widgets.HTML("")
        self.note.add_class("wp-note")
        self.widget = widgets.VBox([*children, self.note])
        self.widget.add_class("wp-panel")
        self.widget.add_class(f"wp-panel-{self.name}")

    def update(self, snapshot: Snapshot) -> None:
        """Redraw from ``snapshot`` (only called with snapshots that have data)."""
        notes = [snapshot.notes[n] for n in sorted(self.needs) if n in snapshot.notes]
        self.note.value = markup.banner("warn", notes)
        self.draw(snapshot)

    @abc.abstractmethod
    def draw(self, snapshot: Snapshot) -> None:
        """Put the snapshot's numbers into the panel's widgets."""


class KpiPanel(Panel):
    """The headline tiles, each with its change against the previous period."""

    name = "kpis"
    needs = frozenset({"kpis", "previous", "wikis", "previous_wikis"})

    def __init__(self) -> None:
        self.tiles = {
            key: widgets.HTML(markup.tile_html(key, label, "-", "", "none", None))
            for key, label in TILE_LABELS.items()
        }
        for tile in self.tiles.values():
            tile.add_class("wp-tile-box")
        row = widgets.Box(list(self.tiles.values()))
        row.add_class("wp-kpis")
        super().__init__(row)

    def draw(self, snapshot: Snapshot) -> None:
        tiles = kpi_tiles(
            snapshot.frame("kpis"),
            snapshot.frame("previous"),
            snapshot.frame("wikis"),
            snapshot.frame("previous_wikis"),
        )
        for tile in tiles:
            self.tiles[tile.key].value = markup.tile_html(
                tile.key, tile.label, tile.text, tile.change, tile.trend, tile.value
            )


class RatePanel(Panel):
    """Events per second over time: all, human, bot."""

    name = "rate"
    needs = frozenset({"traffic", "bot_human"})

    def __init__(self) -> None:
        self.chart = TimeSeriesChart(
            "Events per second",
            {"all": "all", "human": "human", "bot": "bot"},
            colors=("#444444", HUMAN, BOT),
            css="wp-chart-rate",
            y_format=",.3~g",
        )
        super().__init__(self.chart.widget)

    def draw(self, snapshot: Snapshot) -> None:
        frame = per_second(snapshot.frame("traffic"), snapshot.frame("bot_human"))
        self.chart.update(frame, tick_format=tick_format(snapshot))


class BytesPanel(Panel):
    """Bytes added and removed per bucket."""

    name = "bytes"
    needs = frozenset({"traffic"})

    def __init__(self) -> None:
        self.chart = TimeSeriesChart(
            "Bytes added and removed",
            {"bytes_added": "added", "bytes_removed": "removed"},
            colors=(ADDED, REMOVED),
            css="wp-chart-bytes",
            fill=True,
        )
        super().__init__(self.chart.widget)

    def draw(self, snapshot: Snapshot) -> None:
        self.chart.update(snapshot.frame("traffic"), tick_format=tick_format(snapshot))


class ActionsPanel(Panel):
    """Event types per bucket, stacked."""

    name = "actions"
    needs = frozenset({"traffic"})
    SERIES: ClassVar[dict[str, str]] = {
        "edits": "edit",
        "new_pages": "new",
        "log_events": "log",
        "categorize_events": "categorize",
        "other_events": "other",
    }

    def __init__(self) -> None:
        self.chart = StackedBarsChart("Action types", self.SERIES, css="wp-chart-actions")
        super().__init__(self.chart.widget)

    def draw(self, snapshot: Snapshot) -> None:
        self.chart.update(snapshot.frame("traffic"), tick_format=tick_format(snapshot))


class LeaderboardPanel(Panel):
    """The top-N of one dimension as horizontal bars."""

    def __init__(
        self,
        name: str,
        title: str,
        frame: str,
        label: str | Callable[[pd.DataFrame], list[str]],
        *,
        color: str = PALETTE[0],
    ) -> None:
        self.name = name
        self.needs = frozenset({frame})
        self._frame = frame
        self._label = label
        self.chart = BarChart(title, color=color, css=f"wp-chart-{name}")
        super().__init__(self.chart.widget)

    def draw(self, snapshot: Snapshot) -> None:
        frame = snapshot.frame(self._frame)
        if frame.empty:
            self.chart.update([], [])
            return
        labels = self._label(frame) if callable(self._label) else frame[self._label].astype(str)
        self.chart.update(list(labels), frame["events"].tolist())


class PagesPanel(Panel):
    """The most edited pages, linked to the wiki."""

    name = "pages"
    needs = frozenset({"pages", "wikis", "recent"})

    def __init__(self) -> None:
        self.title = widgets.HTML('<div class="wp-title">Top pages</div>')
        self.table = widgets.HTML(markup.page_table(pd.DataFrame(), {}))
        self.table.add_class("wp-pages-box")
        super().__init__(self.title, self.table)

    def draw(self, snapshot: Snapshot) -> None:
        servers: dict[str, str] = {}
        for name in ("recent", "wikis"):
            frame = snapshot.frame(name)
            if not frame.empty:
                servers.update(
                    frame.dropna(subset=["server_name"]).set_index("wiki")["server_name"]
                )
        self.table.value = markup.page_table(snapshot.frame("pages"), servers)


class CharacterPanel(Panel):
    """Minor vs major edits, bytes added vs removed, and how concentrated editing is."""

    name = "character"
    needs = frozenset({"minor_major", "kpis", "edits_per_user"})

    def __init__(self) -> None:
        self.minor = PieChart(
            "Minor vs major edits",
            ["minor", "major"],
            colors=("#aaaaaa", HUMAN),
            css="wp-chart-minor",
        )
        self.bytes = PieChart(
            "Bytes added vs removed",
            ["added", "removed"],
            colors=(ADDED, REMOVED),
            css="wp-chart-adddel",
        )
        self.users = BarChart(
            "Users by edits made",
            horizontal=False,
            color=PALETTE[3],
            css="wp-chart-peruser",
            height="240px",
            value_format="d",
        )
        self.caption = widgets.HTML("")
        self.caption.add_class("wp-caption")
        charts = widgets.Box([self.minor.widget, self.bytes.widget, self.users.widget])
        charts.add_class("wp-grid")
        super().__init__(charts, self.caption)

    def draw(self, snapshot: Snapshot) -> None:
        series = snapshot.frame("minor_major")
        minor = float(series["minor_edits"].sum()) if not series.empty else 0.0
        major = float(series["major_edits"].sum()) if not series.empty else 0.0
        kpis = snapshot.frame("kpis")
        added = float(kpis["bytes_added"].iloc[0]) if not kpis.empty else 0.0
        removed = float(kpis["bytes_removed"].iloc[0]) if not kpis.empty else 0.0
        bins = snapshot.frame("edits_per_user")
        with held(self.minor.mark, self.bytes.mark):
            self.minor.update([minor, major])
            self.bytes.update([added, removed])
        if bins.empty:
            self.users.update([], [])
        else:
            labels = [
                str(lo) if lo == hi else f"{lo}-{hi}"
                for lo, hi in zip(bins["edits_min"], bins["edits_max"], strict=True)
            ]
            self.users.update(labels, bins["users"].tolist())
        self.caption.value = markup.banner("info", [concentration(bins)]) if not bins.empty else ""


class BattlefieldPanel(Panel):
    """The newest individual edits as dots: time, size change, sign."""

    name = "battlefield"
    needs = frozenset({"recent"})

    def __init__(self) -> None:
        self.chart = ScatterChart("The battlefield: recent edits")
        super().__init__(self.chart.widget)

    def draw(self, snapshot: Snapshot) -> None:
        recent = snapshot.frame("recent")
        if recent.empty:
            self.chart.update([], [], [])
            return
        self.chart.update(
            recent["event_time"],
            recent["length_delta"],
            edit_names(recent),
            tick_format=tick_format(snapshot, seconds=True),
        )


class WatchPanel(Panel):
    """Watch terms: matching edits with links and a count per term; terms can be saved."""

    name = "watch"
    needs = frozenset({"watch"})

    def __init__(
        self,
        terms: tuple[str, ...],
        on_terms: Callable[[tuple[str, ...]], None],
        on_save: Callable[[tuple[str, ...]], None],
    ) -> None:
        self.box = widgets.Text(
            value=", ".join(terms),
            placeholder="terms to watch, comma separated (Olympics, Paris)",
            description="Watch",
            continuous_update=False,
            layout=widgets.Layout(width="60%"),
        )
        self.box.add_class("wp-watch-input")
        self.save = widgets.Button(
            description="Save terms",
            icon="save",
            tooltip="store these terms for the alerting rules",
        )
        self.save.add_class("wp-watch-save")
        self.saved = widgets.HTML("")
        self.saved.add_class("wp-watch-saved")
        self.counts = widgets.HTML(markup.term_badges({}, False))
        self.counts.add_class("wp-watch-counts")
        self.matches = widgets.HTML("")
        self.matches.add_class("wp-watch-matches")
        self._on_terms = on_terms
        self.box.observe(self._changed, names="value")
        self.save.on_click(lambda _b: on_save(self.terms))
        title = widgets.HTML('<div class="wp-title">Watchlist</div>')
        row = widgets.HBox([self.box, self.save, self.saved])
        super().__init__(title, row, self.counts, self.matches)

    @property
    def terms(self) -> tuple[str, ...]:
        """The terms in the box."""
        return split_list(self.box.value)

    def _changed(self, _change: object) -> None:
        self._on_terms(self.terms)

    def draw(self, snapshot: Snapshot) -> None:
        terms = snapshot.view.watch
        matches = snapshot.frame("watch")
        self.counts.value = markup.term_badges(
            term_counts(matches, terms), capped=len(matches) >= WATCH_LIMIT
        )
        self.matches.value = markup.event_list(matches, css="wp-watch-list") if terms else ""

    def show_saved(self, text: str) -> None:
        """Say what the last save did (or why it failed)."""
        self.saved.value = f'<span class="wp-saved-text">{markup.escape(text)}</span>'


class HealthPanel(Panel):
    """The pipeline strip: lag behind real time, rates, last batch, open alerts."""

    name = "health"
    needs = frozenset({"alerts"})

    def __init__(self, stale_after_s: float) -> None:
        self.stale_after_s = stale_after_s
        self.strip = widgets.HTML(
            '<div class="wp-health" data-stale="unknown"><span>Pipeline: not read yet</span></div>'
        )
        self.strip.add_class("wp-health-box")
        super().__init__(self.strip)

    def render(self, health: pd.DataFrame, snapshot: Snapshot) -> str:
        """The strip's HTML (``data-stale`` says whether the newest batch is too old,
        ``data-alerts`` how many alerts are open)."""
        count, words = alert_summary(snapshot.frame("alerts"), snapshot.taken_at)
        alerts = (
            f'<span class="wp-health-item wp-health-alerts{" wp-alerting" if count else ""}">'
            f"<b>Alerts</b> {markup.escape(words)}</span>"
        )
        if health.empty:
            return (
                f'<div class="wp-health" data-stale="unknown" data-alerts="{count}">'
                f"<span>Pipeline: no batch committed yet</span>{alerts}</div>"
            )
        row = health.iloc[0]
        stale = float(row["seconds_since_commit"]) > self.stale_after_s

        def rate(value: object) -> str:
            return "-" if value is None or pd.isna(value) else f"{float(value):,.1f}/s"

        lag = row["event_lag_seconds"]
        kafka = row["kafka_lag_records"]
        items = [
            ("Lag behind real time", "-" if pd.isna(lag) else markup.duration(float(lag))),
            ("Input", rate(row["input_rows_per_s"])),
            ("Processing", rate(row["processed_rows_per_s"])),
            (
                "Last batch",
                f"#{int(row['last_batch_id'])} "
                f"{markup.ago(row['last_commit_at'].to_pydatetime(), snapshot.taken_at)}, "
                f"{int(row['last_batch_rows']):,} rows in {int(row['last_batch_ms']):,} ms",
            ),
            ("Kafka backlog", "-" if pd.isna(kafka) else f"{int(kafka):,} records"),
            ("Late events (1 h)", f"{int(row['late_rows_last_hour']):,}"),
        ]
        cells = "".join(
            f'<span class="wp-health-item"><b>{markup.escape(k)}</b> {markup.escape(v)}</span>'
            for k, v in items
        )
        return (
            f'<div class="wp-health{" wp-stale" if stale else ""}" '
            f'data-stale="{str(stale).lower()}" data-alerts="{count}">{cells}{alerts}</div>'
        )

    def is_stale(self, snapshot: Snapshot) -> bool:
        """Whether the newest committed batch is older than the threshold."""
        health = snapshot.health
        if health.empty:
            return False
        return float(health["seconds_since_commit"].iloc[0]) > self.stale_after_s

    def draw(self, snapshot: Snapshot) -> None:
        self.strip.value = self.render(snapshot.health, snapshot)


def _namespace_labels(frame: pd.DataFrame) -> list[str]:
    return [markup.namespace_name(int(n)) for n in frame["namespace"]]


PANEL_TYPES: dict[str, Callable[[], Panel]] = {
    "kpis": KpiPanel,
    "rate": RatePanel,
    "bytes": BytesPanel,
    "actions": ActionsPanel,
    "wikis": lambda: LeaderboardPanel("wikis", "Top wikis", "wikis", "wiki"),
    "languages": lambda: LeaderboardPanel(
        "languages", "Top languages", "languages", "language", color=PALETTE[2]
    ),
    "projects": lambda: LeaderboardPanel(
        "projects", "Top projects", "projects", "project", color=PALETTE[4]
    ),
    "users": lambda: LeaderboardPanel("users", "Top users", "users", "user", color=PALETTE[5]),
    "namespaces": lambda: LeaderboardPanel(
        "namespaces", "Namespaces", "namespaces", _namespace_labels, color=PALETTE[6]
    ),
    "pages": PagesPanel,
    "character": CharacterPanel,
    "battlefield": BattlefieldPanel,
}
"""Panels that need no arguments, by name (for :func:`~wiki_lib.dashboard.app.show_panel`)."""
