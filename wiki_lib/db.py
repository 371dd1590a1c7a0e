"""PostgreSQL plumbing: connections per role, versioned migrations, role grants.

Migrations are the SQL files ``streaming/sql/V###__name.sql``. They use unqualified table
names and run with ``search_path`` set to the target schema, so the same files build the
serving schema ``wiki`` and the throw-away schemas integration tests use. Each applied file
is recorded with its checksum; a changed file that was already applied is an error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection

from wiki_lib.config import STREAMING_DIR, PostgresSettings
from wiki_lib.errors import ConfigError, SinkError, TransientError

__all__ = [
    "MIGRATIONS_DIR",
    "DatabaseUnavailable",
    "Migration",
    "connect",
    "create_roles",
    "ensure_database",
    "grant_schema",
    "list_migrations",
    "migrate",
    "transaction",
]

MIGRATIONS_DIR = STREAMING_DIR / "sql"
_NAME = re.compile(r"^V(\d{3,})__([a-z0-9_]+)\.sql$")
Role = Literal["admin", "writer", "reader"]


class DatabaseUnavailable(SinkError, TransientError):
    """PostgreSQL could not be reached; it may come back."""


@dataclass(frozen=True)
class Migration:
    """One versioned SQL file."""

    version: int
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, recorded when applied."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def list_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``folder``, ordered by version; bad names are an error."""
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ConfigError(f"migration file {path.name} is not named V###__name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"duplicate migration versions in {folder}")
    return sorted(found, key=lambda m: m.version)


def connect(
    pg: PostgresSettings, role: Role = "reader", *, database: str | None = None
) -> PgConnection:
    """Open a connection as ``role``; an unreachable server is a transient error."""
    user = getattr(pg, f"{role}_user")
    password = getattr(pg, f"{role}_password").get_secret_value()
    try:
        conn = psycopg2.connect(
            host=pg.host,
            port=pg.port,
            dbname=database or pg.database,
            user=user,
            password=password,
            connect_timeout=5,
            application_name=f"wikipulse-{role}",
        )
    except psycopg2.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL {pg.host}:{pg.port}/{database or pg.database} "
            f"as {user}: {str(exc).strip()}"
        ) from exc
    return conn


@contextmanager
def transaction(pg: PostgresSettings, role: Role) -> Iterator[PgConnection]:
    """A connection whose work commits on success and rolls back on error, then closes."""
    conn = connect(pg, role)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def vacuum_analyze(conn: PgConnection, schema: str, tables: Iterable[str]) -> None:
    """``VACUUM ANALYZE`` each table after a bulk load, so the planner sees its real size.

    VACUUM cannot run in a transaction: the connection is switched to autocommit.
    """
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in tables:
            cur.execute(
                sql.SQL("VACUUM ANALYZE {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            )


def ensure_database(pg: PostgresSettings) -> None:
    """Create the database (owned by the admin role) if it is missing."""
    conn = connect(pg, "admin", database="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (pg.database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(pg.database)))
    finally:
        conn.close()


def create_roles(pg: PostgresSettings) -> None:
    """Create or update the writer and read-only login roles with their passwords."""
    conn = connect(pg, "admin", database="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for role in ("writer", "reader"):
                user = getattr(pg, f"{role}_user")
                password = getattr(pg, f"{role}_password").get_secret_value()
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(
                    sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                        sql.SQL(verb), sql.Identifier(user), sql.Literal(password)
                    )
                )
                cur.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(pg.database), sql.Identifier(user)
                    )
                )
            cur.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(pg.reader_user)
                )
            )
    finally:
        conn.close()


def grant_schema(pg: PostgresSettings, schema: str) -> None:
    """Writer: read/write on every table of ``schema``; reader: SELECT only, now and later."""
    ident = sql.Identifier(schema)
    writer, reader = sql.Identifier(pg.writer_user), sql.Identifier(pg.reader_user)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(ident, writer, reader),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
            ident, writer
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(ident, writer),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(ident, reader),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT, INSERT, UPDATE, DELETE "
            "ON TABLES TO {}"
        ).format(ident, writer),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT SELECT ON TABLES TO {}").format(
            ident, reader
        ),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(ident),
    ]
    with transaction(pg, "admin") as conn, conn.cursor() as cur:
        for stmt in statements:
            cur.execute(stmt)


def migrate(
    pg: PostgresSettings, schema: str | None = None, folder: Path = MIGRATIONS_DIR
) -> list[str]:
    """Apply pending migrations to ``schema`` in order, each in its own transaction.

    Returns the names applied now. Runs as the admin role, then refreshes grants.
    """
    schema = schema or pg.schema_name
    ident = sql.Identifier(schema)
    applied_now: list[str] = []
    with transaction(pg, "admin") as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('wikipulse-migrate'))")
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        cur.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, checksum text NOT NULL, "
                "applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
    for mig in list_migrations(folder):
        with transaction(pg, "admin") as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('wikipulse-migrate'))")
            cur.execute(
                sql.SQL("SELECT checksum FROM {}.schema_migrations WHERE version = %s").format(
                    ident
                ),
                (mig.version,),
            )
            row = cur.fetchone()
            if row is not None:
                if row[0] != mig.checksum:
                    raise ConfigError(
                        f"migration {mig.path.name} changed after it was applied to {schema}; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            cur.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
            try:
                cur.execute(mig.path.read_text())
            except psycopg2.Error as exc:
                raise SinkError(f"migration {mig.path.name} failed on {schema}: {exc}") from exc
            cur.execute(
                sql.SQL(
                    "INSERT INTO {}.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)"
                ).format(ident),
                (mig.version, mig.name, mig.checksum),
            )
            applied_now.append(mig.path.name)
    grant_schema(pg, schema)
    return applied_now
