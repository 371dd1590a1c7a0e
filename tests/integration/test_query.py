"""The query API against the plain-Python reference on the real corpus, as the read-only role.

One schema is filled the way production fills it: the real stream job replays the corpus
from Kafka, the batch layer recomputes each day from the lake (which also fills the activity
table the filtered queries read), and the roll-up turns closed hours into hourly rows. Every
query function is then compared with ``query_reference`` over windows that are served from
minutes, from hours and minutes, and from hours, with and without filters.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import pytest
import query_reference as ref
from psycopg2 import sql
from streamtools import CorpusTopic, job_settings, run_to_end

from wiki_lib import db, query
from wiki_lib.batch import recompute_day
from wiki_lib.config import Settings
from wiki_lib.maintenance import rollup
from wiki_lib.query import Filters, QueryError
from wiki_lib.query.tables import ACTIVITY, PAGE, USER
from wiki_lib.query.window import bucket_starts, make_window
from wiki_lib.testing.oracle import deduplicated_events, load_events

pytestmark = pytest.mark.integration

WINDOWS = [
    ("5m", "2024-08-22T04:05:00+00:00"),  # one whole capture, from minutes
    ("2m", "2024-08-22T04:03:30+00:00"),  # part of it, ending inside a minute
    ("7d", "2024-08-23T00:00:00+00:00"),  # rolled-up hours plus minutes after them
    ("1200d", "2024-08-23T00:00:00+00:00"),  # the whole corpus, nearly all from hours
]
FILTERS = [
    Filters(),
    Filters(wiki="commonswiki"),
    Filters(bot=False, namespace=0),
    Filters(project="wikipedia", type="edit"),
    Filters(language=["en", "de"]),
    Filters(type=["edit", "new"], bot=True),
]
CASES = [(lb, end, f) for lb, end in WINDOWS for f in FILTERS]
WIKI_COUNTERS = ("events", "edits", "new_pages", "bot_events", "bytes_added", "bytes_removed")


@dataclass(frozen=True)
class Served:
    settings: Settings
    schema: str
    reader: query.Reader
    events: list[dict[str, Any]]

    def select(self, lookback: str, end: str, filters: Filters) -> list[dict[str, Any]]:
        window = make_window(lookback, datetime.fromisoformat(end))
        return ref.select(self.events, window.start, window.end, filters)


@pytest.fixture(scope="module")
def served(
    corpus: CorpusTopic, spark: object, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[Served]:
    schema = f"query_{uuid.uuid4().hex[:8]}"
    db.migrate(corpus.settings.postgres, schema)
    settings = job_settings(
        corpus, schema, tmp_path_factory.mktemp("query"), max_offsets_per_trigger=2000
    ).with_overrides(retention={"top_k_per_hour": 100_000})  # exact hours (see test_maintenance)
    run_to_end(settings, spark, schema)
    events = deduplicated_events(load_events(sorted((data_dir / "recentchange").glob("*.jsonl"))))
    days = sorted({e["event_time"].date() for e in events})
    for day in days:
        recompute_day(settings, spark, day)  # type: ignore[arg-type]
    assert rollup(settings) is not None
    reader = query.connect(settings)
    try:
        yield Served(settings, schema, reader, events)
    finally:
        reader.close()
        conn = db.connect(settings.postgres, "admin")
        conn.autocommit = True
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def plain(value: Any) -> Any:
    """One comparable Python value for a DataFrame cell or a reference value."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else round(float(value), 9)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    return value


def records(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    cols = columns or list(frame.columns)
    return [{c: plain(row[c]) for c in cols} for row in frame.to_dict("records")]


def expect(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[dict[str, Any]]:
    return [
        {c: plain(v) for c, v in row.items() if columns is None or c in columns} for row in rows
    ]


def check(problems: list[str], label: str, got: Any, want: Any) -> None:
    if got == want:
        return
    if isinstance(got, list) and isinstance(want, list):
        first = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), None)
        where = min(len(got), len(want)) if first is None else first
        detail = (
            f"{len(got)} rows, want {len(want)}; first difference at row {where}: "
            f"got {got[where] if where < len(got) else None}, "
            f"want {want[where] if where < len(want) else None}"
        )
    else:
        detail = f"got {got}, want {want}"
    problems.append(f"{label}: {detail}")


