"""The one settings model of wikipulse.

Every knob lives here, nested by component, and is read from the environment with the
prefix ``WIKI__`` and ``__`` nesting (``WIKI__KAFKA__BOOTSTRAP``). The model is frozen:
entry points (CLI, notebooks, fixtures) build it once and pass it down; library code never
reads the environment itself. Passwords are :class:`SecretStr` so they never print.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "REPO_ROOT",
    "STREAMING_DIR",
    "AlertSettings",
    "DashboardSettings",
    "JvmSettings",
    "KafkaSettings",
    "LabSettings",
    "LakeSettings",
    "PostgresSettings",
    "ProducerSettings",
    "RetentionSettings",
    "ServingSettings",
    "Settings",
    "SparkSettings",
    "StackSettings",
    "StreamSettings",
    "load_settings",
    "settings_env",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
STREAMING_DIR = REPO_ROOT / "streaming"
# PostgreSQL runs as an unprivileged user when we are root, and it cannot enter /root.
DEFAULT_STATE_DIR = Path("/var/lib/wikipulse") if os.geteuid() == 0 else Path.home() / ".wikipulse"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the brokers are and how the platform's topics look."""

    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,...]")
    topic_raw: str = Field("wiki.recentchange.raw", description="topic of the raw events")
    topic_dlq: str = Field("wiki.recentchange.dlq", description="dead-letter topic")
    partitions: int = Field(3, ge=1, description="partitions of topics the tool creates")
    replication_factor: int = Field(1, ge=1, description="replication of topics the tool creates")
    min_insync_replicas: int = Field(1, ge=1, description="min.insync.replicas of created topics")


class PostgresSettings(_Section):
    """The serving database and its three roles (admin, pipeline writer, read-only)."""

    host: str = Field("127.0.0.1", description="PostgreSQL host")
    port: int = Field(55432, ge=0, le=65535, description="PostgreSQL port")
    database: str = Field("wikipulse", description="database name")
    schema_name: str = Field("wiki", description="schema of the serving tables")
    admin_user: str = Field("wikipulse_admin", description="owner of the database")
    admin_password: SecretStr = Field(SecretStr("admin-local-only"), description="admin password")
    writer_user: str = Field("wiki_writer", description="role the pipeline writes as")
    writer_password: SecretStr = Field(
        SecretStr("writer-local-only"), description="writer password"
    )
    reader_user: str = Field("wiki_reader", description="read-only role of dashboards/notebooks")
    reader_password: SecretStr = Field(
        SecretStr("reader-local-only"), description="reader password"
    )

    def dsn(self, role: Literal["admin", "writer", "reader"] = "reader") -> str:
        """A libpq connection string for ``role``; only call where a connection is opened."""
        user = getattr(self, f"{role}_user")
        password: SecretStr = getattr(self, f"{role}_password")
        return (
            f"host={self.host} port={self.port} dbname={self.database} "
            f"user={user} password={password.get_secret_value()} connect_timeout=5"
        )


class SparkSettings(_Section):
    """How SparkSessions are built."""

    master: str = Field("local[2]", description="Spark master URL (local[N], spark://host:port)")
    app_name: str = Field("wikipulse", description="Spark application name")
    shuffle_partitions: int = Field(
        2,
        ge=1,
        description="spark.sql.shuffle.partitions: one per core the job runs on (measured on "
        "local[2]: 2 gave the job 13 % more throughput than 4); a streaming query keeps the "
        "number its checkpoint began with",
    )
    driver_memory: str = Field("2g", description="spark.driver.memory")
    ui_port: int = Field(4040, ge=0, le=65535, description="Spark UI port (0 disables the UI)")
    local_dir: Path | None = Field(None, description="spark.local.dir (default: state dir)")
    log_level: str = Field("WARN", description="Spark log level")
    state_store: Literal["rocksdb", "hdfs"] = Field(
        "rocksdb",
        description="state store of the deduplication: rocksdb (large state, off-heap) or "
        "hdfs (in-memory map, cheaper per batch for small state)",
    )
    checkpoint_files: Literal["filesystem", "filecontext"] = Field(
        "filesystem",
        description="how checkpoints and state are written: filesystem (Hadoop's FileSystem "
        "API: a rename is one rename(2) on a mounted volume) or filecontext (Spark's default, "
        "atomic rename on HDFS; on a mounted volume without Hadoop's native library it starts "
        "a readlink process for every path it renames)",
    )


class JvmSettings(_Section):
    """Where Maven puts the jars the broker and the Kafka connector need."""

    maven: str = Field("mvn", description="Maven executable")
    pom: Path = Field(STREAMING_DIR / "jvm" / "pom.xml", description="the JVM dependency manifest")
    jars_dir: Path = Field(STREAMING_DIR / "jvm" / "lib", description="resolved jars (git-ignored)")
    java: str = Field("java", description="Java executable (17 or newer)")


class LakeSettings(_Section):
    """The Parquet lake of raw events and daily aggregates."""

    path: Path | None = Field(None, description="lake root (default: <state_dir>/lake)")


