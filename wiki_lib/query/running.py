"""Exact top lists and per-user figures from the sliding-window totals (streaming/sql/V009).

``page_running``, ``user_running`` and ``wiki_running`` (V010) hold, per kept lookback, each
page's, user's and wiki's sums over the minutes from ``from_minute`` on. A window that ends
after the newest minute written and starts at most :data:`MAX_GAP` after ``from_minute`` is
served from them: its sums are the running totals minus the minutes in between (the gap),
which this module subtracts.

Top lists need no full scan: the totals are indexed by ``events`` descending, and subtracting
the gap only lowers a total. So if the ``n``-th best corrected total of the candidates read
beats the stored total of every row not read, no other key can enter the list; otherwise one
more read of every row whose stored total reaches that value settles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg2 import sql

from wiki_lib.query.plan import Request
from wiki_lib.query.tables import PAGE, USER, WIKI, Family

__all__ = ["MAX_GAP", "Running", "find"]

MAX_GAP = timedelta(minutes=10)
"""Most minutes a running answer subtracts; beyond it plain aggregation costs about as much."""

_TABLES = {PAGE.name: "page_running", USER.name: "user_running", WIKI.name: "wiki_running"}
_NULLABLE = frozenset({"server_name", "language"})
"""Key columns that may be NULL: matched through coalesce, which keeps the join hashable."""


def _keys(family: Family) -> list[str]:
    """The columns a running total is kept per: the minute table's, less time and counters."""
    return [c for c in family.columns if c not in ("window_start", *family.counters)]


def _matched(key: str) -> sql.Composable:
    ident = sql.Identifier(key)
    if key in _NULLABLE:
        return sql.SQL("coalesce(g.{k}, '') = coalesce(r.{k}, '')").format(k=ident)
    return sql.SQL("g.{k} = r.{k}").format(k=ident)


_FIRST_READ = 4
"""Candidates read first, as a multiple of ``n``."""


