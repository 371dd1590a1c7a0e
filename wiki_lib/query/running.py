"""Exact top lists and per-user figures from the sliding-window totals (streaming/sql/V009).

``page_running``, ``user_running`` and ``wiki_running`` (V010) hold, per kept lookback, each
page's, user's and wiki's sums over the minutes from ``from_minute`` on. A window that ends
after the newest minute written and starts at most :data:`MAX_GAP` after ``from_minute`` is
served from them: its sums are the running totals minus the minutes in between (the gap),
which this module subtracts. ``activity_running`` (V015) holds the same per combination of
the activity rows' dimensions, read under the request's filters.

Top lists need no full scan: the totals are indexed by ``events`` descending, and subtracting
the gap only lowers a total. So if the ``n``-th best corrected total of the candidates read
beats the stored total of every row not read, no other key can enter the list; otherwise one
more read of every row whose stored total reaches that value settles it.

Week-long top pages and users (V012) come from seven-day totals over the hourly tables, which
cover the window's whole hours; the minutes after them (and before, while retention keeps
them) are added. :class:`HourRunning` bounds what a key it did not read can reach: its
stored week total plus its stored total in the minute lookback that covers the minutes after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from psycopg2 import sql

from wiki_lib.query.plan import Request, Span
from wiki_lib.query.tables import (
    ACTIVITY,
    PAGE,
    PAGE_SLICE,
    USER,
    USER_SLICE,
    USER_WIKI,
    WIKI,
    Family,
    Slice,
)

__all__ = ["MAX_GAP", "MAX_HOUR_GAP", "HourRunning", "Running", "find", "find_hours"]

MAX_GAP = timedelta(minutes=10)
"""Most minutes a running answer subtracts; beyond it plain aggregation costs about as much."""

MAX_HOUR_GAP = timedelta(hours=6)
"""Most whole hours a week's answer subtracts (per candidate, so the cost hardly grows)."""

_TABLES = {
    ACTIVITY.name: "activity_running",
    PAGE.name: "page_running",
    USER.name: "user_running",
    WIKI.name: "wiki_running",
    PAGE_SLICE.name: "page_slice_running",
    USER_SLICE.name: "user_slice_running",
    USER_WIKI.name: "user_wiki_running",
}
_HOUR_TABLES = {PAGE.name: "page_hour_running", USER.name: "user_hour_running"}
_SLICE_BINS = {USER_SLICE.name: "user_slice_bins", USER_WIKI.name: "user_wiki_bins"}
"""The user slices' edits histograms of their stored totals (V017), with bin 0: no edits."""
_NULL_AS = {"server_name": "''", "language": "''", "wiki": "''", "namespace": "-2147483648"}
"""What a key column that may be NULL is matched as: coalesce keeps the join hashable."""


def _keys(family: Family | Slice) -> list[str]:
    """The columns a running total is kept per: the minute table's, less time and counters."""
    return [c for c in family.columns if c not in ("window_start", *family.counters)]


def _matched(key: str, family: Family | Slice) -> sql.Composable:
    ident = sql.Identifier(key)
    # the host's columns may be NULL, and every dimension of the activity rows but type
    if key in ("server_name", "language") or (family is ACTIVITY and key in _NULL_AS):
        return sql.SQL("coalesce(g.{k}, {n}) = coalesce(r.{k}, {n})").format(
            k=ident, n=sql.SQL(_NULL_AS[key])
        )
    return sql.SQL("g.{k} = r.{k}").format(k=ident)


_EVERY_KEY = sql.SQL("TRUE")
"""The condition of an answer over every key of its family or slice."""

_FIRST_READ = 4
"""Candidates read first, as a multiple of ``n``."""


def _settled(answer: list[tuple[Any, ...]], n: int, events: int, unread_max: int) -> bool:
    """Whether no row left unread can enter the top ``n`` of ``answer``.

    Rows are read by stored events descending, then keys, and a key's events in the window
    are at most its stored events; so an unread row has at most ``unread_max`` (the last row
    read) and, at that many, comes after every row read with it. It ties the ``n``-th answer
    only at ``unread_max`` events, and then loses on its key unless the gap lowered that
    answer from more stored events (its last element).
    """
    if len(answer) < n:
        return False
    last = answer[-1]
    if last[events] != unread_max:
        return last[events] > unread_max
    return last[-1] == unread_max