# --- aggregates --------------------------------------------------------------------------------


def test_kpis_equal_reference(served: Served) -> None:
    problems: list[str] = []
    for lookback, end, f in CASES:
        frame = query.kpis(served.reader, lookback, end=end, filters=f)
        window = make_window(lookback, datetime.fromisoformat(end))
        want = ref.kpis(served.select(lookback, end, f), window.seconds)
        got = records(frame, list(want))[0]
        check(problems, f"kpis {lookback} {end} {f.describe()}", got, expect([want])[0])
        assert frame["window_start"].iloc[0] == pd.Timestamp(window.start)
    assert not problems, "\n".join(problems)


def test_active_users_by_bot_filter_equal_reference(served: Served) -> None:
    """Both ways of counting users: marks when the window reaches the newest minute, rows else."""
    problems: list[str] = []
    newest = ("7d", "2024-08-23T00:00:00+00:00")  # no user_minute row after it: the marks
    inside = ("2m", "2024-08-22T04:03:30+00:00")  # rows after it: the DISTINCT over rows
    for lookback, end in (newest, inside):
        for f in (Filters(), Filters(bot=True), Filters(bot=False)):
            frame = query.kpis(served.reader, lookback, end=end, filters=f)
            window = make_window(lookback, datetime.fromisoformat(end))
            want = ref.kpis(served.select(lookback, end, f), window.seconds)["active_users"]
            got = plain(frame["active_users"][0])
            check(problems, f"{lookback} {end} {f.describe()}", got, want)
    assert not problems, "\n".join(problems)


def test_user_last_seen_marks_equal_reference(served: Served) -> None:
    """The triggers on user_minute keep each user's last minute, as any, bot and human."""
    want: dict[str, dict[str, datetime]] = {}
    for e in served.events:
        if e["user"] is None:
            continue
        minute = e["event_time"].replace(second=0, microsecond=0)
        marks = want.setdefault(e["user"], {})
        for key in ("last_any", "last_bot" if e["is_bot"] else "last_human"):
            marks[key] = max(marks.get(key, minute), minute)
    _, rows = served.reader.fetch(
        sql.SQL('SELECT "user", last_any, last_bot, last_human FROM {}').format(
            served.reader.table("user_last_seen")
        )
    )
    got = {
        user: {k: v for k, v in zip(("last_any", "last_bot", "last_human"), r, strict=True) if v}
        for user, *r in rows
    }
    assert got == want


SERIES = {
    "traffic": ["events", "edits", "new_pages", "log_events", "categorize_events",
                "other_events", "bytes_added", "bytes_removed", "net_bytes"],
    "bot_human": ["bot_events", "human_events"],
    "minor_major": ["minor_edits", "major_edits"],
    "additions_deletions": ["bytes_added", "bytes_removed", "net_bytes"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SERIES))
def test_series_equal_reference(served: Served, name: str) -> None:
    problems: list[str] = []
    columns = SERIES[name]
    for lookback, end, f in CASES:
        frame = query.QUERIES[name](served.reader, lookback, end=end, filters=f)
        step = frame.attrs["bucket"]
        window = make_window(lookback, datetime.fromisoformat(end))
        assert list(frame["bucket_start"]) == [pd.Timestamp(b) for b in bucket_starts(window, step)]
        want = ref.series(served.select(lookback, end, f), step)
        got = {
            row["bucket_start"]: {c: row[c] for c in columns}
            for row in records(frame)
            if any(row[c] for c in columns)
        }
        expected = {
            b: {c: counts[c] for c in columns}
            for b, counts in want.items()
            if any(counts[c] for c in columns)
        }
        check(problems, f"{name} {lookback} {end} {f.describe()}", got, expected)
    assert not problems, "\n".join(problems)


