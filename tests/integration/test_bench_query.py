"""The query benchmark lays its synthetic tables out as the stream would: in time order."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from psycopg2.extensions import cursor

from wiki_lib import db
from wiki_lib.bench.query import _in_time_order
from wiki_lib.config import Settings

T0 = datetime(2026, 11, 30, tzinfo=UTC)


def _times_in_heap_order(cur: cursor, table: str, column: str) -> list[datetime]:
    cur.execute(f"SELECT {column} FROM {table} ORDER BY ctid")
    return [row[0] for row in cur.fetchall()]


def test_tables_are_rewritten_in_the_order_of_their_time_index(
    settings: Settings, pg_schema: str
) -> None:
    conn = db.connect(settings.postgres, "admin")
    with contextlib.closing(conn), conn, conn.cursor() as cur:
        # written out of order, every seventh minute wrapping round, as a join might emit them
        order = "(i * 7) %% 300"
        cur.execute(
            f"INSERT INTO {pg_schema}.traffic_minute SELECT %(t0)s + {order} * interval "
            "'1 minute', i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM generate_series(0, 299) AS i",
            {"t0": T0},
        )
        cur.execute(
            f"INSERT INTO {pg_schema}.recent_changes SELECT 'e' || i, %(t0)s + {order} * "
            "interval '1 second', 'w', 'x.org', 'edit', 0, 't', 'u', false, false, 1, '' "
            "FROM generate_series(0, 299) AS i",
            {"t0": T0},
        )
        before = _times_in_heap_order(cur, f"{pg_schema}.traffic_minute", "window_start")
        assert before != sorted(before)
        _in_time_order(cur, pg_schema)
        traffic = _times_in_heap_order(cur, f"{pg_schema}.traffic_minute", "window_start")
        events = _times_in_heap_order(cur, f"{pg_schema}.recent_changes", "event_time")
    assert traffic == sorted(traffic) and len(traffic) == 300
    # recent_changes' time index is descending, so newest first
    assert events == sorted(events, reverse=True) and len(events) == 300