class StreamSettings(_Section):
    """The Structured Streaming job."""

    query_name: str = Field("wikipulse_speed", description="streaming query name")
    checkpoint_dir: Path | None = Field(None, description="checkpoints (default: <state_dir>/ckpt)")
    watermark: str = Field("2 minutes", description="event-time watermark delay")
    trigger: str = Field("1 second", description="processing-time trigger, or 'availableNow'")
    starting_offsets: str = Field("earliest", description="Kafka startingOffsets")
    max_offsets_per_trigger: int | None = Field(None, ge=1, description="maxOffsetsPerTrigger")
    recent_changes_hours: int = Field(24, ge=1, description="hours recent_changes keeps")
    driver_max_rows: int = Field(
        20_000,
        ge=0,
        description="micro-batches of at most this many Kafka records are collected once, and "
        "their tables and lake files are computed on the driver by pyarrow (no Spark job per "
        "table); larger ones, and all when 0, by Spark on the executors",
    )


class ProducerSettings(_Section):
    """The EventStreams producer."""

    url: str = Field(
        "https://stream.wikimedia.org/v2/stream/recentchange", description="EventStreams SSE URL"
    )
    user_agent: str = Field(
        "wikipulse/0.1 (research platform; contact: wikipulse-operators@example.org)",
        description="User-Agent sent to Wikimedia (must name a contact)",
    )
    state_file: Path | None = Field(None, description="resume state (default: <state_dir>/...)")
    linger_ms: int = Field(
        50,
        ge=0,
        description="Kafka producer linger.ms (kafka-python's sender costs about 1 ms of GIL "
        "per round, so fewer, larger batches leave more of the core to producing)",
    )
    batch_size: int = Field(
        1_000_000,
        ge=1,
        description="Kafka producer batch.size (uncompressed bytes; capped by the topic's "
        "max.message.bytes)",
    )
    compression: str = Field("lz4", description="Kafka compression type")


class RetentionSettings(_Section):
    """How long serving rows are kept and when lake files are compacted (``wikipulse maintain``).

    ``recent_changes`` keeps ``stream.recent_changes_hours``. Minute rows are only ever deleted
    once their hour is rolled up into the hourly tables.
    """

    minute_days: int = Field(
        7, ge=1, description="days traffic/wiki/namespace/activity minute rows are kept"
    )
    entity_minute_days: int = Field(
        2, ge=1, description="days page_minute and user_minute rows are kept"
    )
    hour_days: int = Field(90, ge=1, description="days the hourly roll-up tables are kept")
    top_k_per_hour: int = Field(
        1000, ge=1, description="pages and users page_hour/user_hour keep per hour (the busiest)"
    )
    progress_days: int = Field(
        30, ge=1, description="days pipeline_progress rows are kept (the newest per query stays)"
    )
    compact_min_files: int = Field(
        2, ge=2, description="committed lake files an hour partition needs to be compacted"
    )
    compact_after_minutes: int = Field(
        60, ge=0, description="minutes after its end before an hour partition is compacted"
    )


class ServingSettings(_Section):
    """The read-only query API used by dashboards and notebooks."""

    statement_timeout_ms: int = Field(
        10_000, ge=0, description="statement_timeout of query sessions in ms (0: none)"
    )


class LabSettings(_Section):
    """JupyterLab as ``wikipulse up --lab`` starts it beside the dashboard."""

    host: str = Field("127.0.0.1", description="interface JupyterLab listens on")
    port: int = Field(8888, ge=1, le=65535, description="JupyterLab port")
    token: SecretStr | None = Field(
        None, description="JupyterLab login token (default: a random one, printed by `up`)"
    )


class DashboardSettings(_Section):
    """The live Voila dashboard (``wikipulse dashboard``) and its kernels."""

    host: str = Field("127.0.0.1", description="interface Voila listens on (0.0.0.0 in a pod)")
    port: int = Field(8866, ge=0, le=65535, description="Voila port")
    base_url: str = Field("/", description="URL prefix Voila serves under (behind a proxy)")
    notebook: Path = Field(
        REPO_ROOT / "voila_dashboards" / "live.ipynb", description="the dashboard notebook"
    )
    refresh_s: float = Field(
        5.0, ge=2, le=60, description="seconds between refreshes unless the page asks otherwise"
    )
    stale_after_s: float = Field(
        120.0, gt=0, description="seconds without a committed batch before data counts as stale"
    )
    recent_limit: int = Field(
        400, ge=10, le=5000, description="individual edits the scatter of recent edits shows"
    )
    cull_idle_s: int = Field(
        600, ge=0, description="Voila shuts down kernels idle this long (0: never)"
    )
    cull_interval_s: int = Field(60, ge=1, description="how often Voila looks for idle kernels")
    cull_connected: bool = Field(
        False, description="also cull idle kernels whose page is still open (a paused dashboard)"
    )
    preheat_kernels: int = Field(
        0, ge=0, le=8, description="kernels Voila keeps started and executed ahead (0: off)"
    )