def test_series_bucket_and_hour_tier(served: Served) -> None:
    end = "2024-08-23T00:00:00+00:00"
    hourly = query.traffic(served.reader, "7d", end=end)
    assert {"traffic_hour", "traffic_minute"} <= set(hourly.attrs["sources"])
    assert hourly.attrs["bucket"] == timedelta(hours=1)
    by_minute = query.traffic(served.reader, "1d", end=end, bucket="1m")
    assert by_minute.attrs["sources"] == ["traffic_minute"]
    assert by_minute["events"].sum() == hourly["events"].sum() - _events_before(hourly, end)
    with pytest.raises(QueryError):
        query.traffic(served.reader, "1d", end=end, bucket="30s")


def _events_before(frame: pd.DataFrame, end: str) -> int:
    """Events in ``frame`` more than a day before ``end``."""
    cut = pd.Timestamp(end) - pd.Timedelta(days=1)
    return int(frame.loc[frame["bucket_start"] < cut, "events"].sum())


def test_actions_equal_reference(served: Served) -> None:
    problems: list[str] = []
    for lookback, end, f in CASES:
        frame = query.actions(served.reader, lookback, end=end, filters=f)
        want = ref.actions(served.select(lookback, end, f))
        got = dict(zip(frame["type"], frame["events"].astype(int), strict=True))
        check(problems, f"actions {lookback} {end} {f.describe()}", got, want)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("n", [3, 500])
def test_top_wikis_equal_reference(served: Served, n: int) -> None:
    problems: list[str] = []
    for lookback, end, f in CASES:
        frame = query.top_wikis(served.reader, lookback, end=end, filters=f, n=n)
        want = expect(ref.top_wikis(served.select(lookback, end, f), n))
        got = records(frame, list(want[0]) if want else None)
        check(problems, f"top_wikis {lookback} {end} {f.describe()}", got, want)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("column", ["language", "project"])
def test_top_languages_and_projects_equal_reference(served: Served, column: str) -> None:
    fn = query.top_languages if column == "language" else query.top_projects
    problems: list[str] = []
    for lookback, end, f in CASES:
        for n in (4, 500):
            frame = fn(served.reader, lookback, end=end, filters=f, n=n)
            want = expect(ref.top_groups(served.select(lookback, end, f), column, n))
            check(
                problems, f"top {column} {n} {lookback} {end} {f.describe()}", records(frame), want
            )
    assert not problems, "\n".join(problems)


def test_namespaces_equal_reference(served: Served) -> None:
    problems: list[str] = []
    for lookback, end, f in CASES:
        frame = query.namespaces(served.reader, lookback, end=end, filters=f, n=1000)
        want = expect(ref.namespaces(served.select(lookback, end, f)))
        check(problems, f"namespaces {lookback} {end} {f.describe()}", records(frame), want)
    assert not problems, "\n".join(problems)


# --- pages and users --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["top_pages", "top_users"])
def test_top_pages_and_users_equal_reference(served: Served, name: str) -> None:
    compute = ref.top_pages if name == "top_pages" else ref.top_users
    problems: list[str] = []
    for lookback, end, f in CASES:
        for n in (10, 300):
            frame = query.QUERIES[name](served.reader, lookback, end=end, filters=f, n=n)
            want = expect(compute(served.select(lookback, end, f), n))
            check(problems, f"{name} {n} {lookback} {end} {f.describe()}", records(frame), want)
    assert not problems, "\n".join(problems)


def test_edits_per_user_equals_reference(served: Served) -> None:
    problems: list[str] = []
    for lookback, end, f in CASES:
        frame = query.edits_per_user(served.reader, lookback, end=end, filters=f)
        want = expect(ref.edits_per_user(served.select(lookback, end, f)))
        check(problems, f"edits_per_user {lookback} {end} {f.describe()}", records(frame), want)
    assert not problems, "\n".join(problems)


def _near_newest(served: Served) -> tuple[str, str]:
    """Two window ends: just after the newest minute, and seven minutes later."""
    newest = max(e["event_time"] for e in served.events).replace(second=0, microsecond=0)
    first = newest + timedelta(minutes=1)
    return first.isoformat(), (first + timedelta(minutes=7)).isoformat()


