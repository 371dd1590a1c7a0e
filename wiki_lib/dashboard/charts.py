"""bqplot chart builders that update in place.

Each builder creates its figure, scales, axes and marks once; ``update`` only assigns new
data to the existing marks inside ``hold_sync``, so the browser receives one message per
mark and redraws without re-creating anything (no flicker, no leaked views). Data equal to
what a chart already shows is not sent at all: bqplot 0.13's ``Bars`` view leaves an empty
``<g>`` in the page at every redraw (it removes its zero line but not the line's group), which
the dashboard's page sweeps away (:func:`~wiki_lib.dashboard.markup.bars_sweeper`); fewer
redraws still cost the page less. (Replacing the mark now and then does not help: the page
keeps the old mark views alive.) They know nothing about the database: give them arrays
or a DataFrame, e.g. in any notebook::

    chart = TimeSeriesChart("Events per second", {"events_per_second": "all events"})
    chart.update(query.traffic(reader, "1h"))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import bqplot as bq
import ipywidgets as widgets
import numpy as np
import pandas as pd

__all__ = [
    "ADDED",
    "BOT",
    "HUMAN",
    "PALETTE",
    "REMOVED",
    "BarChart",
    "PieChart",
    "ScatterChart",
    "StackedBarsChart",
    "TimeSeriesChart",
    "held",
]

PALETTE = ("#3366cc", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00")
ADDED = "#2ca02c"
REMOVED = "#d62728"
HUMAN = "#3366cc"
BOT = "#ff9900"
_NEUTRAL = "#9e9e9e"
_MARGIN = {"top": 36, "bottom": 36, "left": 56, "right": 16}


class _Shown:
    """What a chart last sent, so that an update with equal data sends nothing."""

    def __init__(self) -> None:
        self._last: tuple[Any, ...] | None = None

    def changed(self, *values: Any) -> bool:
        """Whether ``values`` differ from the previous call's (and remember them)."""
        last, self._last = self._last, values
        if last is None or len(last) != len(values):
            return True
        return not all(_equal(a, b) for a, b in zip(last, values, strict=True))


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    return bool(a == b)


@contextlib.contextmanager
def held(*items: widgets.Widget) -> Iterator[None]:
    """Hold every widget's sync at once: all their changes leave together at the end."""
    with contextlib.ExitStack() as stack:
        for item in items:
            stack.enter_context(item.hold_sync())
        yield


def _figure(title: str, marks: list[Any], axes: list[Any], css: str, height: str) -> bq.Figure:
    figure = bq.Figure(
        title=title,
        marks=marks,
        axes=axes,
        fig_margin=dict(_MARGIN),
        animation_duration=0,
        layout=widgets.Layout(width="100%", height=height, min_width="260px"),
        legend_location="top-left",
    )
    figure.add_class("wp-chart")
    figure.add_class(css)
    return figure


def _times(values: Any) -> np.ndarray:
    """Datetimes as naive UTC ``datetime64[ms]`` (what bqplot's date scale serialises)."""
    stamps = pd.to_datetime(pd.Series(values), utc=True)
    return stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ms]")


class _TimeChart:
    """One mark over a date axis with one row of y values per configured column."""

    series: dict[str, str]
    mark: Any
    widget: bq.Figure
    _shown: _Shown

    def update(
        self, frame: pd.DataFrame, x: str = "bucket_start", *, tick_format: str = ""
    ) -> None:
        """Show ``frame[x]`` against each configured column (a point or a stack per row)."""
        if frame.empty:
            xs = np.array([], dtype="datetime64[ms]")
            ys = np.zeros((len(self.series), 0))
        else:
            xs = _times(frame[x])
            ys = np.vstack([frame[c].to_numpy(dtype="float64") for c in self.series])
        if not self._shown.changed(xs, ys, tick_format):
            return
        with held(self.mark, self.widget.axes[0]):
            self.mark.x = xs
            self.mark.y = ys
            if tick_format:
                self.widget.axes[0].tick_format = tick_format


