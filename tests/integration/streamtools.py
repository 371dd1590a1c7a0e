"""Helpers shared by the speed-layer integration tests: corpus topics, table reads, diffs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from psycopg2 import sql

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.stream.job import StreamJob
from wiki_lib.testing.oracle import TABLE_KEYS


@dataclass(frozen=True)
class CorpusTopic:
    """A topic holding a replayed corpus, and what the oracle says it must yield."""

    settings: Settings
    oracle: dict[str, dict[tuple[Any, ...], dict[str, Any]]]
    produced: int


def corpus_topic(settings: Settings, files: list[Path], partitions: int = 1) -> CorpusTopic:
    """Replay ``files`` (event-time order) through the real producer into a fresh topic."""
    from wiki_lib.producer import ingest
    from wiki_lib.sources.replay import ReplaySource
    from wiki_lib.testing.oracle import compute_tables, load_events

    topic = f"corpus_{uuid.uuid4().hex[:10]}"
    topic_settings = settings.with_overrides(
        kafka={"topic_raw": topic, "topic_dlq": f"{topic}_dlq", "partitions": partitions}
    )
    stats = ingest(topic_settings, ReplaySource([str(p) for p in files]), progress=False)
    return CorpusTopic(topic_settings, compute_tables(load_events(files)), stats.produced)


def run_to_end(settings: Settings, spark: Any, schema: str, timeout_s: float = 600) -> None:
    """Run the stream job until its ``availableNow`` trigger has read the topic, then stop it."""
    job = StreamJob(settings, spark, schema=schema)
    query = job.start()
    try:
        query.awaitTermination(timeout_s)
        assert query.exception() is None
    finally:
        job.stop(query)


def wait_while_running(
    query: Any, done: Callable[[], bool], timeout_s: float, poll_s: float = 0.2
) -> None:
    """Poll ``done`` until it holds; fail if the query died first or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert query.exception() is None, query.exception()
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s"
        time.sleep(poll_s)


def job_settings(corpus: CorpusTopic, schema: str, workdir: Path, **stream: Any) -> Settings:
    """Settings of one stream run: its own schema, checkpoint, lake and query name."""
    return corpus.settings.with_overrides(
        postgres={"schema_name": schema},
        stream={
            "query_name": f"q_{schema}",
            "checkpoint_dir": str(workdir / "checkpoints"),
            "trigger": "availableNow",
            **stream,
        },
        lake={"path": str(workdir / "lake")},
    )


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if hasattr(value, "as_integer_ratio") and not isinstance(value, (bool, float)):
        return int(value)
    return value


def read_table(
    settings: Settings, schema: str, table: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A contract table as {key tuple: row}, read through the read-only role."""
    keys = TABLE_KEYS[table]
    conn = db.connect(settings.postgres, "reader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
            )
            cols = [d[0] for d in cur.description]
            rows = [{c: _norm(v) for c, v in zip(cols, r, strict=True)} for r in cur.fetchall()]
    finally:
        conn.close()
    return {tuple(r[k] for k in keys): r for r in rows}


def table_differences(
    settings: Settings, schema: str, oracle: dict[str, dict[tuple[Any, ...], dict[str, Any]]]
) -> dict[str, list[str]]:
    """Every row or value on which PostgreSQL and the oracle disagree, per table."""
    diffs: dict[str, list[str]] = {}
    for table in TABLE_KEYS:
        got = read_table(settings, schema, table)
        want = {k: {c: _norm(v) for c, v in row.items()} for k, row in oracle[table].items()}
        problems = [f"missing {k}" for k in want.keys() - got.keys()]
        problems += [f"extra {k}" for k in got.keys() - want.keys()]
        for key in want.keys() & got.keys():
            for col, value in want[key].items():
                if got[key].get(col) != value:
                    problems.append(f"{key} {col}: got {got[key].get(col)!r}, want {value!r}")
        if problems:
            diffs[table] = problems[:20] + (
                [f"... {len(problems)} in all"] if len(problems) > 20 else []
            )
    return diffs


def progress_rows(settings: Settings, schema: str, query_name: str) -> list[dict[str, Any]]:
    """The job's pipeline_progress rows, in batch order."""
    conn = db.connect(settings.postgres, "reader")
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL(
                    "SELECT * FROM {}.pipeline_progress WHERE query_name = %s ORDER BY batch_id"
                ).format(sql.Identifier(schema)),
                (query_name,),
            )
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()