def test_live_windows_from_running_totals_equal_reference(served: Served) -> None:
    """Windows that reach the newest minute: the running totals (or, 2h, minutes) serve them."""
    just_after, later = _near_newest(served)
    cases = [  # lookback, end, whether the running totals serve it
        ("15m", just_after, True),
        ("1h", just_after, True),
        ("3h", just_after, True),
        ("24h", just_after, True),
        ("20m", just_after, True),  # the 30 min totals minus a 10 min gap
        ("1h", later, True),  # the 1 h totals minus a 7 min gap
        ("2h", just_after, False),  # a 60 min gap: aggregated from the minutes
    ]
    problems: list[str] = []

    def check_wikis(lookback: str, end: str, rows: list[dict[str, Any]], kept: bool) -> None:
        """Top wikis, languages, projects and the KPIs' active wikis (wiki_running)."""
        label = f"{lookback} {end}"
        frame = query.top_wikis(served.reader, lookback, end=end, n=300)
        check(problems, f"top_wikis {label}", records(frame), expect(ref.top_wikis(rows, 300)))
        check(
            problems, f"top_wikis {label} sources", "wiki_running" in frame.attrs["sources"], kept
        )
        for column in ("language", "project"):
            frame = query.QUERIES[f"top_{column}s"](served.reader, lookback, end=end, n=300)
            want = expect(ref.top_groups(rows, column, 300))
            check(problems, f"top {column}s {label}", records(frame), want)
        frame = query.kpis(served.reader, lookback, end=end)
        window = make_window(lookback, datetime.fromisoformat(end))
        want = ref.kpis(rows, window.seconds)
        check(problems, f"kpis {label}", records(frame, list(want))[0], expect([want])[0])

    for lookback, end, kept in cases:
        rows = served.select(lookback, end, Filters())
        check_wikis(lookback, end, rows, lookback in ("1h", "3h", "24h"))  # wiki totals kept
        for name, compute in (("top_pages", ref.top_pages), ("top_users", ref.top_users)):
            for n in (3, 10, 300):
                frame = query.QUERIES[name](served.reader, lookback, end=end, n=n)
                label = f"{name} {n} {lookback} {end}"
                check(problems, label, records(frame), expect(compute(rows, n)))
                table = "page_running" if name == "top_pages" else "user_running"
                check(problems, f"{label} sources", table in frame.attrs["sources"], kept)
        frame = query.edits_per_user(served.reader, lookback, end=end)
        want = expect(ref.edits_per_user(rows))
        check(problems, f"edits_per_user {lookback} {end}", records(frame), want)
    for lookback, end, kept in (
        ("7d", just_after, True),
        ("7d", later, True),
        ("6d", later, False),
    ):
        rows = served.select(lookback, end, Filters())
        label = f"{lookback} {end}"
        check_wikis(lookback, end, rows, kept)
        for name, compute in (("top_pages", ref.top_pages), ("top_users", ref.top_users)):
            for n in (3, 10):
                frame = query.QUERIES[name](served.reader, lookback, end=end, n=n)
                check(problems, f"{name} {n} {label}", records(frame), expect(compute(rows, n)))
                table = f"{name[4:-1]}_hour_running"
                check(problems, f"{name} {label} sources", table in frame.attrs["sources"], kept)
    assert not problems, "\n".join(problems)


