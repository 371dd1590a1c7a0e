"""Topic administration and offsets against the real broker."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from wiki_lib.config import Settings
from wiki_lib.kafka_admin import OffsetReader, TopicSpec, delete_topics, end_offsets, ensure_topics

pytestmark = pytest.mark.integration


def test_one_offset_reader_follows_a_topic_as_it_grows(
    settings: Settings, unique: Callable[[str], str]
) -> None:
    bootstrap = settings.kafka.bootstrap
    topic = unique("offsets")
    ensure_topics(bootstrap, {topic: TopicSpec(3, 1)})
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    sent: Counter[int] = Counter()
    try:
        with OffsetReader(bootstrap) as reader:
            assert reader.ends(topic) == {0: 0, 1: 0, 2: 0}
            assert reader.ends(unique("missing")) == {}
            for round_, count in enumerate((7, 25)):
                for i in range(count):
                    meta = producer.send(topic, b"%d-%d" % (round_, i), partition=i % 3).get(30)
                    sent[meta.partition] += 1
                assert reader.ends(topic) == dict(sent)  # the same connection sees new records
        assert end_offsets(bootstrap, topic) == dict(sent) == {0: 12, 1: 10, 2: 10}
    finally:
        producer.close()
        delete_topics(bootstrap, [topic])
