"""The serving tables as families: a minute table, its hourly roll-up, keys and counters.

One description serves three readers: the query API (which table can answer a filter, what a
measure means on it), the roll-up (what to sum, what to keep) and the batch layer (which rows
of a day to replace). Table names are the contract's (``shared/spec/metrics.md``) plus the
extra ones of ``streaming/sql/V003``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wiki_lib.query.filters import Filters

__all__ = [
    "ACTIVITY",
    "ACTIVITY_DIMS",
    "FAMILIES",
    "NAMESPACE",
    "PAGE",
    "PAGE_SLICE",
    "RECENT_CHANGES",
    "RECENT_CHANGES_COLUMNS",
    "SLICES",
    "TRAFFIC",
    "USER",
    "USER_SLICE",
    "USER_WIKI",
    "WIKI",
    "Family",
    "Slice",
]


@dataclass(frozen=True)
class Family:
    """A minute table and its hourly roll-up with the same columns."""

    name: str
    minute: str
    hour: str
    keys: tuple[str, ...]
    """Key columns besides ``window_start``."""
    counters: tuple[str, ...]
    """Additive columns: an hour's value is the sum of its minutes'."""
    dimensions: frozenset[str]
    """Filter dimensions (:data:`wiki_lib.query.filters.DIMENSIONS`) its rows carry."""
    host: bool = False
    """Carries ``server_name``, ``project``, ``language`` of the greatest host (wiki rule)."""
    truncated: bool = False
    """The hourly table keeps only the busiest keys of each hour (``retention.top_k_per_hour``)."""

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column, in table order."""
        host = ("server_name", "project", "language") if self.host else ()
        return ("window_start", *self.keys, *host, *self.counters)


TRAFFIC = Family(
    "traffic",
    "traffic_minute",
    "traffic_hour",
    keys=(),
    counters=(
        "events",
        "edits",
        "new_pages",
        "log_events",
        "categorize_events",
        "other_events",
        "bot_events",
        "human_events",
        "minor_edits",
        "major_edits",
        "bytes_added",
        "bytes_removed",
        "net_bytes",
    ),
    dimensions=frozenset(),
)
WIKI = Family(
    "wiki",
    "wiki_minute",
    "wiki_hour",
    keys=("wiki",),
    counters=("events", "edits", "new_pages", "bot_events", "bytes_added", "bytes_removed"),
    dimensions=frozenset({"wiki", "project", "language"}),
    host=True,
)
NAMESPACE = Family(
    "namespace",
    "namespace_minute",
    "namespace_hour",
    keys=("namespace",),
    counters=("events",),
    dimensions=frozenset({"namespace"}),
)
PAGE = Family(
    "page",
    "page_minute",
    "page_hour",
    keys=("wiki", "title"),
    counters=("events", "bytes_added", "bytes_removed"),
    dimensions=frozenset({"wiki", "project", "language"}),
    truncated=True,
)
USER = Family(
    "user",
    "user_minute",
    "user_hour",
    keys=("user",),
    counters=("events", "edits", "bot_events", "bytes_added", "bytes_removed"),
    dimensions=frozenset(),
    truncated=True,
)
ACTIVITY = Family(
    "activity",
    "activity_minute",
    "activity_hour",
    keys=("wiki", "namespace", "type", "is_bot", "is_minor"),
    counters=("events", "bytes_added", "bytes_removed", "net_bytes"),
    dimensions=frozenset({"wiki", "project", "language", "bot", "namespace", "type"}),
    host=True,
)

ACTIVITY_DIMS = Family(
    "activity_dims",
    "activity_dims_minute",
    "activity_dims_hour",
    keys=("namespace", "type", "is_bot", "is_minor"),
    counters=ACTIVITY.counters,
    dimensions=frozenset({"bot", "namespace", "type"}),
)
"""The activity rows without their wiki (``streaming/sql/V016``): kept from the activity
tables by triggers, so neither rolled up nor replaced on their own (not in :data:`FAMILIES`)."""


@dataclass(frozen=True)
class Slice:
    """Pages or users within one value of some filter columns (``streaming/sql/V013``).

    Kept per minute from ``recent_changes`` (so for as long as it keeps events), with running
    totals for the live lookbacks and no hourly roll-up. A filter that fixes each ``pinned``
    column to one value, and nothing else, reads one row per key from it.
    """

    name: str
    minute: str
    keys: tuple[str, ...]
    """The entity: a page's or a user's key columns."""
    pinned: tuple[str, ...]
    """Columns of ``recent_changes`` the slice is split by."""
    counters: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column, in table order."""
        return ("window_start", *self.keys, *self.pinned, *self.counters)

    def pins(self, filters: Filters) -> dict[str, Any] | None:
        """The one value each pinned column is read at under ``filters``, or None when the
        slice cannot answer them (another dimension, or several values of a pinned one)."""
        if filters.dimensions != {_PINNED_BY[c] for c in self.pinned}:
            return None
        out: dict[str, Any] = {}
        for column in self.pinned:
            value = getattr(filters, _PINNED_BY[column])
            if isinstance(value, bool):
                out[column] = value
            elif len(value) == 1:
                out[column] = value[0]
            else:
                return None
        return out


_PINNED_BY = {"namespace": "namespace", "is_bot": "bot", "wiki": "wiki"}
"""The filter dimension that fixes each column a slice may be split by."""


FAMILIES: dict[str, Family] = {f.name: f for f in (TRAFFIC, WIKI, NAMESPACE, PAGE, USER, ACTIVITY)}
"""Every rolled-up family by name."""

PAGE_SLICE = Slice(
    "page_slice", "page_slice_minute", PAGE.keys, ("namespace", "is_bot"), PAGE.counters
)
USER_SLICE = Slice(
    "user_slice", "user_slice_minute", USER.keys, ("namespace", "is_bot"), USER.counters
)
USER_WIKI = Slice("user_wiki", "user_wiki_minute", USER.keys, ("wiki",), USER.counters)
SLICES: dict[str, tuple[Slice, ...]] = {
    PAGE.name: (PAGE_SLICE,),
    USER.name: (USER_SLICE, USER_WIKI),
}
"""The slices of each entity family."""

RECENT_CHANGES = "recent_changes"
"""The event-level table: every dimension, kept ``stream.recent_changes_hours``."""
RECENT_CHANGES_COLUMNS = (
    "event_id",
    "event_time",
    "wiki",
    "server_name",
    "type",
    "namespace",
    "title",
    "user",
    "is_bot",
    "is_minor",
    "length_delta",
    "comment",
)
"""Its columns, in table order: what the stream job writes and the query API reads back."""
