"""A read-only session on the serving schema, kept open across query calls.

Opening a PostgreSQL connection (password check included) costs more than most dashboard
queries, so a :class:`Reader` holds one, as the read-only role, in a read-only session with a
statement timeout and no JIT compilation, and reconnects once when the server went away in
between.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg2
from psycopg2 import sql

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.query.errors import QueryError

__all__ = ["Reader", "connect"]

_LOST = (psycopg2.OperationalError, psycopg2.InterfaceError)


class Reader:
    """The query API's connection: role ``reader``, read-only, UTC, bounded statements."""

    def __init__(self, settings: Settings, *, schema: str | None = None) -> None:
        self.settings = settings
        self.schema = schema or settings.postgres.schema_name
        self._conn: Any = None
        self._snapshot = False

    def _connect(self) -> Any:
        conn = db.connect(self.settings.postgres, "reader")
        conn.set_session(readonly=True, autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            # JIT compilation of a large aggregate costs 30 to 60 ms up front, the whole budget
            # of a dashboard query; on the synthetic week it sped up none that fit the budget.
            cur.execute("SET jit = off")
            cur.execute(
                "SELECT set_config('statement_timeout', %s, false)",
                (str(self.settings.serving.statement_timeout_ms),),
            )
            # the schema's own functions (bigsum, streaming/sql/V007) resolve unqualified
            cur.execute("SELECT set_config('search_path', quote_ident(%s), false)", (self.schema,))
        return conn

    @property
    def connection(self) -> Any:
        """The open connection (opened on first use)."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def table(self, name: str) -> sql.Composed:
        """``schema.name``, quoted."""
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    def fetch(
        self, statement: sql.Composable, params: dict[str, Any] | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one SELECT; returns column names and rows. Reconnects once if the link broke."""
        for attempt in (1, 2):
            try:
                with self.connection.cursor() as cur:
                    cur.execute(statement, params or {})
                    return [d[0] for d in cur.description], cur.fetchall()
            except psycopg2.errors.QueryCanceled as exc:
                raise QueryError(
                    f"query on {self.schema} ran longer than serving.statement_timeout_ms "
                    f"({self.settings.serving.statement_timeout_ms} ms)"
                ) from exc
            except _LOST as exc:
                self.close()
                if attempt == 2 or self._snapshot:
                    raise db.DatabaseUnavailable(f"query on {self.schema}: {exc}".strip()) from exc
            except psycopg2.Error as exc:
                raise QueryError(f"query on {self.schema} failed: {exc}".strip()) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every statement inside sees the same committed state (one REPEATABLE READ transaction).

        For answers read in several statements that must agree with each other, such as the
        running totals and the marks that say what they cover, while the stream job commits.
        A lost connection inside is not retried: the retry would see another state.
        """
        if self._snapshot:
            yield
            return
        conn = self.connection
        with conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        self._snapshot = True
        try:
            yield
        finally:
            self._snapshot = False
            if not conn.closed:
                with conn.cursor() as cur:
                    cur.execute("ROLLBACK")

    def state(self) -> dict[str, datetime]:
        """The serving marks: ``hours_rolled_until`` and ``kept_from.<table>``."""
        _, rows = self.fetch(sql.SQL("SELECT key, at FROM {}").format(self.table("serving_state")))
        return dict(rows)

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(settings: Settings, *, schema: str | None = None) -> Reader:
    """A :class:`Reader` on ``schema`` (default: the configured serving schema)."""
    return Reader(settings, schema=schema)
