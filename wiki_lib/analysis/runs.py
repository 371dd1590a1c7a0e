"""Launch a pipeline run from a notebook or a script, watch it, stop it, and record it.

A run is one producer and one stream job working on their own topic, schema, checkpoint and
lake (all named after the run's ``prefix``), so runs never mix with each other or with the
always-on platform. The run's parameters, counts and timings go to the ``runs`` table of the
serving schema, and what the monitor saw every few seconds (Kafka end offsets against what
the job had processed) to ``run_samples``; ``evaluate_pipeline`` reads both later.

With a processing-time trigger the producer and the job run side by side and the run ends
when the source is exhausted (or ``duration_s`` passed) and the job has caught up. With
``availableNow`` the producer runs first and the job then drains the topic once.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg2 import sql

from wiki_lib import db
from wiki_lib.config import Settings
from wiki_lib.errors import ConfigError, TerminalError
from wiki_lib.kafka_admin import OffsetReader, ensure_ingest_topics
from wiki_lib.producer import IngestProducer, IngestStats, resume_state, source_from_spec
from wiki_lib.sources import DEFAULT_CORPUS
from wiki_lib.stream.job import StreamJob

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql.streaming import StreamingQuery

__all__ = [
    "RunFailed",
    "RunRecord",
    "RunSample",
    "RunSpec",
    "launch",
    "list_runs",
    "load_run",
    "notebook_progress",
    "platform_settings",
    "summary_frame",
]

log = logging.getLogger(__name__)


class RunFailed(TerminalError):
    """The run stopped on an error; it is recorded with status ``failed`` and the message."""


@dataclass(frozen=True)
class RunSpec:
    """What to run: the parameters of ``launch_pipeline``."""

    source: str
    """``live``, ``replay:GLOB[,GLOB...]`` (``replay``: the recorded corpus) or ``synth:N``."""
    prefix: str
    """Names the run's topics (``<prefix>.raw``, ``<prefix>.dlq``), schema, query and lake."""
    speed: float = 0.0
    """Replay/synthetic pacing: 1.0 is the recorded pace, 0 as fast as possible."""
    duration_s: float | None = None
    """Stop producing after this long (a live source never ends on its own)."""
    trigger: str = "2 seconds"
    """The stream job's processing-time trigger, or ``availableNow``."""
    spark_master: str | None = None
    """Spark master URL; the settings' one when None."""
    max_events: int | None = None
    """Stop producing after this many records."""
    drain_timeout_s: float = 300.0
    """How long the job may take to catch up after the producer stopped."""

    def __post_init__(self) -> None:
        if self.source == "replay":
            object.__setattr__(self, "source", f"replay:{DEFAULT_CORPUS}")
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", self.prefix):
            raise ConfigError(
                f"prefix {self.prefix!r} must be lower-case letters, digits and _ "
                "(a PostgreSQL schema and Kafka topic name), not starting with a digit"
            )

    @classmethod
    def from_parameters(
        cls,
        *,
        source: str,
        prefix: str = "",
        speed: float = 0.0,
        duration_s: float = 0.0,
        max_events: int = 0,
        trigger: str = "2 seconds",
        spark_master: str = "",
    ) -> RunSpec:
        """A spec from notebook parameters, where 0 and "" mean "not set"."""
        return cls(
            source=source,
            prefix=prefix or f"run_{datetime.now(UTC):%Y%m%d_%H%M%S}",
            speed=speed,
            duration_s=duration_s or None,
            max_events=max_events or None,
            trigger=trigger,
            spark_master=spark_master or None,
        )


@dataclass(frozen=True)
class RunSample:
    """One look at a running pipeline."""

    sampled_at: datetime
    produced: int
    end_offsets: int
    processed: int
    batches: int

    @property
    def lag(self) -> int:
        """Records in Kafka the job has not processed yet."""
        return max(self.end_offsets - self.processed, 0)