@dataclass(frozen=True)
class Running:
    """The kept lookback that serves one request, and how to correct it."""

    req: Request
    family: Family | Slice
    lookback: timedelta
    from_minute: datetime
    pinned: tuple[tuple[str, Any], ...] = ()
    """A slice's columns and the one value each is read at (empty for a family)."""
    where: sql.Composable = field(default_factory=lambda: _EVERY_KEY)
    """A condition on the keys (the request's filters over the activity rows)."""
    prefix: str = ""
    """Prepended to the name of every parameter, so two answers can share a statement."""

    @property
    def table(self) -> str:
        """The running-totals table of the family."""
        return _TABLES[self.family.name]

    def _at(self) -> sql.Composable:
        """The filter (``TRUE`` unless given) and each pinned column at its value, as one
        condition over unqualified columns."""
        return sql.SQL(" AND ").join(
            [
                self.where,
                *(
                    sql.SQL("{} = {}").format(
                        sql.Identifier(column), sql.Placeholder(f"{self.prefix}pin_{column}")
                    )
                    for column, _ in self.pinned
                ),
            ]
        )

    def _sql(self, text: str) -> sql.SQL:
        """``text`` with its parameters named as :meth:`params` names them."""
        return sql.SQL(re.sub(r"%\((\w+)\)s", rf"%({self.prefix}\1)s", text))

    def _gap(self, counters: tuple[str, ...]) -> sql.Composable:
        """Per key, the sums of ``counters`` over the minutes the totals hold before the window."""
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in _keys(self.family))
        self.req.sources.update({self.table, self.family.minute})
        return self._sql(
            "SELECT {keys}, {sums} FROM {minute} WHERE window_start >= %(from_minute)s "
            "AND window_start < %(w_start)s AND {at} GROUP BY {keys}"
        ).format(
            keys=keys,
            at=self._at(),
            sums=sql.SQL(", ").join(
                sql.SQL("bigsum({c}) AS {c}").format(c=sql.Identifier(c)) for c in counters
            ),
            minute=self.req.reader.table(self.family.minute),
        )

    def _same_key(self) -> sql.Composable:
        """``g`` and ``r`` rows are of the same key (gap rows against stored totals)."""
        return sql.SQL(" AND ").join(_matched(k, self.family) for k in _keys(self.family))

    def _corrected(self, where: sql.Composable, limit: int | None) -> list[tuple[Any, ...]]:
        """Keys, their counters minus the gap's, and the stored events of the rows read.

        Ordered as the list is (events descending, then keys in the database's collation).
        """
        reader = self.req.reader
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in _keys(self.family))
        counters = self.family.counters
        statement = self._sql(
            "WITH gap AS ({gap}), "
            "top AS (SELECT * FROM {running} WHERE lookback = %(lookback)s AND {at} AND {where} "
            "ORDER BY events DESC, {keys} {limit}) "
            "SELECT {keys}, {corrected}, top.events AS stored "
            "FROM top LEFT JOIN gap USING ({keys}) ORDER BY events DESC, {keys}"
        ).format(
            keys=keys,
            gap=self._gap(counters),
            running=reader.table(self.table),
            at=self._at(),
            where=where,
            limit=self._sql("" if limit is None else "LIMIT %(limit)s"),
            corrected=sql.SQL(", ").join(
                sql.SQL("top.{c} - coalesce(gap.{c}, 0) AS {c}").format(c=sql.Identifier(c))
                for c in counters
            ),
        )
        return reader.fetch(statement, self.params(limit=limit))[1]

    def params(self, **extra: Any) -> dict[str, Any]:
        """The parameters the statements of this answer use, with ``extra``."""
        named = {
            "from_minute": self.from_minute,
            "w_start": self.req.window.start,
            "lookback": self.lookback,
            **{f"pin_{column}": value for column, value in self.pinned},
            **extra,
        }
        return {f"{self.prefix}{name}": value for name, value in named.items()}

    def top(self, n: int) -> list[tuple[Any, ...]]:
        """The ``n`` keys with the most events in the window, exactly, ties by key.

        Rows: the family's keys (a slice's without its pinned columns), its counters, then 0
        (``max_missing``: nothing is left out).
        """
        events = len(_keys(self.family))  # events is the first counter
        width = events + len(self.family.counters)

        def best(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            return [r for r in rows if r[events] > 0][:n]

        first = n * _FIRST_READ
        rows = self._corrected(sql.SQL("TRUE"), first)
        answer = best(rows)
        unread_max = min((r[-1] for r in rows), default=0)  # stored events, last row read
        if len(rows) == first and not _settled(answer, n, events, unread_max):
            floor = answer[-1][events] if len(answer) == n else 1
            rows = self._corrected(sql.SQL("events >= {}").format(sql.Literal(floor)), None)
            answer = best(rows)
        pinned = {column for column, _ in self.pinned}
        shown = [i for i, k in enumerate(_keys(self.family)) if k not in pinned]
        return [(*(r[i] for i in shown), *r[events:width], 0) for r in answer]

    def window_rows(self) -> sql.Composable:
        """``SELECT`` every key with events in the window, with its counters over the window."""
        keys = _keys(self.family)
        counters = self.family.counters
        return self._sql(
            "SELECT {r_keys}, {corrected} "
            "FROM (SELECT * FROM {running} WHERE lookback = %(lookback)s AND {at}) AS r "
            "LEFT JOIN ({gap}) AS g ON {on} WHERE r.events - coalesce(g.events, 0) > 0"
        ).format(
            r_keys=sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(k)) for k in keys),
            gap=self._gap(counters),
            corrected=sql.SQL(", ").join(
                sql.SQL("r.{c} - coalesce(g.{c}, 0) AS {c}").format(c=sql.Identifier(c))
                for c in counters
            ),
            running=self.req.reader.table(self.table),
            at=self._at(),
            on=self._same_key(),
        )

    def active_keys(self) -> sql.Composable:
        """``SELECT`` the number of keys with events in the window (one row, ``active``).

        The keys with stored events (the users of the slice's bins, V017), less those whose
        every event lies in the gap (a lookup per key of the gap), instead of correcting every
        key.
        """
        if self.family.name not in _SLICE_BINS:
            raise ValueError(f"active keys are kept for the user slices, not {self.family.name}")
        reader = self.req.reader
        bins = _SLICE_BINS[self.family.name]
        self.req.sources.add(bins)
        stored = self._sql(
            "SELECT coalesce(bigsum(users), 0) FROM {} WHERE lookback = %(lookback)s AND {}"
        ).format(reader.table(bins), self._at())
        return self._sql(
            "SELECT ({stored}) - (SELECT count(*) FROM ({gap}) AS g JOIN {running} AS r "
            "ON r.lookback = %(lookback)s AND {on} WHERE r.events > 0 AND r.events <= g.events) "
            "AS active"
        ).format(
            stored=stored,
            running=reader.table(self.table),
            gap=self._gap(("events",)),
            on=self._same_key(),
        )

    def edits_bins(self) -> sql.Composable:
        """``SELECT bin, users, edits`` of the window's edits histogram, by bin.

        The bins of the stored totals (kept for all users, V011, and for the user slices,
        V017), with every user who edited in the gap moved from the bin of the stored total
        to the bin of the window's edits (or out, at none left).
        """
        if self.family is USER:
            self.req.sources.add("user_edits_bins")
            stored = self._sql(
                "SELECT bin, users, edits FROM {} WHERE lookback = %(lookback)s"
            ).format(self.req.reader.table("user_edits_bins"))
        elif self.family.name in _SLICE_BINS:
            bins = _SLICE_BINS[self.family.name]
            self.req.sources.add(bins)
            stored = self._sql(
                "SELECT bin, users, edits FROM {} WHERE lookback = %(lookback)s AND {} AND bin > 0"
            ).format(self.req.reader.table(bins), self._at())
        else:
            raise ValueError(f"edits bins are kept for users, not {self.family.name}")
        return self._sql(
            "WITH g AS ({gap}), "
            "moved AS (SELECT r.edits AS total, r.edits - g.edits AS edits FROM g "
            "JOIN {running} AS r ON r.lookback = %(lookback)s AND {on} WHERE g.edits > 0), "
            "d AS ({stored} "
            "UNION ALL SELECT edits_bin(total), -1, -total FROM moved "
            "UNION ALL SELECT edits_bin(edits), 1, edits FROM moved WHERE edits > 0) "
            "SELECT bin, bigsum(users), bigsum(edits) FROM d GROUP BY bin "
            "HAVING bigsum(users) > 0 ORDER BY bin"
        ).format(
            gap=self._gap(("edits",)),
            running=self.req.reader.table(self.table),
            on=self._same_key(),
            stored=stored,
        )


