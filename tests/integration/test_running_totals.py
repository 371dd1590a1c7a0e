"""The sliding-window totals (streaming/sql/V009) against sums computed here in plain Python.

Rows go into ``page_minute`` and ``user_minute`` the way writers put them there: inserts,
upserts that add to existing rows, a day replaced by delete and insert, retention deletes.
After each, every kept total must equal the sum of the minute rows it covers, and the top
lists and the edits histogram of live windows must equal the same figures computed here.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg2 import sql

from wiki_lib import db, query
from wiki_lib.config import Settings
from wiki_lib.query import Filters, QueryError
from wiki_lib.query.tables import PAGE, RECENT_CHANGES_COLUMNS, SLICES, USER
from wiki_lib.query.window import parse_duration

pytestmark = pytest.mark.integration

T0 = datetime(2030, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
PAGE_COUNTERS = ("events", "bytes_added", "bytes_removed")
USER_COUNTERS = ("events", "edits", "bot_events", "bytes_added", "bytes_removed")


class Minutes:
    """Writes minute rows as the writer role and keeps the same rows in Python."""

    def __init__(self, settings: Settings, schema: str) -> None:
        self.s = settings.with_overrides(postgres={"schema_name": schema})
        self.schema = schema
        self.pages: dict[tuple[datetime, str, str], list[int]] = {}
        self.users: dict[tuple[datetime, str], list[int]] = {}

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    def upsert(
        self,
        pages: list[tuple[datetime, str, str, int, int, int]],
        users: list[tuple[datetime, str, int, int, int, int, int]],
    ) -> None:
        """One upsert statement per table, adding to rows that exist (the sink's merge)."""
        with db.transaction(self.s.postgres, "writer") as conn, conn.cursor() as cur:
            for table, conflict, counters, rows, mine in (
                (
                    "page_minute",
                    ("window_start", "wiki", "title"),
                    PAGE_COUNTERS,
                    pages,
                    self.pages,
                ),
                ("user_minute", ("window_start", "user"), USER_COUNTERS, users, self.users),
            ):
                if not rows:
                    continue
                keys = len(conflict)
                width = keys + len(counters)
                cur.execute(
                    sql.SQL(
                        "INSERT INTO {} AS t VALUES {} ON CONFLICT ({}) DO UPDATE SET {}"
                    ).format(
                        self._table(table),
                        sql.SQL(", ").join(sql.Literal(tuple(r)) for r in rows),
                        sql.SQL(", ").join(sql.Identifier(c) for c in conflict),
                        sql.SQL(", ").join(
                            sql.SQL("{c} = t.{c} + EXCLUDED.{c}").format(c=sql.Identifier(c))
                            for c in counters
                        ),
                    )
                )
                for r in rows:
                    assert len(r) == width
                    have = mine.setdefault(tuple(r[:keys]), [0] * len(counters))
                    for i, v in enumerate(r[keys:]):
                        have[i] += v

    def delete_before(self, table: str, stop: datetime, start: datetime | None = None) -> None:
        """Delete the rows of ``[start, stop)`` (all before ``stop`` without a start)."""
        with db.transaction(self.s.postgres, "writer") as conn, conn.cursor() as cur:
            cur.execute(
                sql.SQL("DELETE FROM {} WHERE window_start < %s AND window_start >= %s").format(
                    self._table(table)
                ),
                (stop, start or datetime(1970, 1, 1, tzinfo=UTC)),
            )
        mine = self.pages if table == "page_minute" else self.users
        for key in [k for k in mine if k[0] < stop and (start is None or k[0] >= start)]:
            del mine[key]

    def write_events(
        self, statement: str, rows: list[tuple[Any, ...]] | tuple[Any, ...] = ()
    ) -> None:
        """Run ``statement`` on ``recent_changes`` (``{t}``) as the writer role."""
        with db.transaction(self.s.postgres, "writer") as conn, conn.cursor() as cur:
            cur.execute(sql.SQL(statement).format(t=self._table("recent_changes")), rows or None)

    def insert_events(self, batch: dict[str, tuple[Any, ...]]) -> None:
        """Insert or replace events by id, the sink's merge (every column from the new row).

        An event: time, wiki, type, namespace, title, user, is_bot, length delta.
        """
        self.write_events(
            "INSERT INTO {t} AS r VALUES "
            + ", ".join(["(%s, %s, %s, 'x.org', %s, %s, %s, %s, %s, false, %s, '')"] * len(batch))
            + " ON CONFLICT (event_id) DO UPDATE SET "
            + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in RECENT_CHANGES_COLUMNS[1:]),
            [v for k, e in batch.items() for v in (k, *e)],
        )

    def fetch(self, statement: str) -> list[tuple[Any, ...]]:
        conn = db.connect(self.s.postgres, "reader")
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL(statement).format(s=sql.Identifier(self.schema)))
                return cur.fetchall()
        finally:
            conn.close()

    def sums(self, family: str, start: datetime, end: datetime) -> dict[tuple[str, ...], list[int]]:
        """Per page (user): the counters of its rows in ``[start, end)``."""
        mine = self.pages if family == "page" else self.users
        width = len(PAGE_COUNTERS if family == "page" else USER_COUNTERS)
        out: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0] * width)
        for (ws, *key), counters in mine.items():
            if start <= ws < end:
                out[tuple(key)] = [a + b for a, b in zip(out[tuple(key)], counters, strict=True)]
        return dict(out)