@dataclass(frozen=True)
class RunRecord:
    """A row of the ``runs`` table: where a run's data is and what it produced."""

    run_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    parameters: dict[str, Any]
    source: str
    topic: str
    topic_dlq: str
    schema_name: str
    query_name: str
    lake_path: str
    events_produced: int | None = None
    dead_letters: int | None = None
    canaries: int | None = None
    rows_read: int | None = None
    rows_written: int | None = None
    rows_late: int | None = None
    duplicates: int | None = None
    batches: int | None = None
    produce_seconds: float | None = None
    total_seconds: float | None = None
    error: str | None = None
    samples: list[RunSample] = field(default_factory=list)

    def settings(self, base: Settings) -> Settings:
        """``base`` pointed at this run's topics, schema, query, checkpoint and lake."""
        return base.with_overrides(
            kafka={"topic_raw": self.topic, "topic_dlq": self.topic_dlq},
            postgres={"schema_name": self.schema_name},
            stream={
                "query_name": self.query_name,
                "checkpoint_dir": str(Path(self.lake_path).parent / "checkpoints"),
            },
            lake={"path": self.lake_path},
        )

    def summary(self) -> dict[str, Any]:
        """The figures worth printing, as plain data."""
        data = asdict(self)
        data.pop("samples")
        for key in ("started_at", "finished_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


_RUN_COLUMNS = [f for f in RunRecord.__dataclass_fields__ if f != "samples"]


def _run_settings(base: Settings, spec: RunSpec, run_id: str) -> tuple[Settings, RunRecord]:
    workdir = base.stack.state_dir / "runs" / spec.prefix
    params = {k: v for k, v in asdict(spec).items() if v is not None}
    record = RunRecord(
        run_id=run_id,
        started_at=datetime.now(UTC),
        finished_at=None,
        status="running",
        parameters=params,
        source=spec.source,
        topic=f"{spec.prefix}.raw",
        topic_dlq=f"{spec.prefix}.dlq",
        schema_name=spec.prefix,
        query_name=spec.prefix,
        lake_path=str(workdir / "lake"),
    )
    settings = record.settings(base).with_overrides(
        stream={"trigger": spec.trigger},
        producer={"state_file": str(workdir / "producer.position")},
        spark={"master": spec.spark_master or base.spark.master},
    )
    return settings, record


def _write_run(base: Settings, record: RunRecord) -> None:
    """Insert or update the run's row in the serving schema."""
    values = asdict(record)
    values.pop("samples")
    values["parameters"] = json.dumps(values["parameters"])
    table = sql.Identifier(base.postgres.schema_name, "runs")
    cols = sql.SQL(", ").join(map(sql.Identifier, _RUN_COLUMNS))
    marks = sql.SQL(", ").join(sql.Placeholder(c) for c in _RUN_COLUMNS)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in _RUN_COLUMNS[1:]
    )
    with db.transaction(base.postgres, "writer") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (run_id) DO UPDATE SET {}").format(
                table, cols, marks, updates
            ),
            values,
        )


def _write_sample(base: Settings, run_id: str, sample: RunSample) -> None:
    with db.transaction(base.postgres, "writer") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "INSERT INTO {} (run_id, sampled_at, produced, end_offsets, processed, lag, "
                "batches) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
            ).format(sql.Identifier(base.postgres.schema_name, "run_samples")),
            (
                run_id,
                sample.sampled_at,
                sample.produced,
                sample.end_offsets,
                sample.processed,
                sample.lag,
                sample.batches,
            ),
        )


def _processed(query: StreamingQuery | None) -> tuple[int, int]:
    """Offsets the job has processed (sum over partitions) and its batch count."""
    if query is None:
        return 0, 0
    last = query.lastProgress
    progress = json.loads(last.json) if last is not None else {}
    done = 0
    for source in progress.get("sources", []):
        end = source.get("endOffset")
        end = json.loads(end) if isinstance(end, str) else end
        for partitions in (end or {}).values():
            done += sum(int(v) for v in partitions.values())
    return done, int(progress.get("batchId", -1)) + 1


class _Monitor:
    """Samples the run every ``interval_s`` into ``run_samples`` and the caller's callback."""

    def __init__(
        self,
        base: Settings,
        settings: Settings,
        run_id: str,
        producer: IngestProducer,
        on_sample: Callable[[RunSample], None] | None,
    ) -> None:
        self.base, self.settings, self.run_id = base, settings, run_id
        self.producer = producer
        self.on_sample = on_sample
        self.query: StreamingQuery | None = None
        self.samples: list[RunSample] = []
        self._offsets: OffsetReader | None = None

    def sample(self) -> RunSample:
        if self._offsets is None:
            self._offsets = OffsetReader(self.settings.kafka.bootstrap)
        ends = self._offsets.ends(self.settings.kafka.topic_raw)
        done, batches = _processed(self.query)
        taken = RunSample(
            datetime.now(UTC),
            self.producer.stats().produced,
            sum(ends.values()),
            done,
            batches,
        )
        self.samples.append(taken)
        _write_sample(self.base, self.run_id, taken)
        if self.on_sample is not None:
            self.on_sample(taken)
        return taken

    def close(self) -> None:
        """Close the Kafka connection the samples read through."""
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None