def find(
    req: Request,
    family: Family | Slice,
    pinned: dict[str, Any] | None = None,
    *,
    where: sql.Composable = _EVERY_KEY,
    prefix: str = "",
) -> Running | None:
    """The kept lookback that serves ``req`` for ``family``, or None (aggregate instead).

    ``pinned``: for a slice, the value each of its pinned columns is read at; ``where``: a
    condition on the keys; ``prefix``: for the parameters (see :class:`Running`).
    """
    _, rows = req.reader.fetch(
        sql.SQL(
            "SELECT lookback, from_minute FROM {} WHERE family = %(family)s "
            "AND newest < %(w_end)s AND from_minute <= %(w_start)s "
            "AND from_minute >= %(w_start)s - %(gap)s ORDER BY lookback LIMIT 1"
        ).format(req.reader.table("running_marks")),
        {
            "family": family.name,
            "w_start": req.window.start,
            "w_end": req.window.end,
            "gap": MAX_GAP,
        },
    )
    if not rows:
        return None
    lookback, from_minute = rows[0]
    return Running(req, family, lookback, from_minute, tuple((pinned or {}).items()), where, prefix)


@dataclass(frozen=True)
class HourRunning:
    """The seven-day totals over an hourly table that serve one top list, and its minutes.

    The window is ``span`` (see :func:`_edges`). The totals hold the hours from ``from_hour``
    on, which may include hours from ``h1`` on (the batch layer rolls up a whole day, the
    current hour too).
    """

    req: Request
    family: Family
    span: Span
    lookback: timedelta
    from_hour: datetime
    tail_lookback: timedelta | None
    """The kept minute lookback whose totals include every minute of the tail; None: the tail
    is empty, or no such lookback exists and the tail is summed whole like the head."""

    def top(self, n: int, max_missing: sql.Composable) -> list[tuple[Any, ...]] | None:
        """The ``n`` keys with the most events in the window, ties by key, or None if unsure.

        Candidates: the ``n`` * :data:`_FIRST_READ` best week totals, as many of the tail's
        minute totals, every key of the head (and of the tail, if no minute totals bound it).
        Their exact sums are week total - hours outside ``[h0, h1)`` + head + tail. Any other
        key has at most the sum of the two smallest stored totals read (0 for a list read to
        its end); if the ``n``-th answer does not beat that, the caller sums the hours
        instead. Rows: keys, counters, ``max_missing``.
        """
        reader, family = self.req.reader, self.family
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in _keys(family))
        counters = family.counters
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in counters)
        week = reader.table(_HOUR_TABLES[family.name])
        minute = reader.table(family.minute)
        statement = sql.SQL(
            "WITH wk AS (SELECT {keys}, events FROM {week} WHERE lookback = %(hr_lookback)s "
            "ORDER BY events DESC, {keys} LIMIT %(hr_first)s), "
            "tl AS (SELECT {keys}, events FROM {running} WHERE lookback = %(hr_tail_lookback)s "
            "ORDER BY events DESC, {keys} LIMIT %(hr_first)s), "
            "hd AS (SELECT {keys}, {sums} FROM {minute} WHERE (window_start >= %(hr_head_a)s "
            "AND window_start < %(hr_head_b)s) OR (window_start >= %(hr_whole_a)s "
            "AND window_start < %(hr_whole_b)s) GROUP BY {keys}), "
            "cand AS (SELECT {keys} FROM wk UNION SELECT {keys} FROM tl "
            "UNION SELECT {keys} FROM hd), "
            "parts AS (SELECT {keys}, {cols} FROM {week} JOIN cand USING ({keys}) "
            "WHERE lookback = %(hr_lookback)s "
            "UNION ALL SELECT {keys}, {negated} FROM {hour} JOIN cand USING ({keys}) "
            "WHERE (window_start >= %(hr_from)s AND window_start < %(hr_h0)s) "
            "OR window_start >= %(hr_h1)s "
            "UNION ALL SELECT {keys}, {cols} FROM hd "
            "UNION ALL SELECT {keys}, {cols} FROM {minute} JOIN cand USING ({keys}) "
            "WHERE window_start >= %(hr_tail_a)s AND window_start < %(hr_tail_b)s), "
            "t AS (SELECT {keys}, {sums} FROM parts GROUP BY {keys} HAVING bigsum(events) > 0 "
            "ORDER BY events DESC, {keys} LIMIT %(n)s), "
            "bound AS (SELECT (SELECT CASE WHEN count(*) = %(hr_first)s THEN min(events) "
            "ELSE 0 END FROM wk) + (SELECT CASE WHEN count(*) = %(hr_first)s "
            "THEN min(events) ELSE 0 END FROM tl) AS unread) "
            "SELECT {t_keys}, {t_cols}, {max_missing}, bound.unread "
            "FROM bound LEFT JOIN t ON TRUE ORDER BY t.events DESC, {t_keys}"
        ).format(
            keys=keys,
            cols=cols,
            week=week,
            running=reader.table(_TABLES[family.name]),
            minute=minute,
            hour=reader.table(family.hour),
            sums=sql.SQL(", ").join(
                sql.SQL("bigsum({c}) AS {c}").format(c=sql.Identifier(c)) for c in counters
            ),
            negated=sql.SQL(", ").join(
                sql.SQL("-{c} AS {c}").format(c=sql.Identifier(c)) for c in counters
            ),
            t_keys=sql.SQL(", ").join(
                sql.SQL("t.{}").format(sql.Identifier(k)) for k in _keys(family)
            ),
            t_cols=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in counters),
            max_missing=max_missing,
        )
        h0, h1, head, tail = _edges(self.span)
        # the tail by candidate when minute totals bound it, else whole (empty: start == stop)
        by_key = tail if self.tail_lookback is not None else (tail[0], tail[0])
        whole = tail if self.tail_lookback is None else (tail[0], tail[0])
        params = self.req.params(
            self.span,
            n=n,
            hr_lookback=self.lookback,
            hr_first=n * _FIRST_READ,
            hr_tail_lookback=self.tail_lookback,
            hr_head_a=head[0],
            hr_head_b=head[1],
            hr_from=self.from_hour,
            hr_h0=h0,
            hr_h1=h1,
            hr_tail_a=by_key[0],
            hr_tail_b=by_key[1],
            hr_whole_a=whole[0],
            hr_whole_b=whole[1],
        )
        rows = reader.fetch(statement, params)[1]
        unread = rows[0][-1]
        answer = [r[:-1] for r in rows if r[0] is not None]
        events = len(_keys(family))
        if unread > 0 and (len(answer) < n or answer[-1][events] <= unread):
            return None
        self.req.sources.update(
            {_HOUR_TABLES[family.name], family.hour, family.minute, "hour_cutoffs"}
        )
        if self.tail_lookback is not None:
            self.req.sources.add(_TABLES[family.name])
        return answer