@pytest.fixture
def minutes(settings: Settings, pg_schema: str) -> Iterator[Minutes]:
    yield Minutes(settings, pg_schema)


def _check_totals(m: Minutes) -> None:
    """Every kept total equals the sum of the minute rows from its from_minute on."""
    marks = m.fetch(
        "SELECT family, lookback, newest, from_minute FROM {s}.running_marks "
        "WHERE family IN ('page', 'user')"
    )
    assert len(marks) == 10
    for family, lookback, newest, from_minute in marks:
        mine = m.pages if family == "page" else m.users
        assert newest == max(k[0] for k in mine), family  # nothing newer was ever deleted here
        assert from_minute == newest + MINUTE - lookback
        table, keys = (
            ("page_running", "wiki, title") if family == "page" else ("user_running", '"user"')
        )
        counters = PAGE_COUNTERS if family == "page" else USER_COUNTERS
        got = {
            tuple(r[: -len(counters)]): list(r[-len(counters) :])
            for r in m.fetch(
                f"SELECT {keys}, {', '.join(counters)} FROM {{s}}.{table} "
                f"WHERE lookback = '{lookback.total_seconds():.0f} seconds'"
            )
        }
        want = m.sums(family, from_minute, datetime(9999, 1, 1, tzinfo=UTC))
        assert got == want, (family, lookback)
        if family == "user":
            bins: dict[int, list[int]] = defaultdict(lambda: [0, 0])
            for counters in want.values():
                if counters[1] > 0:
                    bins[counters[1].bit_length()][0] += 1
                    bins[counters[1].bit_length()][1] += counters[1]
            kept = m.fetch(
                "SELECT bin, users, edits FROM {s}.user_edits_bins "
                f"WHERE lookback = '{lookback.total_seconds():.0f} seconds' AND users <> 0"
            )
            assert {b: [u, e] for b, u, e in kept} == dict(bins), lookback


def _random_rows(rng: random.Random, start: datetime, minutes_: int) -> tuple[list, list]:
    pages, users = [], []
    for i in range(minutes_):
        ws = start + i * MINUTE
        for title in rng.sample(range(60), 8):
            n = rng.choice((1, 1, 1, 2, 5))
            pages.append((ws, f"w{title % 3}", f"Page {title}", n, 100 * n, 7 * n))
        for user in rng.sample(range(40), 6):
            n = rng.choice((1, 1, 2, 9))
            edits = rng.randint(0, n)
            bot = n if user < 5 else 0
            users.append((ws, f"User {user}", n, edits, bot, 50 * n, 3 * n))
    return pages, users


def test_totals_follow_inserts_upserts_replaces_and_retention(minutes: Minutes) -> None:
    rng = random.Random(7)
    pages, users = _random_rows(rng, T0, 200)
    minutes.upsert(pages[:900], users[:700])
    _check_totals(minutes)
    minutes.upsert(pages[900:], users[700:])  # the data clock moves on: minutes leave
    _check_totals(minutes)
    again, again_users = _random_rows(rng, T0 + 150 * MINUTE, 50)
    minutes.upsert(again, again_users)  # updates of existing rows (and a few new ones)
    _check_totals(minutes)
    late = [(T0 + 170 * MINUTE, "w9", "Late page", 3, 30, 0)]
    minutes.upsert(late, [(T0 + 100 * MINUTE, "Late user", 2, 2, 0, 9, 9)])
    _check_totals(minutes)
    # the batch layer's replace: delete a stretch, insert it again, recomputed
    stretch = (T0 + 180 * MINUTE, T0 + 190 * MINUTE)
    replaced = [r for r in again if stretch[0] <= r[0] < stretch[1]]
    minutes.delete_before("page_minute", stretch[1], stretch[0])
    _check_totals(minutes)
    minutes.upsert([(*r[:3], r[3] + 1, r[4], r[5]) for r in replaced], [])
    _check_totals(minutes)
    minutes.delete_before("page_minute", T0 + 60 * MINUTE)  # retention
    minutes.delete_before("user_minute", T0 + 60 * MINUTE)
    _check_totals(minutes)


