"""The serving tables as families: a minute table, its hourly roll-up, keys and counters.

One description serves three readers: the query API (which table can answer a filter, what a
measure means on it), the roll-up (what to sum, what to keep) and the batch layer (which rows
of a day to replace). Table names are the contract's (``shared/spec/metrics.md``) plus the
extra ones of ``streaming/sql/V003``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTIVITY",
    "FAMILIES",
    "NAMESPACE",
    "PAGE",
    "RECENT_CHANGES",
    "RECENT_CHANGES_COLUMNS",
    "TRAFFIC",
    "USER",
    "WIKI",
    "Family",
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

FAMILIES: dict[str, Family] = {f.name: f for f in (TRAFFIC, WIKI, NAMESPACE, PAGE, USER, ACTIVITY)}
"""Every rolled-up family by name."""

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