_Range = tuple[datetime, datetime]


def _edges(span: Span) -> tuple[datetime, datetime, _Range, _Range]:
    """``h0``, ``h1``: the span's whole hours; the minutes before (head) and after (tail) them,
    each ``(start, stop)``, empty when start == stop."""
    assert span.split.hours is not None  # find_hours serves only spans with whole hours
    h0, h1 = span.split.hours
    head = next(((a, b) for a, b in span.split.minutes if b == h0), (h0, h0))
    tail = next(((a, b) for a, b in span.split.minutes if a == h1), (h1, h1))
    return h0, h1, head, tail


def find_hours(req: Request, family: Family, span: Span) -> HourRunning | None:
    """The seven-day totals that serve ``req``'s top list over ``span``, or None."""
    if family.name not in _HOUR_TABLES or span.split.hours is None:
        return None
    h0, _, _, tail = _edges(span)
    _, rows = req.reader.fetch(
        sql.SQL(
            "SELECT 'week', lookback, from_minute FROM {marks} WHERE family = %(hours)s "
            "AND from_minute <= %(h0)s AND from_minute > %(h0)s - %(gap)s "
            "UNION ALL (SELECT 'tail', lookback, NULL FROM {marks} WHERE family = %(minutes)s "
            "AND from_minute <= %(tail_a)s AND newest < %(tail_b)s ORDER BY lookback LIMIT 1)"
        ).format(marks=req.reader.table("running_marks")),
        {
            "hours": family.hour,
            "minutes": family.name,
            "h0": h0,
            "gap": MAX_HOUR_GAP + timedelta(hours=1),
            "tail_a": tail[0],
            "tail_b": tail[1],
        },
    )
    week = [r for r in rows if r[0] == "week"]
    tail_lookback = next((r[1] for r in rows if r[0] == "tail"), None)
    if not week:
        return None
    _, lookback, from_minute = week[0]
    from_hour = from_minute + (h0 - from_minute) % timedelta(hours=1)  # the first hour counted
    return HourRunning(
        req, family, span, lookback, from_hour, tail_lookback if tail[0] < tail[1] else None
    )