def _top(sums: dict[tuple[str, ...], list[int]], n: int) -> list[tuple[Any, ...]]:
    rows = [(*k, *v) for k, v in sums.items() if v[0] > 0]
    keys = len(next(iter(sums)))
    rows.sort(key=lambda r: (-r[keys], *r[:keys]))
    return rows[:n]


def test_live_top_lists_equal_plain_sums(minutes: Minutes, settings: Settings) -> None:
    rng = random.Random(11)
    pages, users = _random_rows(rng, T0, 200)
    minutes.upsert(pages, users)
    newest = T0 + 199 * MINUTE
    with query.connect(settings, schema=minutes.schema) as reader:
        for lookback, end_after in (("15m", 1), ("1h", 1), ("1h", 6), ("3h", 1), ("20m", 1)):
            end = newest + end_after * MINUTE
            start = end - parse_duration(lookback)
            for n in (1, 5, 30):
                frame = query.top_pages(reader, lookback, end=end, n=n)
                assert "page_running" in frame.attrs["sources"], (lookback, end_after)
                got = [tuple(r) for r in frame.drop(columns="max_missing").itertuples(index=False)]
                assert got == _top(minutes.sums("page", start, end), n), (lookback, end_after, n)
                frame = query.top_users(reader, lookback, end=end, n=n)
                got = [tuple(r) for r in frame.drop(columns="max_missing").itertuples(index=False)]
                assert got == _top(minutes.sums("user", start, end), n), (lookback, end_after, n)
            hist = query.edits_per_user(reader, lookback, end=end)
            assert "user_edits_bins" in hist.attrs["sources"], (lookback, end_after)
            edits = [v[1] for v in minutes.sums("user", start, end).values() if v[1] > 0]
            assert hist["users"].sum() == len(edits) and hist["edits"].sum() == sum(edits)
            for row in hist.itertuples():
                inside = [e for e in edits if row.edits_min <= e <= row.edits_max]
                assert (row.users, row.edits) == (len(inside), sum(inside))


def test_a_gap_that_reorders_the_list_is_settled_by_a_second_read(
    minutes: Minutes, settings: Settings
) -> None:
    """Pages busy only in the subtracted minutes rank first by stored total, last by window."""
    gap_heavy = [(T0, "w", f"A{i}", 99, 0, 0) for i in range(1, 8)]
    in_window = [(T0 + 15 * MINUTE, "w", f"A{i}", 1, 0, 0) for i in range(1, 8)]
    busy = [(T0 + 20 * MINUTE, "w", t, 5, 0, 0) for t in ("B", "C")]
    newest = [(T0 + 29 * MINUTE, "w", "Z", 1, 0, 0)]
    minutes.upsert(gap_heavy + in_window + busy + newest, [(T0, "U", 1, 1, 0, 0, 0)])
    end = T0 + 30 * MINUTE  # 20 minutes from the 30-minute totals, minus the 10 before
    with query.connect(settings, schema=minutes.schema) as reader:
        for n in (1, 2, 3, 9):
            frame = query.top_pages(reader, "20m", end=end, n=n)
            assert "page_running" in frame.attrs["sources"]
            got = [tuple(r) for r in frame.drop(columns="max_missing").itertuples(index=False)]
            want = _top(minutes.sums("page", end - 20 * MINUTE, end), n)
            assert got == want, n
    assert [r[1] for r in want[:2]] == ["B", "C"]


def test_a_tie_with_an_answer_the_gap_lowered_is_settled_by_a_second_read(
    minutes: Minutes, settings: Settings
) -> None:
    """The first read (Y, B1-B3) ends in a tie at 5 stored events; Y keeps 5 in the window,
    the Bs 4, so Y leads what was read. But C, unread, also has 5 and sorts before Y."""
    gap = [(T0, "w", t, 1, 0, 0) for t in ("Y", "B1", "B2", "B3")]
    window = [(T0 + 15 * MINUTE, "w", t, 4, 0, 0) for t in ("B1", "B2", "B3")]
    window += [(T0 + 15 * MINUTE, "w", t, 5, 0, 0) for t in ("Y", "C")]
    newest = [(T0 + 29 * MINUTE, "w", "Z", 1, 0, 0)]
    minutes.upsert(gap + window + newest, [(T0, "U", 1, 1, 0, 0, 0)])
    end = T0 + 30 * MINUTE
    with query.connect(settings, schema=minutes.schema) as reader:
        for n in (1, 2, 3):
            frame = query.top_pages(reader, "20m", end=end, n=n)
            assert "page_running" in frame.attrs["sources"]
            got = [tuple(r) for r in frame.drop(columns="max_missing").itertuples(index=False)]
            assert got == _top(minutes.sums("page", end - 20 * MINUTE, end), n), n
    assert [r[1] for r in got[:2]] == ["C", "Y"]


