"""How a query request becomes SQL: its window, which tables serve it, its filters.

The machinery behind :mod:`wiki_lib.query.api`: a :class:`Request` holds the minute-aligned
window, the filters and the serving marks (``serving_state``); a :class:`Span` is the window
split into whole rolled-up hours and minutes; :data:`MEASURES` says what a figure means on
each table family. Every value becomes a named parameter, every identifier is quoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from psycopg2 import sql

from wiki_lib.query.errors import QueryError
from wiki_lib.query.filters import Filters
from wiki_lib.query.reader import Reader
from wiki_lib.query.tables import (
    ACTIVITY,
    ACTIVITY_DIMS,
    NAMESPACE,
    RECENT_CHANGES,
    RECENT_CHANGES_COLUMNS,
    TRAFFIC,
    WIKI,
    Family,
)
from wiki_lib.query.window import Split, Window, make_window, split_window

__all__ = [
    "EPOCH_SQL",
    "MEASURES",
    "ROLLED_UNTIL",
    "TIME_DTYPE",
    "End",
    "Lookback",
    "Request",
    "Span",
    "family_for",
    "kept_from_key",
    "limit_rows",
    "measures",
    "request",
    "share",
    "sum_of",
]

ROLLED_UNTIL = "hours_rolled_until"
"""``serving_state`` key: the hourly tables are complete for every hour before it."""

Lookback = str | timedelta
End = datetime | str | None

EPOCH_SQL = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
_MAX_ROWS = 100_000
TIME_DTYPE = "time"


def kept_from_key(table: str) -> str:
    """``serving_state`` key of the oldest time retention left in ``table``."""
    return f"kept_from.{table}"


# --- measures: what a figure means on each family ---------------------------------------------


def _conditional(where: str) -> str:
    return f"bigsum(events) FILTER (WHERE {where})"


def sum_of(column: str) -> str:
    """The sum of a bigint column as a bigint, 0 over no rows (``bigsum``, streaming/sql/V007)."""
    return f"bigsum({column})"


MEASURES: dict[str, dict[str, str]] = {
    TRAFFIC.name: {c: sum_of(c) for c in TRAFFIC.counters},
    WIKI.name: {c: sum_of(c) for c in WIKI.counters},
    NAMESPACE.name: {"events": sum_of("events")},
    ACTIVITY.name: {
        "events": sum_of("events"),
        "edits": _conditional("type = 'edit'"),
        "new_pages": _conditional("type = 'new'"),
        "log_events": _conditional("type = 'log'"),
        "categorize_events": _conditional("type = 'categorize'"),
        "other_events": _conditional("type IN ('external', 'other')"),
        "bot_events": _conditional("is_bot"),
        "human_events": _conditional("NOT is_bot"),
        "minor_edits": _conditional("type = 'edit' AND is_minor"),
        "major_edits": _conditional("type = 'edit' AND NOT is_minor"),
        "bytes_added": sum_of("bytes_added"),
        "bytes_removed": sum_of("bytes_removed"),
        "net_bytes": sum_of("net_bytes"),
    },
}
MEASURES[ACTIVITY_DIMS.name] = MEASURES[ACTIVITY.name]  # the same columns but the wiki's


def measures(family: Family, names: Sequence[str]) -> sql.Composable:
    """``expr AS name, ...`` for the named figures over ``family``'s rows."""
    exprs = MEASURES[family.name]
    return sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.SQL(exprs[n]), sql.Identifier(n)) for n in names
    )


# --- one request: window, split, filters, parameters ---------------------------------------------


@dataclass(frozen=True)
class Span:
    """A split of the window with the parameter names its conditions use."""

    split: Split
    prefix: str

    def params(self) -> dict[str, Any]:
        """The bounds of the hour part and of each minute range, by parameter name."""
        out: dict[str, Any] = {}
        if self.split.hours:
            out[f"{self.prefix}_h0"], out[f"{self.prefix}_h1"] = self.split.hours
        for i, (start, stop) in enumerate(self.split.minutes):
            out[f"{self.prefix}_m{i}a"], out[f"{self.prefix}_m{i}b"] = start, stop
        return out

    def hour_range(self) -> sql.Composable:
        """``window_start`` within the whole hours this span reads from the hourly tables."""
        col = sql.Identifier("window_start")
        return sql.SQL("{} >= %({p}_h0)s AND {} < %({p}_h1)s".replace("{p}", self.prefix)).format(
            col, col
        )

    def minute_ranges(self) -> sql.Composable:
        """``window_start`` within the parts this span reads from the minute tables."""
        col = sql.Identifier("window_start")
        return sql.SQL(" OR ").join(
            sql.SQL(f"({{}} >= %({self.prefix}_m{i}a)s AND {{}} < %({self.prefix}_m{i}b)s)").format(
                col, col
            )
            for i in range(len(self.split.minutes))
        )