def test_live_windows_from_slices_equal_reference(served: Served) -> None:
    """Filters that fix one namespace and bot or human, or one wiki: the slices' running
    totals (streaming/sql/V013) serve live windows, their minute rows other windows; any
    other filter reads recent_changes.
    The filtered aggregates of the kept lookbacks come from the activity totals (V015)."""
    just_after, later = _near_newest(served)
    busiest = max(
        {e["wiki"] for e in served.events},
        key=lambda w: sum(e["wiki"] == w for e in served.events),
    )
    filters = [  # filter, the slice that serves pages, the one that serves users
        (Filters(bot=False, namespace=0), "page_slice_running", "user_slice_running"),
        (Filters(bot=True, namespace=0), "page_slice_running", "user_slice_running"),
        (Filters(bot=False, namespace=14), "page_slice_running", "user_slice_running"),
        (Filters(wiki=busiest), None, "user_wiki_running"),
        (Filters(bot=False, namespace=[0, 14]), None, None),
        (Filters(wiki=busiest, bot=False), None, None),
    ]

    def sliced(frame: pd.DataFrame) -> set[str]:
        slices = ("page_slice", "user_slice", "user_wiki")
        return {
            t
            for t in frame.attrs["sources"]
            if t.rsplit("_", 1)[0] in slices and not t.endswith("_bins")
        }

    def expected(table: str | None, live: bool) -> set[str]:
        """The slice's running totals and the gap's minute rows for live windows, else its
        minute rows."""
        if table is None:
            return set()
        return {table.replace("_running", "_minute")} | ({table} if live else set())

    cases = [("3h", just_after, True), ("24h", just_after, True), ("1h", later, True)]
    cases += [("15m", just_after, False), ("2h", just_after, False)]  # not kept; a 60 min gap
    problems: list[str] = []

    def check_activity(lookback: str, end: str, f: Filters, rows: list[Any], live: bool) -> None:
        """The KPIs (active users from the slices), actions, namespaces and top wikis: from
        the activity totals (streaming/sql/V015) for the kept lookbacks."""
        label = f"{lookback} {end} {f.describe()}"
        frame = query.kpis(served.reader, lookback, end=end, filters=f)
        want = ref.kpis(rows, make_window(lookback, datetime.fromisoformat(end)).seconds)
        check(problems, f"kpis {label}", records(frame, list(want))[0], expect([want])[0])
        kept = "activity_running" in frame.attrs["sources"]
        check(problems, f"kpis {label} sources", kept, live)
        frame = query.actions(served.reader, lookback, end=end, filters=f)
        got = dict(zip(frame["type"], frame["events"].astype(int), strict=True))
        check(problems, f"actions {label}", got, ref.actions(rows))
        frame = query.namespaces(served.reader, lookback, end=end, filters=f, n=1000)
        check(problems, f"namespaces {label}", records(frame), expect(ref.namespaces(rows)))
        frame = query.top_wikis(served.reader, lookback, end=end, filters=f, n=300)
        check(problems, f"top_wikis {label}", records(frame), expect(ref.top_wikis(rows, 300)))
        kept = "activity_running" in frame.attrs["sources"]
        by_wiki = f.dimensions <= {"wiki", "project", "language"}  # the wiki rows carry these
        check(problems, f"top_wikis {label} sources", kept, live and not by_wiki)

    for lookback, end, live in cases:
        for f, pages, users in filters:
            rows = served.select(lookback, end, f)
            label = f"{lookback} {end} {f.describe()}"
            for name, compute, table in (
                ("top_pages", ref.top_pages, pages),
                ("top_users", ref.top_users, users),
            ):
                for n in (3, 300):
                    frame = query.QUERIES[name](served.reader, lookback, end=end, n=n, filters=f)
                    check(problems, f"{name} {n} {label}", records(frame), expect(compute(rows, n)))
                    want_used = expected(table, live)
                    check(problems, f"{name} {label} sources", sliced(frame), want_used)
            frame = query.edits_per_user(served.reader, lookback, end=end, filters=f)
            want = expect(ref.edits_per_user(rows))
            check(problems, f"edits_per_user {label}", records(frame), want)
            want_used = expected(users, live)
            check(problems, f"edits_per_user {label} sources", sliced(frame), want_used)
            bins = {t for t in frame.attrs["sources"] if t.endswith("_slice_bins")}
            bins |= {t for t in frame.attrs["sources"] if t.endswith("_wiki_bins")}
            want_bins = {users.replace("_running", "_bins")} if users and live else set()
            check(problems, f"edits_per_user {label} bins", bins, want_bins)
            check_activity(lookback, end, f, rows, live)
    assert not problems, "\n".join(problems)