def test_a_snapshot_reads_one_state_while_a_writer_commits(
    minutes: Minutes, settings: Settings
) -> None:
    """The running answers read marks and totals in one snapshot; commits in between wait."""
    minutes.upsert([(T0, "w", "P", 1, 0, 0)], [])
    with query.connect(settings, schema=minutes.schema) as reader:

        def count() -> int:
            statement = sql.SQL("SELECT count(*) FROM {}").format(reader.table("page_minute"))
            return int(reader.fetch(statement)[1][0][0])

        with reader.snapshot():
            before = count()
            minutes.upsert([(T0 + MINUTE, "w", "Q", 1, 0, 0)], [])
            assert count() == before
        assert count() == before + 1
        with pytest.raises(QueryError), reader.snapshot():
            reader.fetch(sql.SQL("SELECT 1 / 0"))
        assert count() == before + 1  # the failed snapshot ended; the session goes on


def test_edits_bin_is_the_bit_length(minutes: Minutes) -> None:
    values = [1, 2, 3, 4, 7, 8, 1000, 2**31, 2**62 - 1, 2**62, 2**63 - 1]
    got = minutes.fetch(
        "SELECT v, {s}.edits_bin(v) FROM unnest(ARRAY[0, -5, "
        + ", ".join(map(str, values))
        + "]::bigint[]) AS v"
    )
    assert got == [(0, None), (-5, None), *((v, v.bit_length()) for v in values)]


HOUR = timedelta(hours=1)


def _write_hours(
    m: Minutes,
    pages: list[tuple[Any, ...]],
    users: list[tuple[Any, ...]],
    rolled: datetime | None = None,
) -> None:
    """Hour rows as the roll-up writes them (plain inserts), and the roll-up's mark: after the
    newest hour written, or ``rolled`` (the batch layer rolls up hours beyond the mark)."""
    with db.transaction(m.s.postgres, "writer") as conn, conn.cursor() as cur:
        for table, rows in (("page_hour", pages), ("user_hour", users)):
            if rows:
                cur.execute(
                    sql.SQL("INSERT INTO {} VALUES {}").format(
                        m._table(table), sql.SQL(", ").join(sql.Literal(tuple(r)) for r in rows)
                    )
                )
        cur.execute(
            sql.SQL(
                "INSERT INTO {} AS s (key, at) VALUES ('hours_rolled_until', %s) "
                "ON CONFLICT (key) DO UPDATE SET at = EXCLUDED.at"
            ).format(m._table("serving_state")),
            (rolled or max(r[0] for r in pages) + HOUR,),
        )


def _hour_rows(rng: random.Random, first: datetime, hours: int) -> tuple[list, list]:
    pages, users = [], []
    for h in range(hours):
        ws = first + h * HOUR
        for title in rng.sample(range(50), 12):
            n = rng.choice((1, 2, 3, 8, 20)) + (30 if title < 3 else 0)
            pages.append((ws, f"w{title % 2}", f"Page {title}", n, 10 * n, n))
        for user in rng.sample(range(30), 8):
            n = rng.choice((1, 4, 9, 40))
            users.append((ws, f"User {user}", n, n // 2, n if user < 4 else 0, 5 * n, n))
    return pages, users


def _sums(rows: list[tuple[Any, ...]], keys: int, start: datetime, end: datetime) -> dict:
    out: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0] * (len(rows[0]) - keys - 1))
    for ws, *rest in rows:
        if start <= ws < end:
            key = tuple(rest[:keys])
            out[key] = [a + b for a, b in zip(out[key], rest[keys:], strict=True)]
    return dict(out)


