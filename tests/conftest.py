"""Session-wide fixtures: one real local stack (Kafka + PostgreSQL) and one SparkSession.

Every integration test gets unique topic and schema names from ``unique`` so tests never
see each other's data, and the whole session shares the services it started.
"""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import DATA, stack_settings

from wiki_lib.config import Settings
from wiki_lib.stack import LocalStack, scratch_state_dir


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared corpus folder (recorded events, SSE transcripts, schemas)."""
    if not DATA.exists():
        pytest.fail(f"shared corpus not found at {DATA}")
    return DATA


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """A real single-broker Kafka and a PostgreSQL for the whole test session."""
    state_dir = scratch_state_dir("session")
    local = LocalStack(stack_settings(state_dir))
    local.up()
    try:
        yield local
    finally:
        local.down()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(stack: LocalStack) -> Settings:
    """Settings pointing at the session stack's real ports."""
    return stack.settings


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique names for topics, schemas and query names: ``unique("topic")``."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}_{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def pg_schema(settings: Settings, unique: Callable[[str], str]) -> Iterator[str]:
    """A fresh schema with every migration applied; dropped after the test."""
    from psycopg2 import sql

    from wiki_lib import db

    schema = unique("wiki_test")
    db.migrate(settings.postgres, schema)
    try:
        yield schema
    finally:
        conn = db.connect(settings.postgres, "admin")
        conn.autocommit = True
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def spark(settings: Settings) -> Iterator[object]:
    """One SparkSession (local[2], Kafka connector attached) for the session."""
    from wiki_lib.spark import session

    spark_session = session(settings, app_name="wikipulse-tests")
    try:
        yield spark_session
    finally:
        spark_session.stop()