def test_activity_dims_are_activity_without_wiki(served: Served) -> None:
    """What the triggers of streaming/sql/V016 kept through the stream job, the batch layer's
    replace and the roll-up; and the filters they serve read them."""
    for unit in ("minute", "hour"):
        _, kept = served.reader.fetch(
            sql.SQL("SELECT * FROM {} ORDER BY 1, 2, 3, 4, 5").format(
                served.reader.table(f"activity_dims_{unit}")
            )
        )
        _, summed = served.reader.fetch(
            sql.SQL(
                "SELECT window_start, namespace, type, is_bot, is_minor, bigsum(events), "
                "bigsum(bytes_added), bigsum(bytes_removed), bigsum(net_bytes) FROM {} "
                "GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
            ).format(served.reader.table(f"activity_{unit}"))
        )
        assert kept == summed and kept, unit
    for lookback, end in WINDOWS:
        for f in FILTERS[1:]:
            frame = query.traffic(served.reader, lookback, end=end, filters=f)
            dims = {t for t in frame.attrs["sources"] if t.startswith("activity_dims_")}
            assert bool(dims) is (f.dimensions <= {"bot", "namespace", "type"}), f.describe()


def test_running_totals_equal_reference(served: Served) -> None:
    """What the triggers kept through the stream job and the batch layer's replace."""
    _, marks = served.reader.fetch(
        sql.SQL("SELECT family, lookback, from_minute FROM {} ORDER BY 1, 2").format(
            served.reader.table("running_marks")
        )
    )
    assert len(marks) == 28
    # family: running table, keys, counters; their source rows are checked elsewhere
    summed_families = {
        "wiki": ("wiki_running", "wiki, server_name, project, language", WIKI_COUNTERS),
        "activity": (
            "activity_running",
            "wiki, namespace, type, is_bot, is_minor, server_name, project, language",
            ACTIVITY.counters,
        ),
        "page_hour": ("page_hour_running", "wiki, title", PAGE.counters),
        "user_hour": ("user_hour_running", '"user"', USER.counters),
    }
    for family, lookback, from_minute in marks:
        if family not in summed_families:
            continue
        table, keys, names = summed_families[family]
        counters = sql.SQL(", ").join(sql.Identifier(c) for c in names)
        _, kept = served.reader.fetch(
            sql.SQL("SELECT {k}, {c} FROM {t} WHERE lookback = %(l)s ORDER BY {k}").format(
                c=counters, t=served.reader.table(table), k=sql.SQL(keys)
            ),
            {"l": lookback},
        )
        _, summed = served.reader.fetch(
            sql.SQL(
                "SELECT {k}, {s} FROM {t} WHERE window_start >= %(f)s GROUP BY {k} ORDER BY {k}"
            ).format(
                k=sql.SQL(keys),
                s=sql.SQL(", ").join(
                    sql.SQL("bigsum({c})").format(c=sql.Identifier(c)) for c in names
                ),
                t=served.reader.table(family if family.endswith("_hour") else f"{family}_minute"),
            ),
            {"f": from_minute},
        )
        assert kept == summed and kept, family
    far = datetime(9999, 1, 1, tzinfo=UTC)
    slices = {  # running table, entity keys, filter dimension by pinned column, reference
        "page_slice": (
            "page_slice_running",
            ("wiki", "title"),
            {"namespace": "namespace", "is_bot": "bot"},
            ref.top_pages,
        ),
        "user_slice": (
            "user_slice_running",
            ("user",),
            {"namespace": "namespace", "is_bot": "bot"},
            ref.top_users,
        ),
        "user_wiki": ("user_wiki_running", ("user",), {"wiki": "wiki"}, ref.top_users),
    }
    for family, lookback, from_minute in marks:
        if family not in slices:
            continue
        table, keys, pinned, compute = slices[family]
        rows = ref.select(served.events, from_minute, far, Filters())
        values = {tuple(e[c] for c in pinned) for e in rows if None not in (e[c] for c in pinned)}
        want_rows = set()
        for value in values:
            f = Filters(**{dim: v for dim, v in zip(pinned.values(), value, strict=True)})
            for w in compute(ref.select(rows, from_minute, far, f), 10**9):
                want_rows.add((*(w[k] for k in keys), *value, w["events"], w["bytes_added"]))
        _, got = served.reader.fetch(
            sql.SQL("SELECT {}, events, bytes_added FROM {} WHERE lookback = %s").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in (*keys, *pinned)),
                served.reader.table(table),
            ),
            (lookback,),
        )
        assert want_rows, (family, lookback)  # the corpus reaches into every kept lookback
        assert set(got) == want_rows, (family, lookback)
    marks = [m for m in marks if m[0] not in summed_families and m[0] not in slices]
    for family, lookback, from_minute in marks:
        rows = ref.select(served.events, from_minute, far, Filters())
        if family == "page":
            keys, table, want = ("wiki", "title"), "page_running", ref.top_pages(rows, 10**9)
        else:
            keys, table, want = ("user",), "user_running", ref.top_users(rows, 10**9)
        columns, got = served.reader.fetch(
            sql.SQL("SELECT * FROM {} WHERE lookback = %s").format(served.reader.table(table)),
            (lookback,),
        )
        got_rows = {tuple(r[columns.index(k)] for k in keys): r for r in got}
        assert want, (family, lookback)  # the corpus reaches into every kept lookback
        assert {tuple(w[k] for k in keys) for w in want} == set(got_rows), (family, lookback)
        for w in want:
            row = dict(zip(columns, got_rows[tuple(w[k] for k in keys)], strict=True))
            assert {c: row[c] for c in w if c in row} == {c: w[c] for c in w if c in row}