def test_week_top_lists_from_hour_totals_equal_plain_sums(
    minutes: Minutes, settings: Settings
) -> None:
    """Whole hours from the seven-day totals, minutes before and after them added per key."""
    rng = random.Random(5)
    hour_pages, hour_users = _hour_rows(rng, T0, 171)  # hours T0 .. T0 + 170 h
    _write_hours(minutes, hour_pages[:1500], hour_users[:1000])
    _write_hours(minutes, hour_pages[1500:], hour_users[1000:])  # older hours leave the week
    rolled = T0 + 171 * HOUR
    head_pages, head_users = _random_rows(rng, T0 + 3 * HOUR + 20 * MINUTE, 40)
    tail_pages, tail_users = _random_rows(rng, rolled, 25)
    minutes.upsert(head_pages + tail_pages, head_users + tail_users)
    marks = minutes.fetch(
        "SELECT family, newest, from_minute FROM {s}.running_marks "
        "WHERE family IN ('page_hour', 'user_hour') ORDER BY 1"
    )
    assert marks == [
        (f, T0 + 170 * HOUR, T0 + 2 * HOUR + MINUTE) for f in ("page_hour", "user_hour")
    ]
    for family, table, rows, keys in (
        ("page", "page_hour_running", hour_pages, 2),
        ("user", "user_hour_running", hour_users, 1),
    ):
        got = minutes.fetch(f"SELECT * FROM {{s}}.{table}")
        want = _sums(rows, keys, T0 + 3 * HOUR, rolled)
        assert {tuple(r[1 : 1 + keys]): list(r[1 + keys :]) for r in got} == want, family
    # the batch layer's roll-up of the current hour, beyond the mark: the totals hold it, the
    # answers must not (the hour's minutes serve it)
    late_pages, late_users = _hour_rows(rng, rolled, 1)
    _write_hours(minutes, late_pages, late_users, rolled=rolled)

    def expected(family: str, start: datetime, end: datetime, n: int) -> list[tuple[Any, ...]]:
        rows, keys = (hour_pages, 2) if family == "page" else (hour_users, 1)
        h0 = start + (T0 - start) % HOUR
        total = _sums(rows, keys, h0, min(end, rolled))
        for a, b in ((start, h0), (rolled, end)):
            for key, counters in minutes.sums(family, a, b).items():
                have = total.get(key, [0] * len(counters))
                total[key] = [x + y for x, y in zip(have, counters, strict=True)]
        return _top(total, n)

    with query.connect(settings, schema=minutes.schema) as reader:
        for lookback, end in (
            ("7d", rolled + 25 * MINUTE),  # head 40 minutes, tail 25 minutes
            ("7d", rolled),  # the totals moved past its first hour (the late hour): summed
            ("6d23h", rolled),  # no minutes at all
            ("6d20h", rolled + 3 * MINUTE),  # a four-hour gap; tail minutes summed whole
            ("3d", rolled + 25 * MINUTE),  # too long a gap: summed
        ):
            start = end - parse_duration(lookback)
            for n in (1, 3, 10, 60):
                for family, function, table in (
                    ("page", query.top_pages, "page_hour_running"),
                    ("user", query.top_users, "user_hour_running"),
                ):
                    frame = function(reader, lookback, end=end, n=n)
                    assert (frame["max_missing"] == 0).all()
                    got = [
                        tuple(r) for r in frame.drop(columns="max_missing").itertuples(index=False)
                    ]
                    assert got == expected(family, start, end, n), (family, lookback, end, n)
                    from_hours = table in frame.attrs["sources"]
                    assert not from_hours or lookback != "3d"
                    summed = lookback == "3d" or (lookback, end) == ("7d", rolled)
                    assert from_hours != summed, (lookback, end)


def test_a_key_busy_only_before_the_window_sends_the_week_list_to_plain_sums(
    minutes: Minutes, settings: Settings
) -> None:
    """Pages whose stored week total comes from the hour before the window rank first there."""
    pages = [(T0 + 3 * HOUR, "w", f"A{i}", 600, 0, 0) for i in range(8)]
    pages += [(T0 + h * HOUR, "w", t, 3, 0, 0) for h in range(4, 171) for t in ("B", "C")]
    pages += [(T0 + 170 * HOUR, "w", f"A{i}", 1, 0, 0) for i in range(8)]
    _write_hours(minutes, pages, [(T0 + 170 * HOUR, "U", 1, 1, 0, 0, 0)])
    end = T0 + 171 * HOUR + MINUTE  # window hours from T0 + 4 h; the totals hold T0 + 3 h
    with query.connect(settings, schema=minutes.schema) as reader:
        frame = query.top_pages(reader, "7d", end=end, n=2)
        assert [r[1] for r in frame.itertuples(index=False)] == ["B", "C"]
        assert frame["events"].tolist() == [3 * 167, 3 * 167]
        assert "page_hour_running" not in frame.attrs["sources"]
        frame = query.top_pages(reader, "7d", end=end, n=10)
        assert frame["title"].tolist() == ["B", "C", *(f"A{i}" for i in range(8))]
        assert "page_hour_running" in frame.attrs["sources"]  # all candidates read: exact


