"""The one chart pandas does not draw by itself: a labelled heat map of a small table."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes

__all__ = ["heatmap"]


def heatmap(table: pd.DataFrame, title: str) -> Axes:
    """``table`` as a heat map with its index and columns as tick labels, and a colour bar."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(table.columns), 1 + 0.25 * len(table)))
    image = ax.imshow(table.to_numpy(), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
    ax.set_ylabel(str(table.index.name or ""))
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    return ax