# --- feeds -------------------------------------------------------------------------------------


def test_recent_changes_equal_reference(served: Served) -> None:
    problems: list[str] = []
    for lookback, end, f in CASES:
        frame = query.recent_changes(served.reader, lookback, end=end, filters=f, limit=40)
        want = expect(ref.feed(served.select(lookback, end, f), 40))
        check(problems, f"recent_changes {lookback} {end} {f.describe()}", records(frame), want)
    assert not problems, "\n".join(problems)


WATCH_TERMS = ["Wikidata", "_", "100%", "КАТЕГОРИЯ", "ÜBER", " bot "]


def test_watchlist_equals_reference(served: Served) -> None:
    terms = ["Wikidata", "_", "100%", "КАТЕГОРИЯ", "ÜBER", "bot"]  # " bot " is stripped
    problems: list[str] = []
    for lookback, end, f in CASES:
        frame = query.watchlist(served.reader, WATCH_TERMS, lookback, end=end, filters=f, limit=300)
        want = expect(ref.watchlist(served.select(lookback, end, f), terms, 300))
        check(problems, f"watchlist {lookback} {end} {f.describe()}", records(frame), want)
    assert not problems, "\n".join(problems)
    one = query.watchlist(served.reader, "ÜBER", "1200d", end=WINDOWS[-1][1])
    assert len(one) == 2 and all(m == ["ÜBER"] for m in one["matched"])


def test_pipeline_health_reports_the_last_batch(served: Served) -> None:
    frame = query.pipeline_health(served.reader)
    assert len(frame) == 1
    row = frame.iloc[0]
    newest = max(e["event_time"] for e in served.events)
    assert row["query_name"] == served.settings.stream.query_name
    assert row["max_event_time"] == pd.Timestamp(newest)
    assert row["watermark"] <= pd.Timestamp(newest - timedelta(minutes=2))
    assert row["event_lag_seconds"] > 0 and row["seconds_since_commit"] >= 0
    assert row["last_batch_id"] >= 2
    empty = query.pipeline_health(served.reader, query_name="no such query")
    assert empty.empty and "last_batch_id" in empty.columns


# --- safety ------------------------------------------------------------------------------------

INJECTIONS = [
    "x'; DROP TABLE traffic_minute; --",
    "commonswiki' OR '1'='1",
    "'); DELETE FROM recent_changes; --",
    "%",
    "\\",
    "$$; TRUNCATE wiki_minute; $$",
]