@dataclass(frozen=True)
class Running:
    """The kept lookback that serves one request, and how to correct it."""

    req: Request
    family: Family
    lookback: timedelta
    from_minute: datetime

    @property
    def table(self) -> str:
        """The running-totals table of the family."""
        return _TABLES[self.family.name]

    def _gap(self, counters: tuple[str, ...]) -> sql.Composable:
        """Per key, the sums of ``counters`` over the minutes the totals hold before the window."""
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in _keys(self.family))
        self.req.sources.update({self.table, self.family.minute})
        return sql.SQL(
            "SELECT {keys}, {sums} FROM {minute} "
            "WHERE window_start >= %(from_minute)s AND window_start < %(w_start)s GROUP BY {keys}"
        ).format(
            keys=keys,
            sums=sql.SQL(", ").join(
                sql.SQL("bigsum({c}) AS {c}").format(c=sql.Identifier(c)) for c in counters
            ),
            minute=self.req.reader.table(self.family.minute),
        )

    def _corrected(self, where: sql.Composable, limit: int | None) -> list[tuple[Any, ...]]:
        """Keys, their counters minus the gap's, and the stored events of the rows read.

        Ordered as the list is (events descending, then keys in the database's collation).
        """
        reader = self.req.reader
        keys = sql.SQL(", ").join(sql.Identifier(k) for k in _keys(self.family))
        counters = self.family.counters
        statement = sql.SQL(
            "WITH gap AS ({gap}), "
            "top AS (SELECT * FROM {running} WHERE lookback = %(lookback)s AND {where} "
            "ORDER BY events DESC, {keys} {limit}) "
            "SELECT {keys}, {corrected}, top.events AS stored "
            "FROM top LEFT JOIN gap USING ({keys}) ORDER BY events DESC, {keys}"
        ).format(
            keys=keys,
            gap=self._gap(counters),
            running=reader.table(self.table),
            where=where,
            limit=sql.SQL("" if limit is None else "LIMIT %(limit)s"),
            corrected=sql.SQL(", ").join(
                sql.SQL("top.{c} - coalesce(gap.{c}, 0) AS {c}").format(c=sql.Identifier(c))
                for c in counters
            ),
        )
        return reader.fetch(statement, self.params(limit=limit))[1]

    def params(self, **extra: Any) -> dict[str, Any]:
        """The parameters the statements of this answer use, with ``extra``."""
        return {
            "from_minute": self.from_minute,
            "w_start": self.req.window.start,
            "lookback": self.lookback,
            **extra,
        }

    def top(self, n: int) -> list[tuple[Any, ...]]:
        """The ``n`` keys with the most events in the window, exactly, ties by key.

        Rows: the family's keys, its counters, then 0 (``max_missing``: nothing is left out).
        """
        events = len(_keys(self.family))  # events is the first counter
        width = events + len(self.family.counters)

        def best(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
            return [r[:width] for r in rows if r[events] > 0][:n]

        first = n * _FIRST_READ
        rows = self._corrected(sql.SQL("TRUE"), first)
        answer = best(rows)
        unread_max = min((r[-1] for r in rows), default=0)  # no unread row has more events
        if len(rows) == first and (len(answer) < n or answer[-1][events] <= unread_max):
            floor = answer[-1][events] if len(answer) == n else 1
            rows = self._corrected(sql.SQL("events >= {}").format(sql.Literal(floor)), None)
            answer = best(rows)
        return [(*r, 0) for r in answer]

    def window_rows(self) -> sql.Composable:
        """``SELECT`` every key with events in the window, with its counters over the window."""
        keys = _keys(self.family)
        counters = self.family.counters
        return sql.SQL(
            "SELECT {r_keys}, {corrected} FROM {running} AS r "
            "LEFT JOIN ({gap}) AS g ON {on} "
            "WHERE r.lookback = %(lookback)s AND r.events - coalesce(g.events, 0) > 0"
        ).format(
            r_keys=sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(k)) for k in keys),
            gap=self._gap(counters),
            corrected=sql.SQL(", ").join(
                sql.SQL("r.{c} - coalesce(g.{c}, 0) AS {c}").format(c=sql.Identifier(c))
                for c in counters
            ),
            running=self.req.reader.table(self.table),
            on=sql.SQL(" AND ").join(_matched(k) for k in keys),
        )

    def edits_bins(self) -> sql.Composable:
        """``SELECT bin, users, edits`` of the window's edits histogram (V011), by bin.

        The kept bins of this lookback, with every user who edited in the gap moved from the
        bin of the stored total to the bin of the window's edits (or out, at none left).
        """
        if self.family is not USER:
            raise ValueError(f"edits bins are kept for users, not {self.family.name}")
        self.req.sources.add("user_edits_bins")
        return sql.SQL(
            "WITH g AS ({gap}), "
            "moved AS (SELECT r.edits AS total, r.edits - g.edits AS edits FROM g "
            'JOIN {running} AS r ON r.lookback = %(lookback)s AND r."user" = g."user" '
            "WHERE g.edits > 0), "
            "d AS (SELECT bin, users, edits FROM {bins} WHERE lookback = %(lookback)s "
            "UNION ALL SELECT edits_bin(total), -1, -total FROM moved "
            "UNION ALL SELECT edits_bin(edits), 1, edits FROM moved WHERE edits > 0) "
            "SELECT bin, bigsum(users), bigsum(edits) FROM d GROUP BY bin "
            "HAVING bigsum(users) > 0 ORDER BY bin"
        ).format(
            gap=self._gap(("edits",)),
            running=self.req.reader.table(self.table),
            bins=self.req.reader.table("user_edits_bins"),
        )


def find(req: Request, family: Family) -> Running | None:
    """The kept lookback that serves ``req`` for ``family``, or None (aggregate instead)."""
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
    return Running(req, family, lookback, from_minute)