def launch(
    settings: Settings,
    spec: RunSpec,
    *,
    spark: Any = None,
    on_sample: Callable[[RunSample], None] | None = None,
    sample_interval_s: float = 2.0,
) -> RunRecord:
    """Run ``spec`` to the end and return its record (also in the ``runs`` table).

    ``settings`` name the stack and the serving schema that keeps the ``runs`` table; the run
    itself gets its own names from ``spec.prefix``. ``spark`` reuses a session (a new one
    from the settings otherwise). A failure is recorded, then raised as :class:`RunFailed`.
    """
    from wiki_lib.spark import session

    run_id = f"{spec.prefix}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    run_settings, record = _run_settings(settings, spec, run_id)
    db.migrate(settings.postgres, settings.postgres.schema_name)
    db.migrate(run_settings.postgres, spec.prefix)
    ensure_ingest_topics(run_settings)
    _write_run(settings, record)
    started = time.monotonic()
    state = resume_state(spec.source, run_settings)
    source = source_from_spec(spec.source, run_settings, speed=spec.speed)
    producer = IngestProducer(run_settings, state=state, create_topics=False)
    monitor = _Monitor(settings, run_settings, run_id, producer, on_sample)
    job = StreamJob(run_settings, spark or session(run_settings, app_name=f"run-{spec.prefix}"))
    query: StreamingQuery | None = None
    produced: list[IngestStats] = []
    failure: list[BaseException] = []
    try:

        def produce() -> None:
            try:
                produced.append(producer.run(source, max_events=spec.max_events, progress=False))
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)

        thread = threading.Thread(target=produce, name=f"producer-{spec.prefix}", daemon=True)
        batch_mode = spec.trigger.replace(" ", "").lower() == "availablenow"
        if not batch_mode:
            query = monitor.query = job.start()
        thread.start()
        deadline = started + spec.duration_s if spec.duration_s else None
        while thread.is_alive():
            thread.join(sample_interval_s)
            if deadline is not None and time.monotonic() > deadline:
                producer.stop()
            if not thread.is_alive():
                break
            monitor.sample()
        if failure:
            raise failure[0]
        produce_s = time.monotonic() - started
        if batch_mode:
            query = monitor.query = job.start()
        _drain(query, monitor, spec.drain_timeout_s, sample_interval_s, batch_mode)
        monitor.sample()
        stats = produced[0]
        _await_listener(run_settings, spec.drain_timeout_s)
        totals = _progress_totals(run_settings)
        record = RunRecord(
            **{
                **{c: getattr(record, c) for c in _RUN_COLUMNS},
                "finished_at": datetime.now(UTC),
                "status": "succeeded",
                "events_produced": stats.produced,
                "dead_letters": stats.dead_lettered,
                "canaries": stats.canaries,
                **totals,
                "produce_seconds": round(produce_s, 3),
                "total_seconds": round(time.monotonic() - started, 3),
            },
            samples=monitor.samples,
        )
        _write_run(settings, record)
        return record
    except Exception as exc:
        failed = RunRecord(
            **{
                **{c: getattr(record, c) for c in _RUN_COLUMNS},
                "finished_at": datetime.now(UTC),
                "status": "failed",
                "total_seconds": round(time.monotonic() - started, 3),
                "error": f"{type(exc).__name__}: {exc}",
            },
            samples=monitor.samples,
        )
        _write_run(settings, failed)
        raise RunFailed(f"run {run_id} failed: {exc}") from exc
    finally:
        producer.stop()
        if query is not None:
            job.stop(query)
        producer.close()
        monitor.close()


def _drain(
    query: StreamingQuery | None,
    monitor: _Monitor,
    timeout_s: float,
    interval_s: float,
    batch_mode: bool,
) -> None:
    """Wait until the job has processed everything in the topic."""
    if query is None:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if batch_mode:
            if query.awaitTermination(interval_s):
                if query.exception() is not None:
                    raise RunFailed(f"stream job failed: {query.exception()}")
                return
        else:
            if query.exception() is not None:
                raise RunFailed(f"stream job failed: {query.exception()}")
            if monitor.sample().lag == 0 and not query.status["isDataAvailable"]:
                return
            time.sleep(interval_s)
    raise RunFailed(f"the stream job did not catch up within {timeout_s:.0f}s")