@dataclass
class Request:
    """One call of a query function: where it reads, what it keeps, what it has read."""

    reader: Reader
    window: Window
    filters: Filters
    state: dict[str, datetime]
    sources: set[str]

    @property
    def rolled_until(self) -> datetime | None:
        """Hours before this are complete in the hourly tables (None: none rolled up yet)."""
        return self.state.get(ROLLED_UNTIL)

    def span(self, *, hours: bool = True, prefix: str = "s") -> Span:
        """The window split for reading; ``hours=False`` for minute resolution."""
        return Span(split_window(self.window, self.rolled_until if hours else None), prefix)

    def params(self, *spans: Span, **extra: Any) -> dict[str, Any]:
        """Every parameter a statement of this request may use: window, spans, filters."""
        out: dict[str, Any] = {"w_start": self.window.start, "w_end": self.window.end}
        for span in spans:
            out.update(span.params())
        f = self.filters
        for dim in _LISTED:
            values = list(getattr(f, dim))
            out[f"f_{dim}"] = values
            if len(values) == 1:
                out[f"f_{dim}_only"] = values[0]
        out["f_bot"] = f.bot
        out.update(extra)
        return out

    def complete(self, table: str) -> bool:
        """Whether retention kept ``table`` for the whole window."""
        kept = self.state.get(kept_from_key(table))
        return kept is None or kept <= self.window.start

    def rows(self, family: Family, span: Span, filters: Filters | None = None) -> sql.Composable:
        """The family's rows of the span (hours + minutes) that pass the filters."""
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in family.columns)
        where = self.where(family, span, self.filters if filters is None else filters)
        parts = []
        if span.split.hours:
            self.sources.add(family.hour)
            parts.append(
                sql.SQL("SELECT {} FROM {} WHERE {} AND {}").format(
                    cols, self.reader.table(family.hour), span.hour_range(), where
                )
            )
        if span.split.minutes:
            self.sources.add(family.minute)
            parts.append(
                sql.SQL("SELECT {} FROM {} WHERE ({}) AND {}").format(
                    cols, self.reader.table(family.minute), span.minute_ranges(), where
                )
            )
        return sql.SQL(" UNION ALL ").join(parts)

    def where(self, family: Family | str, span: Span, filters: Filters) -> sql.Composable:
        """The filter as SQL over ``family``'s columns (``recent_changes`` for the event table).

        Project and language are columns of the wiki and activity rows; elsewhere they become
        "one of the wikis whose rows in this window carry that project".
        """
        own = family.columns if isinstance(family, Family) else RECENT_CHANGES_COLUMNS
        conditions: list[sql.Composable] = [sql.SQL("TRUE")]
        if filters.wiki:
            conditions.append(_one_of("wiki", filters.wiki))
        by_wiki = []
        for dim in ("project", "language"):
            if getattr(filters, dim):
                cond = _one_of(dim, getattr(filters, dim))
                (conditions if dim in own else by_wiki).append(cond)
        if by_wiki:
            wikis = self.rows(WIKI, span, Filters())
            conditions.append(
                sql.SQL("wiki IN (SELECT wiki FROM ({}) AS w WHERE {})").format(
                    wikis, sql.SQL(" AND ").join(by_wiki)
                )
            )
        if filters.bot is not None:
            conditions.append(sql.SQL("is_bot = %(f_bot)s"))
        if filters.namespace:
            conditions.append(_one_of("namespace", filters.namespace))
        if filters.type:
            conditions.append(_one_of("type", filters.type))
        return sql.SQL(" AND ").join(conditions)

    def event_range(self) -> sql.Composable:
        """``recent_changes`` rows of the window."""
        self.sources.add(RECENT_CHANGES)
        return sql.SQL("event_time >= %(w_start)s AND event_time < %(w_end)s")

    def frame(
        self, columns: list[str], rows: list[tuple[Any, ...]], dtypes: dict[str, str]
    ) -> pd.DataFrame:
        """A DataFrame with the documented dtypes and the request in ``attrs``."""
        frame = pd.DataFrame.from_records(rows, columns=columns)
        for col, dtype in dtypes.items():
            if dtype == TIME_DTYPE:
                frame[col] = pd.to_datetime(frame[col], utc=True)
            else:
                frame[col] = frame[col].astype(dtype)
        frame.attrs.update(
            window_start=self.window.start,
            window_end=self.window.end,
            sources=sorted(self.sources),
            filters=self.filters.describe(),
        )
        return frame


_LISTED = ("wiki", "project", "language", "namespace", "type")
"""The filter dimensions that take a list of values."""


def _one_of(column: str, values: tuple[object, ...]) -> sql.Composable:
    """``column`` is one of the filter's ``values``, bound as :meth:`Request.params` binds them.

    A single value is compared with ``=``: PostgreSQL 15 then estimates it from the column's
    statistics and can read an index on (column, time) in time order, as the newest events of
    one wiki need; with ``= ANY`` it filters the whole window's rows instead.
    """
    if len(values) == 1:
        return sql.SQL("{} = {}").format(
            sql.Identifier(column), sql.Placeholder(f"f_{column}_only")
        )
    return sql.SQL("{} = ANY({})").format(sql.Identifier(column), sql.Placeholder(f"f_{column}"))


def _end(end: End) -> datetime | None:
    if isinstance(end, str):
        try:
            return datetime.fromisoformat(end)
        except ValueError as exc:
            raise QueryError(f"end {end!r} is not an ISO 8601 time") from exc
    return end


def request(reader: Reader, lookback: Lookback, end: End, filters: Filters | None) -> Request:
    """Validate a call's window and read the serving marks it needs (one round trip)."""
    window = make_window(lookback, _end(end))
    return Request(reader, window, filters or Filters(), reader.state(), set())


def family_for(filters: Filters, *families: Family) -> Family:
    """The cheapest of ``families`` (listed cheapest first) whose rows carry every filter."""
    for family in families:
        if filters.dimensions <= family.dimensions:
            return family
    raise AssertionError(f"no table among {families} serves {filters}")  # activity serves all


def limit_rows(n: int, name: str = "n") -> int:
    """``n`` if it is a sane row count, else a :class:`QueryError` naming the parameter."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= _MAX_ROWS:
        raise QueryError(f"{name} must be an integer from 1 to {_MAX_ROWS}, not {n!r}")
    return n


def share(part: pd.Series, whole: pd.Series | int) -> pd.Series:
    """``part / whole`` as floats, NaN where ``whole`` is 0."""
    return (part / whole).astype("float64").where(pd.Series(whole != 0, index=part.index))