class TimeSeriesChart(_TimeChart):
    """Several lines over time from the columns of a frame (one mark, one line per column)."""

    def __init__(
        self,
        title: str,
        series: Mapping[str, str],
        *,
        colors: Sequence[str] = PALETTE,
        y_label: str = "",
        css: str = "wp-chart-series",
        height: str = "240px",
        fill: bool = False,
        y_format: str = ".3~s",
    ) -> None:
        self.series = dict(series)
        self.x_scale = bq.DateScale()
        self.y_scale = bq.LinearScale(min=0.0)
        self.mark = bq.Lines(
            x=np.array([], dtype="datetime64[ms]"),
            y=np.zeros((len(self.series), 0)),
            scales={"x": self.x_scale, "y": self.y_scale},
            colors=list(colors[: len(self.series)]),
            labels=list(self.series.values()),
            display_legend=len(self.series) > 1,
            fill="bottom" if fill else "none",
            fill_opacities=[0.15] * len(self.series) if fill else [],
            stroke_width=2,
        )
        axes = [
            bq.Axis(scale=self.x_scale, tick_format="%H:%M", num_ticks=6),
            bq.Axis(
                scale=self.y_scale,
                side="left",
                label=y_label,
                tick_format=y_format,
                grid_lines="dashed",
            ),
        ]
        self.widget = _figure(title, [self.mark], axes, css, height)
        self._shown = _Shown()


class StackedBarsChart(_TimeChart):
    """Stacked bars over time, one colour per column (e.g. event types per minute)."""

    def __init__(
        self,
        title: str,
        series: Mapping[str, str],
        *,
        colors: Sequence[str] = PALETTE,
        css: str = "wp-chart-stacked",
        height: str = "240px",
    ) -> None:
        self.series = dict(series)
        self.x_scale = bq.DateScale()
        self.y_scale = bq.LinearScale(min=0.0, allow_padding=False)
        self.mark = bq.Bars(
            x=np.array([], dtype="datetime64[ms]"),
            y=np.zeros((len(self.series), 0)),
            scales={"x": self.x_scale, "y": self.y_scale},
            type="stacked",
            colors=list(colors[: len(self.series)]),
            labels=list(self.series.values()),
            display_legend=True,
            padding=0.1,
            stroke="white",
        )
        axes = [
            bq.Axis(scale=self.x_scale, tick_format="%H:%M", num_ticks=6),
            bq.Axis(scale=self.y_scale, side="left", tick_format=".3~s", grid_lines="dashed"),
        ]
        self.widget = _figure(title, [self.mark], axes, css, height)
        self._shown = _Shown()


class BarChart:
    """Labelled bars, horizontal (a leaderboard, biggest on top) or vertical (a histogram)."""

    def __init__(
        self,
        title: str,
        *,
        color: str = PALETTE[0],
        horizontal: bool = True,
        css: str = "wp-chart-bars",
        height: str = "280px",
        value_format: str = ".3~s",
    ) -> None:
        self.horizontal = horizontal
        self.x_scale = bq.OrdinalScale(reverse=horizontal)
        self.y_scale = bq.LinearScale(min=0.0, allow_padding=False)
        self.mark = bq.Bars(
            x=[],
            y=[],
            scales={"x": self.x_scale, "y": self.y_scale},
            orientation="horizontal" if horizontal else "vertical",
            colors=[color],
            padding=0.15,
            tooltip=bq.Tooltip(fields=["x", "y"], labels=["", "events"], formats=["", ","]),
        )
        axes = [
            bq.Axis(scale=self.x_scale, side="left" if horizontal else "bottom"),
            bq.Axis(
                scale=self.y_scale,
                side="bottom" if horizontal else "left",
                tick_format=value_format,
                grid_lines="dashed",
                num_ticks=4,
            ),
        ]
        margin = dict(_MARGIN, left=130) if horizontal else dict(_MARGIN)
        self.widget = _figure(title, [self.mark], axes, css, height)
        self.widget.fig_margin = margin
        self._shown = _Shown()

    def update(self, labels: Sequence[str], values: Sequence[float]) -> None:
        """Show one bar per label, in the given order."""
        xs = [str(label) for label in labels]
        ys = np.asarray(values, dtype="float64")
        if not self._shown.changed(xs, ys):
            return
        with held(self.mark):
            self.mark.x = xs
            self.mark.y = ys