def _slices_of(events: dict[str, tuple[Any, ...]]) -> dict[str, set[tuple[Any, ...]]]:
    """The three slice minute tables (streaming/sql/V013) as plain sums of ``events``."""
    out: dict[str, dict[tuple[Any, ...], list[int]]] = {
        "page_slice_minute": defaultdict(lambda: [0, 0, 0]),
        "user_slice_minute": defaultdict(lambda: [0, 0, 0, 0, 0]),
        "user_wiki_minute": defaultdict(lambda: [0, 0, 0, 0, 0]),
    }
    for time, wiki, kind, ns, title, user, bot, delta in events.values():
        minute = time.replace(second=0, microsecond=0)
        added, removed = max(delta, 0), max(-delta, 0)
        edit = int(kind in ("edit", "new"))
        if edit and wiki is not None and title is not None and ns is not None:
            for i, v in enumerate((1, added, removed)):
                out["page_slice_minute"][(minute, wiki, title, ns, bot)][i] += v
        user_counts = (1, edit, int(bot), added, removed)
        if user is not None and ns is not None:
            for i, v in enumerate(user_counts):
                out["user_slice_minute"][(minute, user, ns, bot)][i] += v
        if user is not None and wiki is not None:
            for i, v in enumerate(user_counts):
                out["user_wiki_minute"][(minute, user, wiki)][i] += v
    return {table: {(*k, *v) for k, v in rows.items()} for table, rows in out.items()}


def test_slices_follow_every_write_to_recent_changes(minutes: Minutes) -> None:
    """Inserts, a replayed batch, updates that move an event, deletes: each slice minute table
    stays the sum of recent_changes, its running totals the sum of its minutes, and the user
    slices' bins the histogram of their totals."""
    events: dict[str, tuple[Any, ...]] = {}
    rng = random.Random(13)

    def insert(batch: dict[str, tuple[Any, ...]]) -> None:
        minutes.insert_events(batch)
        events.update(batch)

    def check() -> None:
        want = _slices_of(events)
        for table, rows in want.items():
            got = set(minutes.fetch(f"SELECT * FROM {{s}}.{table}"))
            assert got == rows, table
        for family, keys in (
            ("page_slice", "wiki, title, namespace, is_bot"),
            ("user_slice", '"user", namespace, is_bot'),
            ("user_wiki", '"user", wiki'),
        ):
            kept = minutes.fetch(f"SELECT lookback, {keys}, events FROM {{s}}.{family}_running")
            summed = minutes.fetch(
                f"SELECT m.lookback, {keys}, sum(t.events)::bigint FROM {{s}}.{family}_minute "
                "AS t JOIN {s}.running_marks AS m ON m.family = "
                f"'{family}' AND t.window_start >= m.from_minute GROUP BY m.lookback, {keys}"
            )
            assert set(kept) == set(summed), family
        for family, pinned in (("user_slice", "namespace, is_bot"), ("user_wiki", "wiki")):
            bins: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
            width = len(pinned.split(", "))
            totals = minutes.fetch(
                f"SELECT lookback, {pinned}, events, edits FROM {{s}}.{family}_running"
            )
            for *key, kept_events, edits in totals:
                if kept_events > 0:  # bin 0: events but no edits (V017)
                    counted = bins[(*key, edits.bit_length())]
                    counted[0] += 1
                    counted[1] += edits
            stored = minutes.fetch(
                f"SELECT lookback, {pinned}, bin, users, edits FROM {{s}}.{family}_bins "
                "WHERE users <> 0 OR edits <> 0"
            )
            assert {tuple(r[: width + 2]): list(r[width + 2 :]) for r in stored} == bins, family

    def random_event() -> tuple[Any, ...]:
        return (
            T0 + timedelta(seconds=rng.randrange(3 * 3600)),
            rng.choice(["enwiki", "dewiki", None]),
            rng.choice(["edit", "new", "log", "categorize"]),
            rng.choice([0, 1, 14, None]),
            rng.choice(["A", "B", "C", None]),
            rng.choice(["Ann", "Bob", "Bot", None]),
            rng.random() < 0.3,
            rng.randrange(-500, 500),
        )

    for kept in SLICES[PAGE.name] + SLICES[USER.name]:  # what the query API reads by name
        columns = minutes.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            f"'{minutes.schema}' AND table_name = '{kept.minute}' ORDER BY ordinal_position"
        )
        assert tuple(c for (c,) in columns) == kept.columns
    insert({f"e{i}": random_event() for i in range(300)})
    check()
    insert({k: events[k] for k in list(events)[:100]})  # a replayed batch changes nothing
    check()
    insert({k: random_event() for k in list(events)[50:120]})  # moved to other minutes
    check()
    insert({f"n{i}": random_event() for i in range(200)})  # later minutes expire earlier ones
    check()
    gone = [k for k, e in events.items() if e[0] < T0 + timedelta(hours=1)]
    minutes.write_events("DELETE FROM {t} WHERE event_time < %s", (T0 + timedelta(hours=1),))
    for k in gone:
        del events[k]
    check()
    minutes.write_events("DELETE FROM {t}")
    events.clear()
    check()