class AlertSettings(_Section):
    """The alerting service (``wikipulse alerts run``): rules, cooldown and where alerts go."""

    topic: str = Field("wiki.alerts", description="Kafka topic every fired alert is published to")
    webhook_url: SecretStr | None = Field(
        None, description="Slack-compatible incoming-webhook URL alerts are POSTed to (unset: off)"
    )
    webhook_timeout_s: float = Field(
        5.0, gt=0, le=60, description="seconds a webhook POST may take before it counts as failed"
    )
    interval_s: float = Field(30.0, ge=1, description="seconds between two evaluations")
    cooldown_s: float = Field(
        900.0,
        ge=0,
        description="seconds after an alert before the same rule and key may fire again; "
        "also how long the dashboard shows an alert as open",
    )
    lookback_s: float = Field(
        600.0,
        ge=60,
        description="how far back (from the newest event time) an evaluation looks for new "
        "incidents: velocity windows and watchlist edits",
    )
    z_threshold: float = Field(
        4.0, gt=0, description="velocity spike: z-score of a window's events/s against baseline"
    )
    baseline_windows: int = Field(
        30,
        ge=2,
        description="velocity spike: one-minute windows before a window that form its baseline",
    )
    min_baseline_windows: int = Field(
        10, ge=2, description="velocity spike: windows with data the baseline needs at least"
    )
    min_events: int = Field(
        60, ge=1, description="velocity spike: events a window needs at least to count as a spike"
    )
    lag_threshold_s: float = Field(
        300.0, gt=0, description="pipeline lag: seconds since the newest committed batch"
    )
    event_lag_threshold_s: float = Field(
        900.0,
        ge=0,
        description="pipeline lag: seconds the newest event time may trail the clock "
        "(0: off, e.g. for replays of old events)",
    )

    @model_validator(mode="after")
    def _baseline_fits(self) -> AlertSettings:
        if self.min_baseline_windows > self.baseline_windows:
            raise ValueError("min_baseline_windows cannot exceed baseline_windows")
        return self


class StackSettings(_Section):
    """The local stack started by ``wikipulse stack up``."""

    state_dir: Path = Field(DEFAULT_STATE_DIR, description="data, logs and pid files")
    kafka_port: int = Field(9092, ge=0, le=65535, description="broker port (0 picks a free one)")
    kafka_controller_port: int = Field(9093, ge=0, le=65535, description="KRaft controller port")
    kafka_brokers: int = Field(1, ge=1, le=9, description="number of brokers to start")
    kafka_heap: str = Field("512m", description="broker JVM heap")
    postgres_bin: Path | None = Field(None, description="directory with initdb and postgres")
    postgres_os_user: str = Field(
        "postgres", description="OS user that runs PostgreSQL when wikipulse runs as root"
    )
    start_timeout_s: float = Field(90.0, gt=0, description="how long to wait for a service")


class Settings(BaseSettings):
    """All wikipulse settings; build once at an entry point with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="WIKI__",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        env_file=None,
    )

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    spark: SparkSettings = SparkSettings()
    jvm: JvmSettings = JvmSettings()
    lake: LakeSettings = LakeSettings()
    stream: StreamSettings = StreamSettings()
    producer: ProducerSettings = ProducerSettings()
    stack: StackSettings = StackSettings()
    retention: RetentionSettings = RetentionSettings()
    serving: ServingSettings = ServingSettings()
    dashboard: DashboardSettings = DashboardSettings()
    lab: LabSettings = LabSettings()
    alerts: AlertSettings = AlertSettings()

    @property
    def lake_path(self) -> Path:
        """The lake root, defaulting under the state directory."""
        return self.lake.path or self.stack.state_dir / "lake"

    @property
    def checkpoint_dir(self) -> Path:
        """The streaming checkpoint root, defaulting under the state directory."""
        return self.stream.checkpoint_dir or self.stack.state_dir / "checkpoints"

    @property
    def producer_state_file(self) -> Path:
        """Where the producer persists its last acknowledged event id."""
        return self.producer.state_file or self.stack.state_dir / "producer" / "last_event_id.json"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets replaced by ``**********``."""
        return json.loads(self.model_dump_json())

    def with_overrides(self, **sections: dict[str, Any]) -> Settings:
        """A copy with some section fields replaced (the model itself stays frozen)."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return Settings.model_validate(data)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment (``WIKI__...``); keyword sections win."""
    return Settings(**overrides)


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) plus the effective settings as
    ``WIKI__SECTION__FIELD``: what a child process (a pipeline part, a Voila kernel, a
    notebook kernel) needs to read exactly these settings."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith("WIKI__")
    }
    for section, values in settings.model_dump().items():
        for field, value in values.items():
            if value is None:
                continue
            if hasattr(value, "get_secret_value"):
                value = value.get_secret_value()
            env[f"WIKI__{section.upper()}__{field.upper()}"] = str(value)
    return env
