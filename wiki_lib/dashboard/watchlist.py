"""Saved watchlist terms (table ``watchlist_terms``), so alerting rules can use them later.

The dashboard reads as the read-only role everywhere else; saving is the one write, done
here as the writer role in its own short transaction. The query API has no write path, which
is why this lives with the dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg2
from psycopg2 import sql

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.errors import SinkError
from wiki_lib.query import QueryError, Reader

__all__ = ["TABLE", "forget_terms", "save_terms", "saved_terms"]

TABLE = "watchlist_terms"
_MAX_TERM = 200


def _clean(terms: Sequence[str]) -> list[str]:
    cleaned = list(dict.fromkeys(t.strip() for t in terms if t.strip()))
    too_long = [t for t in cleaned if len(t) > _MAX_TERM]
    if too_long:
        raise QueryError(f"watch terms are at most {_MAX_TERM} characters: {too_long[0][:40]}…")
    return cleaned


def save_terms(
    settings: Settings, terms: Sequence[str], *, schema: str | None = None, by: str = "dashboard"
) -> int:
    """Store ``terms`` as active (case-insensitively unique); returns how many were new."""
    cleaned = _clean(terms)
    if not cleaned:
        return 0
    table = sql.Identifier(schema or settings.postgres.schema_name, TABLE)
    statement = sql.SQL(
        "INSERT INTO {} (term, created_by) SELECT t, %(by)s FROM unnest(%(terms)s::text[]) AS t "
        "ON CONFLICT ((lower(term))) DO UPDATE SET active = true "
        "RETURNING (xmax = 0) AS inserted"
    ).format(table)
    try:
        with db.transaction(settings.postgres, "writer") as conn, conn.cursor() as cur:
            cur.execute(statement, {"terms": cleaned, "by": by})
            return sum(1 for (inserted,) in cur.fetchall() if inserted)
    except psycopg2.Error as exc:
        raise SinkError(f"saving watch terms failed: {str(exc).strip()}") from exc


def forget_terms(settings: Settings, terms: Sequence[str], *, schema: str | None = None) -> int:
    """Deactivate ``terms`` (kept for the record); returns how many were active."""
    cleaned = [t.lower() for t in _clean(terms)]
    if not cleaned:
        return 0
    table = sql.Identifier(schema or settings.postgres.schema_name, TABLE)
    statement = sql.SQL(
        "UPDATE {} SET active = false WHERE lower(term) = ANY(%(terms)s) AND active"
    ).format(table)
    try:
        with db.transaction(settings.postgres, "writer") as conn, conn.cursor() as cur:
            cur.execute(statement, {"terms": cleaned})
            return int(cur.rowcount)
    except psycopg2.Error as exc:
        raise SinkError(f"forgetting watch terms failed: {str(exc).strip()}") from exc


def saved_terms(reader: Reader) -> tuple[str, ...]:
    """The active saved terms, oldest first, read through the query API's read-only session."""
    _, rows = reader.fetch(
        sql.SQL("SELECT term FROM {} WHERE active ORDER BY created_at, term").format(
            reader.table(TABLE)
        )
    )
    return tuple(str(term) for (term,) in rows)