def _await_listener(settings: Settings, timeout_s: float) -> None:
    """Wait until Spark's progress listener has filled in every batch of the run.

    Input rows and dropped duplicates reach ``pipeline_progress`` from Spark's listener bus,
    after the batch itself committed; totals read before that would under-count them.
    """
    query = sql.SQL(
        "SELECT array_agg(batch_id ORDER BY batch_id) FROM {} "
        "WHERE query_name = %s AND rows_input IS NULL"
    ).format(sql.Identifier(settings.postgres.schema_name, "pipeline_progress"))
    deadline = time.monotonic() + timeout_s
    while True:
        with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
            cur.execute(query, (settings.stream.query_name,))
            (pending,) = cur.fetchone()
        if not pending:
            return
        if time.monotonic() > deadline:
            raise RunFailed(
                f"Spark reported no progress for batches {pending} of "
                f"{settings.stream.query_name} within {timeout_s:.0f}s"
            )
        time.sleep(0.2)


def _progress_totals(settings: Settings) -> dict[str, int]:
    """The run's totals from its ``pipeline_progress`` rows."""
    with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_written), 0), "
                "coalesce(sum(rows_late), 0), coalesce(sum(duplicates_dropped), 0), count(*) "
                "FROM {} WHERE query_name = %s"
            ).format(sql.Identifier(settings.postgres.schema_name, "pipeline_progress")),
            (settings.stream.query_name,),
        )
        read, written, late, dups, batches = cur.fetchone()
    return {
        "rows_read": int(read),
        "rows_written": int(written),
        "rows_late": int(late),
        "duplicates": int(dups),
        "batches": int(batches),
    }


def load_run(settings: Settings, run_id: str) -> RunRecord:
    """A recorded run with its samples; ``latest`` picks the newest run."""
    schema = settings.postgres.schema_name
    with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
        where = sql.SQL("ORDER BY started_at DESC LIMIT 1")
        args: tuple[Any, ...] = ()
        if run_id != "latest":
            where, args = sql.SQL("WHERE run_id = %s"), (run_id,)
        cur.execute(
            sql.SQL("SELECT {} FROM {} {}").format(
                sql.SQL(", ").join(map(sql.Identifier, _RUN_COLUMNS)),
                sql.Identifier(schema, "runs"),
                where,
            ),
            args,
        )
        row = cur.fetchone()
        if row is None:
            raise ConfigError(f"no run {run_id!r} in {schema}.runs")
        found = dict(zip(_RUN_COLUMNS, row, strict=True))
        cur.execute(
            sql.SQL(
                "SELECT sampled_at, produced, end_offsets, processed, batches FROM {} "
                "WHERE run_id = %s ORDER BY sampled_at"
            ).format(sql.Identifier(schema, "run_samples")),
            (found["run_id"],),
        )
        samples = [RunSample(*r) for r in cur.fetchall()]
    return RunRecord(**found, samples=samples)


def list_runs(settings: Settings) -> list[RunRecord]:
    """Every recorded run, newest first (without samples)."""
    with db.transaction(settings.postgres, "reader") as conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY started_at DESC").format(
                sql.SQL(", ").join(map(sql.Identifier, _RUN_COLUMNS)),
                sql.Identifier(settings.postgres.schema_name, "runs"),
            )
        )
        return [RunRecord(**dict(zip(_RUN_COLUMNS, r, strict=True))) for r in cur.fetchall()]


def platform_settings(*, stack_up: bool = False) -> Settings:
    """The settings of this environment (``WIKI__...``), after starting the local stack if asked.

    With ``stack_up`` the local Kafka and PostgreSQL of :class:`~wiki_lib.stack.LocalStack`
    are started (a no-op when they run) and the returned settings carry their real ports.
    """
    from wiki_lib.config import load_settings
    from wiki_lib.stack import LocalStack

    settings = load_settings()
    if not stack_up:
        return settings
    stack = LocalStack(settings)
    stack.up()
    return stack.settings


def notebook_progress() -> Callable[[RunSample], None]:
    """A sample callback that keeps one updating status line in a notebook's output."""
    from IPython.display import display

    handle = display("starting ...", display_id=True)

    def show(sample: RunSample) -> None:
        text = (
            f"{sample.sampled_at:%H:%M:%S}  produced {sample.produced:,}  "
            f"in Kafka {sample.end_offsets:,}  processed {sample.processed:,}  "
            f"lag {sample.lag:,}  batches {sample.batches}"
        )
        if handle is not None:
            handle.update(text)

    return show


def summary_frame(run: RunRecord) -> pd.DataFrame:
    """The run's figures as a two-column table (figure, value), for display."""
    import pandas as pd

    return pd.DataFrame(list(run.summary().items()), columns=["figure", "value"]).astype(
        {"value": str}
    )
