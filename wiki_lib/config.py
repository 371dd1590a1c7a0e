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

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "REPO_ROOT",
    "STREAMING_DIR",
    "JvmSettings",
    "KafkaSettings",
    "LakeSettings",
    "PostgresSettings",
    "ProducerSettings",
    "Settings",
    "SparkSettings",
    "StackSettings",
    "StreamSettings",
    "load_settings",
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
    shuffle_partitions: int = Field(4, ge=1, description="spark.sql.shuffle.partitions")
    driver_memory: str = Field("1g", description="spark.driver.memory")
    ui_port: int = Field(4040, ge=0, le=65535, description="Spark UI port (0 disables the UI)")
    local_dir: Path | None = Field(None, description="spark.local.dir (default: state dir)")
    log_level: str = Field("WARN", description="Spark log level")


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
    linger_ms: int = Field(20, ge=0, description="Kafka producer linger.ms")
    batch_size: int = Field(256 * 1024, ge=1, description="Kafka producer batch.size (bytes)")
    compression: str = Field("lz4", description="Kafka compression type")


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
