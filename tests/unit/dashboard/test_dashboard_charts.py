"""Chart builders change their marks in place, in one message per mark."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from wiki_lib.dashboard.charts import (
    BarChart,
    PieChart,
    ScatterChart,
    StackedBarsChart,
    TimeSeriesChart,
)


def _spy(widget: Any, monkeypatch: pytest.MonkeyPatch) -> list[set[str]]:
    """Record the keys of every state message ``widget`` sends."""
    sent: list[set[str]] = []
    original = widget.send_state

    def send_state(key: Any = None) -> None:
        sent.append(set(key) if key else set())
        original(key)

    monkeypatch.setattr(widget, "send_state", send_state)
    return sent


def _series(minutes: int) -> pd.DataFrame:
    starts = pd.date_range("2024-08-22T04:00:00Z", periods=minutes, freq="1min")
    return pd.DataFrame(
        {"bucket_start": starts, "a": np.arange(minutes) * 1.0, "b": np.ones(minutes)}
    )


def test_time_series_updates_the_same_mark_once(monkeypatch: pytest.MonkeyPatch) -> None:
    chart = TimeSeriesChart("t", {"a": "A", "b": "B"})
    mark, figure = chart.mark, chart.widget
    sent = _spy(mark, monkeypatch)
    chart.update(_series(5))
    chart.update(_series(7))
    assert chart.mark is mark and chart.widget.marks == [mark] and chart.widget is figure
    assert len(sent) == 2 and {"x", "y"} <= sent[-1]
    assert mark.y.shape == (2, 7)
    assert str(mark.x.dtype) == "datetime64[ms]"
    chart.update(pd.DataFrame())
    assert mark.y.shape == (2, 0)


def test_stacked_bars_stack_one_row_per_column() -> None:
    chart = StackedBarsChart("s", {"a": "A", "b": "B"})
    chart.update(_series(4))
    assert chart.mark.y.shape == (2, 4) and chart.mark.type == "stacked"


def test_bars_replace_labels_and_values(monkeypatch: pytest.MonkeyPatch) -> None:
    chart = BarChart("b")
    sent = _spy(chart.mark, monkeypatch)
    chart.update(["enwiki", "dewiki"], [5, 3])
    chart.update(["frwiki"], [9])
    assert list(chart.mark.x) == ["frwiki"] and list(chart.mark.y) == [9.0]
    assert len(sent) == 2


def test_pie_shows_shares_and_survives_zeros() -> None:
    chart = PieChart("p", ["minor", "major"])
    chart.update([1, 3])
    assert list(chart.mark.sizes) == [0.25, 0.75]
    chart.update([0, 0])
    assert list(chart.mark.sizes) == [0.0, 0.0]


def test_scatter_sizes_and_colours_by_change(monkeypatch: pytest.MonkeyPatch) -> None:
    chart = ScatterChart("s")
    sent = _spy(chart.mark, monkeypatch)
    times = pd.to_datetime(["2024-08-22T04:00:01Z", "2024-08-22T04:00:02Z", "2024-08-22T04:00:03Z"])
    chart.update(times, [120, -40, 0], ["a", "b", "c"])
    assert list(chart.mark.color) == [1.0, -1.0, 0.0]
    assert chart.mark.size[0] > chart.mark.size[1] > chart.mark.size[2] == 0
    assert list(chart.mark.names) == ["a", "b", "c"]
    assert len(sent) == 1 and {"x", "y", "size", "color", "names"} <= sent[0]


def test_equal_data_is_not_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    bars = BarChart("b")
    series = TimeSeriesChart("t", {"a": "A"})
    scatter = ScatterChart("s")
    sent = {
        "bars": _spy(bars.mark, monkeypatch),
        "series": _spy(series.mark, monkeypatch),
        "scatter": _spy(scatter.mark, monkeypatch),
    }
    times = pd.to_datetime(["2024-08-22T04:00:01Z"])
    for _ in range(3):
        bars.update(["enwiki"], [5])
        series.update(_series(4))
        scatter.update(times, [10], ["a"])
    assert {k: len(v) for k, v in sent.items()} == {"bars": 1, "series": 1, "scatter": 1}
    bars.update(["enwiki"], [6])
    scatter.update(times, [10], ["b"])
    assert len(sent["bars"]) == 2 and len(sent["scatter"]) == 2