class PieChart:
    """Shares of a whole (minor vs major, bytes added vs removed)."""

    def __init__(
        self,
        title: str,
        labels: Sequence[str],
        *,
        colors: Sequence[str] = PALETTE,
        css: str = "wp-chart-pie",
        height: str = "240px",
    ) -> None:
        self.mark = bq.Pie(
            sizes=np.zeros(len(labels)),
            labels=list(labels),
            colors=list(colors[: len(labels)]),
            display_labels="outside",
            display_values=True,
            values_format=".0%",
            inner_radius=35,
            radius=70,
            label_color="#333",
            font_size="12px",
        )
        self.widget = _figure(title, [self.mark], [], css, height)
        self._shown = _Shown()

    def update(self, values: Sequence[float]) -> None:
        """Show ``values`` (absolute amounts; the pie shows their shares)."""
        total = float(sum(values))
        shares = np.asarray(
            [float(v) / total for v in values] if total else [0.0] * len(values), dtype="float64"
        )
        if not self._shown.changed(shares):
            return
        with held(self.mark):
            self.mark.sizes = shares


class ScatterChart:
    """Individual events: x = time, y = size change, dot size = |change|, colour = sign."""

    def __init__(self, title: str, *, css: str = "wp-chart-scatter", height: str = "340px") -> None:
        self.x_scale = bq.DateScale()
        self.y_scale = bq.LinearScale()
        self.size_scale = bq.LinearScale(min=0.0)
        self.color_scale = bq.ColorScale(
            min=-1.0, max=1.0, mid=0.0, colors=[REMOVED, _NEUTRAL, ADDED]
        )
        self.mark = bq.Scatter(
            x=np.array([], dtype="datetime64[ms]"),
            y=np.array([], dtype="float64"),
            size=np.array([], dtype="float64"),
            color=np.array([], dtype="float64"),
            names=[],
            names_unique=False,
            display_names=False,
            default_size=180,
            opacities=[0.65],
            stroke="white",
            scales={
                "x": self.x_scale,
                "y": self.y_scale,
                "size": self.size_scale,
                "color": self.color_scale,
            },
            tooltip=bq.Tooltip(fields=["name", "y"], labels=["edit", "bytes"], formats=["", "+,"]),
        )
        zero = bq.Lines(
            x=[0.0, 1.0],
            y=[0.0, 0.0],
            scales={"x": bq.LinearScale(min=0.0, max=1.0), "y": self.y_scale},
            colors=[_NEUTRAL],
            line_style="dashed",
            stroke_width=1,
        )
        axes = [
            bq.Axis(scale=self.x_scale, tick_format="%H:%M:%S", num_ticks=6),
            bq.Axis(
                scale=self.y_scale,
                side="left",
                label="bytes changed",
                tick_format="+.2s",
                grid_lines="dashed",
            ),
        ]
        self.widget = _figure(title, [zero, self.mark], axes, css, height)
        self._shown = _Shown()

    def update(
        self, times: Any, deltas: Any, names: Sequence[str], *, tick_format: str = ""
    ) -> None:
        """Show one dot per event."""
        change = np.asarray(deltas, dtype="float64")
        xs = _times(times) if len(change) else np.array([], dtype="datetime64[ms]")
        if not self._shown.changed(xs, change, list(names), tick_format):
            return
        with held(self.mark, self.widget.axes[0]):
            if tick_format:
                self.widget.axes[0].tick_format = tick_format
            self.mark.x = xs
            self.mark.y = change
            self.mark.size = np.log1p(np.abs(change))
            self.mark.color = np.sign(change)
            self.mark.names = list(names)