def _fingerprint(served: Served) -> dict[str, int]:
    conn = db.connect(served.settings.postgres, "admin")
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (served.schema,),
            )
            tables = sorted(r[0] for r in cur.fetchall())
            counts = {}
            for table in tables:
                cur.execute(
                    sql.SQL("SELECT count(*) FROM {}.{}").format(
                        sql.Identifier(served.schema), sql.Identifier(table)
                    )
                )
                counts[table] = cur.fetchone()[0]
    finally:
        conn.close()
    return counts


def test_injection_attempts_return_ordinary_results_and_change_nothing(served: Served) -> None:
    before = _fingerprint(served)
    lookback, end = WINDOWS[-1]
    for text in INJECTIONS:
        for dim in ("wiki", "project", "language"):
            f = Filters(**{dim: text})
            for name, fn in query.QUERIES.items():
                if name == "pipeline_health":
                    continue
                args = ([text],) if name == "watchlist" else ()
                frame = fn(served.reader, *args, lookback, end=end, filters=f)
                if name == "edits_per_user" or name.startswith(("top_", "namespaces", "recent")):
                    assert frame.empty, (name, text)
        matched = query.watchlist(served.reader, [text], lookback, end=end, limit=5000)
        want = ref.watchlist(served.select(lookback, end, Filters()), [text.strip()], 5000)
        assert len(matched) == len(want), text
        assert query.pipeline_health(served.reader, query_name=text).empty
        with pytest.raises(QueryError):
            query.kpis(served.reader, lookback, end=end, filters=Filters(type=text))
    for bad in ("5m; DROP TABLE x", "1h' --"):
        with pytest.raises(QueryError):
            query.kpis(served.reader, bad)
    assert _fingerprint(served) == before


def test_query_api_reads_as_the_read_only_role(served: Served) -> None:
    conn = served.reader.connection
    with conn.cursor() as cur:
        cur.execute("SELECT current_user, current_setting('jit')")
        assert cur.fetchone() == (served.settings.postgres.reader_user, "off")
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute(
                sql.SQL("DELETE FROM {}.traffic_minute").format(sql.Identifier(served.schema))
            )
    # even outside the read-only session the role may not write
    raw = db.connect(served.settings.postgres, "reader")
    raw.autocommit = True
    try:
        with raw.cursor() as cur:
            cur.execute("SET default_transaction_read_only = off")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(
                    sql.SQL("INSERT INTO {}.serving_state VALUES ('x', now())").format(
                        sql.Identifier(served.schema)
                    )
                )
    finally:
        raw.close()
    assert query.kpis(served.reader, "5m", end=WINDOWS[0][1])["events"].iloc[0] > 0


@pytest.mark.parametrize(
    "call",
    [
        lambda r: query.kpis(r, "abc"),
        lambda r: query.top_pages(r, "5m", n=0),
        lambda r: query.top_wikis(r, "5m", n=True),
        lambda r: query.recent_changes(r, "5m", limit=10**9),
        lambda r: query.watchlist(r, [], "5m"),
        lambda r: query.watchlist(r, ["  "], "5m"),
        lambda r: query.watchlist(r, ["x" * 300], "5m"),
        lambda r: query.kpis(r, "5m", end="yesterday"),
        lambda r: query.traffic(r, "5m", bucket="0m"),
    ],
)
def test_bad_requests_are_query_errors(served: Served, call: Any) -> None:
    with pytest.raises(QueryError):
        call(served.reader)


def test_batch_days_cover_the_corpus(served: Served) -> None:
    """The fixture's batch runs found nothing the speed layer missed (no late events)."""
    conn = db.connect(served.settings.postgres, "reader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT event_date, late_events, report FROM {}.batch_runs").format(
                    sql.Identifier(served.schema)
                )
            )
            runs = {row[0]: row for row in cur.fetchall()}
    finally:
        conn.close()
    assert set(runs) == {e["event_time"].date() for e in served.events}
    assert all(isinstance(d, date) and late == 0 for d, late, _ in runs.values())