def test_live_user_answers_from_slices_equal_plain_counts(
    minutes: Minutes, settings: Settings
) -> None:
    """Active users and the edits histogram of one slice: the stored totals less the gap's
    minutes, including users whose every event lies in the gap."""
    rng = random.Random(17)
    people = [f"U{i}" for i in range(80)]
    events = {
        f"e{i}": (
            T0 + timedelta(seconds=rng.randrange(3 * 3600)),
            rng.choice(["enwiki", "dewiki"]),
            rng.choice(["edit", "edit", "new", "log"]),
            rng.choice([0, 0, 1]),
            "T",
            rng.choice(people[: rng.randrange(1, 81)]),  # a few busy users, many rare ones
            rng.random() < 0.2,
            0,
        )
        for i in range(2500)
    }
    minutes.insert_events(events)
    newest = max(e[0] for e in events.values()).replace(second=0)
    cases = [  # filter, slice, its kept events: (wiki, namespace, is_bot, user) -> included
        (Filters(bot=False, namespace=0), "user_slice", lambda w, ns, bot: ns == 0 and not bot),
        (Filters(wiki="enwiki"), "user_wiki", lambda w, ns, bot: w == "enwiki"),
    ]
    gap_only = 0
    with query.connect(settings, schema=minutes.schema) as reader:
        for lookback, end_after in (("1h", 1), ("1h", 6), ("3h", 1), ("3h", 9)):
            end = newest + end_after * MINUTE
            start = end - parse_duration(lookback)
            (from_minute,) = minutes.fetch(
                "SELECT from_minute FROM {s}.running_marks WHERE family = 'user_slice' "
                f"AND lookback = '{lookback}'"
            )[0]
            for filters, family, kept in cases:
                label = (lookback, end_after, family)
                inside = [e for e in events.values() if kept(e[1], e[3], e[6])]
                active = {e[5] for e in inside if start <= e[0] < end}
                stored = {e[5] for e in inside if from_minute <= e[0] < end}
                gap_only += len(stored - active)
                frame = query.kpis(reader, lookback, end=end, filters=filters)
                assert f"{family}_running" in frame.attrs["sources"], label
                assert frame["active_users"][0] == len(active), label
                edits: dict[str, int] = defaultdict(int)
                for e in inside:
                    if start <= e[0] < end and e[2] in ("edit", "new"):
                        edits[e[5]] += 1
                hist = query.edits_per_user(reader, lookback, end=end, filters=filters)
                assert f"{family}_running" in hist.attrs["sources"], label
                want = [
                    (lo, 2 * lo - 1, len(b), sum(b))
                    for lo in (2**i for i in range(max(edits.values()).bit_length()))
                    for b in [[v for v in edits.values() if lo <= v < 2 * lo]]
                ]
                assert [tuple(r) for r in hist.itertuples(index=False)] == want, label
    assert gap_only > 0  # the gap held the only events of some users


ACTIVITY_KEYS = ("window_start", "wiki", "namespace", "type", "is_bot", "is_minor")
ACTIVITY_COUNTERS = ("events", "bytes_added", "bytes_removed", "net_bytes")


def _upsert_activity(m: Minutes, rows: list[tuple[Any, ...]]) -> None:
    """Rows of activity_minute (keys, host, counters), adding to those that exist."""
    with db.transaction(m.s.postgres, "writer") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} AS t VALUES {} ON CONFLICT ON CONSTRAINT activity_minute_key "
                "DO UPDATE SET {}"
            ).format(
                m._table("activity_minute"),
                sql.SQL(", ").join(sql.Literal(r) for r in rows),
                sql.SQL(", ").join(
                    sql.SQL("{c} = t.{c} + EXCLUDED.{c}").format(c=sql.Identifier(c))
                    for c in ACTIVITY_COUNTERS
                ),
            )
        )


