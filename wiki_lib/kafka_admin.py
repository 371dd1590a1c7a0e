"""Topic creation for the ingest path, so the tool never relies on broker auto-creation.

The raw topic gets the configured partitions, replication and ``min.insync.replicas`` (with
``acks=all`` that is what makes an acknowledged event survive a broker loss). The dead-letter
topic accepts larger records, because it carries a rejected payload base64-encoded. Raw
records carry the broker's append time: the stream job's deduplication horizon is measured in
it, so it must never run backwards, whatever clocks the producers have.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from wiki_lib.config import Settings
from wiki_lib.errors import SinkError

__all__ = [
    "DLQ_MAX_MESSAGE_BYTES",
    "OffsetReader",
    "TopicSpec",
    "admin_client",
    "delete_topics",
    "end_offsets",
    "ensure_ingest_topics",
    "ensure_topics",
    "ingest_topic_specs",
    "topic_max_message_bytes",
]

log = logging.getLogger(__name__)

DLQ_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""``max.message.bytes`` of the dead-letter topic: room for a base64 copy of a huge payload."""


@dataclass(frozen=True)
class TopicSpec:
    """How a topic is created (an existing topic is left as it is)."""

    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)


def admin_client(bootstrap: str, *, timeout_s: float = 30.0) -> KafkaAdminClient:
    """An admin client for ``bootstrap``, failing with a :class:`SinkError` that says where."""
    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap.split(","),
            client_id="wikipulse-admin",
            request_timeout_ms=int(timeout_s * 1000),
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise SinkError(f"cannot reach Kafka at {bootstrap} to manage topics: {exc}") from exc


def ingest_topic_specs(settings: Settings) -> dict[str, TopicSpec]:
    """The raw and dead-letter topics as the settings describe them."""
    kafka = settings.kafka
    isr = {"min.insync.replicas": str(min(kafka.min_insync_replicas, kafka.replication_factor))}
    return {
        kafka.topic_raw: TopicSpec(
            kafka.partitions,
            kafka.replication_factor,
            {**isr, "message.timestamp.type": "LogAppendTime"},
        ),
        kafka.topic_dlq: TopicSpec(
            1, kafka.replication_factor, {**isr, "max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}
        ),
    }


def ensure_topics(
    bootstrap: str, specs: Mapping[str, TopicSpec], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the missing topics of ``specs`` and wait for their leaders; return those created."""
    admin = admin_client(bootstrap, timeout_s=timeout_s)
    try:
        wanted = {
            name: {
                "num_partitions": spec.partitions,
                "replication_factor": spec.replication_factor,
                "configs": dict(spec.configs),
            }
            for name, spec in specs.items()
        }
        result = admin.create_topics(wanted, timeout_ms=int(timeout_s * 1000), raise_errors=False)
        created = []
        for topic in result["topics"]:
            error = for_code(topic["error_code"])
            if topic["error_code"] == 0:
                created.append(topic["name"])
            elif error is not TopicAlreadyExistsError:
                raise SinkError(
                    f"creating topic {topic['name']} on {bootstrap} failed: {error.__name__} "
                    f"{topic.get('error_message') or ''}".rstrip()
                )
        admin.wait_for_topics(list(specs), timeout_ms=int(timeout_s * 1000))
    except KafkaError as exc:
        raise SinkError(f"creating topics {sorted(specs)} on {bootstrap} failed: {exc}") from exc
    finally:
        admin.close()
    if created:
        log.info("created topics %s on %s", created, bootstrap)
    return created


def ensure_ingest_topics(settings: Settings) -> list[str]:
    """Create the raw and dead-letter topics if they do not exist yet."""
    return ensure_topics(settings.kafka.bootstrap, ingest_topic_specs(settings))


def topic_max_message_bytes(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """The effective ``max.message.bytes`` of each topic (topic override or broker default).

    The producer sizes records from it, because kafka-python's idempotent producer treats a
    record the broker refuses as too large as fatal for the whole client.
    """
    names = list(topics)
    admin = admin_client(bootstrap)
    try:
        result = admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, {"max.message.bytes": None})
                for name in names
            ],
            config_filter="all",
        )
        return {name: int(result["topic"][name]["max.message.bytes"]["value"]) for name in names}
    except (KafkaError, KeyError, ValueError) as exc:
        raise SinkError(
            f"reading max.message.bytes of {names} on {bootstrap} failed: {exc}"
        ) from exc
    finally:
        admin.close()


def delete_topics(bootstrap: str, names: Iterable[str]) -> None:
    """Delete topics (benchmarks clean up after themselves); missing ones are ignored."""
    admin = admin_client(bootstrap)
    try:
        admin.delete_topics(list(names), raise_errors=False)
    except KafkaError as exc:
        raise SinkError(f"deleting topics {list(names)} on {bootstrap} failed: {exc}") from exc
    finally:
        admin.close()


class OffsetReader:
    """Reads the end offsets of topics through one consumer connection, for repeated samples.

    A run monitor asks every two seconds; a new consumer each time meant a new connection,
    metadata fetch and group-less consumer setup per sample.
    """

    def __init__(self, bootstrap: str) -> None:
        from kafka import KafkaConsumer

        self.bootstrap = bootstrap
        try:
            self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        except (KafkaError, OSError) as exc:
            raise SinkError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc

    def ends(self, topic: str) -> dict[int, int]:
        """The next offset of every partition of ``topic`` (its record count when never
        trimmed); an unknown topic is empty."""
        from kafka import TopicPartition

        consumer = self._consumer
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in parts]) if parts else {}
        except KafkaError as exc:
            raise SinkError(
                f"reading end offsets of {topic} on {self.bootstrap} failed: {exc}"
            ) from exc
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    def close(self) -> None:
        """Close the connection."""
        self._consumer.close()

    def __enter__(self) -> OffsetReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset of every partition of ``topic``, read once (see :class:`OffsetReader`).

    Lag figures compare these with what a consumer has processed; an unknown topic is empty.
    """
    with OffsetReader(bootstrap) as reader:
        return reader.ends(topic)