def test_live_filtered_aggregates_from_activity_totals_equal_plain_sums(
    minutes: Minutes, settings: Settings
) -> None:
    """Filtered KPIs, actions, namespaces and top wikis over 1 and 3 hours: the activity
    totals less the gap's minutes, keys with no wiki or no namespace included."""
    rng = random.Random(23)
    wikis = [("enwiki", "en.wikipedia.org", "wikipedia", "en"), (None, None, "unknown", None)]
    wikis += [("wikidatawiki", "www.wikidata.org", "wikidata", None)]
    rows: dict[tuple[Any, ...], list[Any]] = {}
    batches: list[list[tuple[Any, ...]]] = [[], []]
    batch_keys: list[set[tuple[Any, ...]]] = [set(), set()]
    for _ in range(3000):
        wiki, server, project, language = rng.choice(wikis)
        key = (
            T0 + rng.randrange(200) * MINUTE,
            wiki,
            rng.choice([0, 0, 14, None]),
            rng.choice(["edit", "edit", "new", "log"]),
            rng.random() < 0.3,
            rng.random() < 0.2,
        )
        events, added, removed = rng.randrange(1, 9), rng.randrange(500), rng.randrange(200)
        row = (*key, server, project, language, events, added, removed, added - removed)
        # a key at most once per statement (an upsert updates a row once): the second batch
        # adds to the first's rows
        free = [i for i in (0, 1) if key not in batch_keys[i]]
        if not free:
            continue
        batches[free[0]].append(row)
        batch_keys[free[0]].add(key)
        have = rows.setdefault(key, [server, project, language, 0, 0, 0, 0])
        for i, v in enumerate(row[9:]):
            have[3 + i] += v
    for batch in batches:
        _upsert_activity(minutes, batch)
    newest = max(k[0] for k in rows)

    def summed(f: Filters, start: datetime, end: datetime) -> list[tuple[Any, ...]]:
        return [
            (*k, *v)
            for k, v in rows.items()
            if start <= k[0] < end
            and (f.bot is None or k[4] == f.bot)
            and (not f.namespace or k[2] in f.namespace)
            and (not f.wiki or k[1] in f.wiki)
            and (not f.type or k[3] in f.type)
        ]

    filters = [
        Filters(bot=False, namespace=0),
        Filters(bot=True, namespace=[0, 14]),
        Filters(type="edit"),
        Filters(wiki="enwiki", bot=False),
        Filters(project="unknown"),
    ]
    served = 0
    with query.connect(settings, schema=minutes.schema) as reader:
        for lookback, end_after in (("1h", 1), ("1h", 8), ("3h", 1), ("3h", 4), ("24h", 1)):
            end = newest + end_after * MINUTE
            start = end - parse_duration(lookback)
            for f in filters:
                label = (lookback, end_after, f.describe())
                got = summed(f, start, end)
                if f.project:
                    got = [r for r in got if r[7] in f.project]
                kpis = query.kpis(reader, lookback, end=end, filters=f)
                served += "activity_running" in kpis.attrs["sources"]
                want = {
                    "events": sum(r[9] for r in got),
                    "edits": sum(r[9] for r in got if r[3] == "edit"),
                    "new_pages": sum(r[9] for r in got if r[3] == "new"),
                    "bot_events": sum(r[9] for r in got if r[4]),
                    "bytes_added": sum(r[10] for r in got),
                    "bytes_removed": sum(r[11] for r in got),
                    "net_bytes": sum(r[12] for r in got),
                    "active_wikis": len({r[1] for r in got if r[1] is not None}),
                }
                assert {c: int(kpis[c][0]) for c in want} == want, label
                actions = query.actions(reader, lookback, end=end, filters=f)
                by_type = {t: sum(r[9] for r in got if r[3] == t) for t in ("edit", "new", "log")}
                assert {t: by_type.get(t, 0) for t in actions["type"]} == dict(
                    zip(actions["type"], actions["events"], strict=True)
                ), label
                spaces: dict[int, int] = defaultdict(int)
                for r in got:
                    if r[2] is not None:
                        spaces[r[2]] += r[9]
                ns = query.namespaces(reader, lookback, end=end, filters=f)
                want_ns = sorted(spaces.items(), key=lambda kv: (-kv[1], kv[0]))
                assert list(zip(ns["namespace"], ns["events"], strict=True)) == want_ns, label
                per_wiki: dict[str, int] = defaultdict(int)
                for r in got:
                    if r[1] is not None:
                        per_wiki[r[1]] += r[9]
                top = query.top_wikis(reader, lookback, end=end, filters=f)
                want_top = sorted(per_wiki.items(), key=lambda kv: (-kv[1], kv[0]))
                assert list(zip(top["wiki"], top["events"], strict=True)) == want_top, label
    assert served == 5 * len(filters)  # every window reaches the newest minute

    def dims_equal_sums() -> None:
        """activity_dims_minute (V016) is activity_minute without its wiki, summed."""
        want: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for (ws, _, ns, kind, bot, minor), v in rows.items():
            want[(ws, ns, kind, bot, minor)] = [
                a + b for a, b in zip(want[(ws, ns, kind, bot, minor)], v[3:], strict=True)
            ]
        got = minutes.fetch("SELECT * FROM {s}.activity_dims_minute")
        assert {tuple(r[:5]): list(r[5:]) for r in got} == dict(want)
        assert len(got) == len(want)

    dims_equal_sums()
    cut = T0 + 100 * MINUTE  # retention: the rows before go, and with them whole dims rows
    with db.transaction(minutes.s.postgres, "writer") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE window_start < %s").format(
                minutes._table("activity_minute")
            ),
            (cut,),
        )
    rows = {k: v for k, v in rows.items() if k[0] >= cut}
    dims_equal_sums()
