"""Ingest against a real broker and real HTTP: exactness, resume, crashes, outages, bad input."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from support import read_topic

from wiki_lib.config import Settings
from wiki_lib.errors import ConfigError, ValidationError
from wiki_lib.events import validate
from wiki_lib.kafka_admin import TopicSpec, ensure_topics
from wiki_lib.producer import IngestProducer, IngestStats, ResumeState, decode_dead_letter
from wiki_lib.sources import ReplaySource, Source, SSESource, SyntheticSource, read_records
from wiki_lib.testing import SSEServer

pytestmark = pytest.mark.integration

UA = "wikipulse-tests/1 (contact: tests@example.org)"


@pytest.fixture
def ingest_settings(settings: Settings, unique: Callable[[str], str], tmp_path: Path) -> Settings:
    """The session stack with this test's own topics and resume state."""
    return settings.with_overrides(
        kafka={"topic_raw": unique("raw"), "topic_dlq": unique("dlq"), "partitions": 3},
        producer={"state_file": str(tmp_path / "state.json"), "linger_ms": 5},
    )


def event_ids(records: list[ConsumerRecord]) -> Counter[str]:
    return Counter(json.loads(r.value)["meta"]["id"] for r in records)


def valid_payloads(payloads: list[bytes | None]) -> list[bytes]:
    """What the raw topic must hold: the valid, non-canary payloads."""
    kept = []
    for data in payloads:
        if data is None:
            continue
        try:
            if not validate(data).is_canary:
                kept.append(data)
        except ValidationError:
            continue
    return kept


class Background:
    """A producer run in a thread, so the test can watch, break things, and stop it."""

    def __init__(self, producer: IngestProducer, source: Source) -> None:
        self.producer = producer
        self.result: IngestStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(source,), daemon=True)
        self.thread.start()

    def _run(self, source: Source) -> None:
        try:
            self.result = self.producer.run(source, progress=False)
        except BaseException as exc:
            self.error = exc

    def wait_for(self, condition: Callable[[IngestStats], bool], timeout_s: float) -> IngestStats:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stats = self.producer.stats()
            if condition(stats):
                return stats
            assert self.thread.is_alive(), f"producer ended early: {self.error!r}"
            time.sleep(0.05)
        raise AssertionError(f"timed out; counters: {self.producer.stats()}")

    def stop(self, timeout_s: float = 120) -> IngestStats:
        self.producer.stop()
        return self.join(timeout_s)

    def join(self, timeout_s: float = 120) -> IngestStats:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "producer did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def test_replay_of_every_recording_holds_exactly_the_valid_events(
    ingest_settings: Settings, data_dir: Path
) -> None:
    source = ReplaySource([data_dir / "recentchange", str(data_dir / "sse" / "*.sse")])
    payloads = [None if r.defect else r.data for _, r in source.records()]
    expected = valid_payloads(payloads)
    with IngestProducer(ingest_settings) as producer:
        stats = producer.run(source, progress=False)
    kafka = ingest_settings.kafka
    raw = read_topic(kafka.bootstrap, kafka.topic_raw)
    assert Counter(r.value for r in raw) == Counter(expected)
    assert len(raw) == len(expected) == stats.produced == 5087 + 1950 + 341 + 62 + 3
    for record in raw[:200]:
        assert record.key == json.loads(record.value)["wiki"].encode()
        headers = dict(record.headers)
        assert headers["source"] == b"replay"
        assert abs(int(headers["ingest_ts"]) / 1000 - time.time()) < 600
    dead = [decode_dead_letter(r.value) for r in read_topic(kafka.bootstrap, kafka.topic_dlq)]
    assert [d["reason"] for d in dead] == ["sse_no_data"]
    assert dead[0]["position"].endswith("wiki_recentchange_2021-09-30.sse#63")
    assert (stats.invalid, stats.dead_lettered, stats.canaries, stats.failed) == (1, 1, 0, 0)


def test_cut_every_50_events_loses_nothing(
    ingest_settings: Settings, data_dir: Path, record_property: Callable[[str, Any], None]
) -> None:
    server = SSEServer.from_files([data_dir / "recentchange"], cut_every=50, retry_ms=10)
    corpus = Counter(json.loads(p)["meta"]["id"] for p in server.payloads if p)
    last = server.event_id(len(server.payloads) - 1)
    with server, IngestProducer(ingest_settings) as producer:
        run = Background(producer, SSESource(server.url, user_agent=UA))
        run.wait_for(lambda s: s.last_position == last, timeout_s=180)
        stats = run.stop()
    raw = event_ids(read_topic(ingest_settings.kafka.bootstrap, ingest_settings.kafka.topic_raw))
    assert set(raw) == set(corpus)
    duplicates = sum((raw - corpus).values())
    record_property("duplicates", duplicates)
    print(f"cut-every-50: {stats.reconnects} reconnects, {duplicates} duplicate(s) beyond corpus")
    assert stats.reconnects >= len(server.payloads) // 50
    assert stats.failed == 0


def _producer_cmd() -> list[str]:
    """The ``produce`` command in a child process (its own parser, so no cli wiring needed)."""
    code = (
        "import argparse, sys\n"
        "from wiki_lib.commands import ingest\n"
        "from wiki_lib.commands._common import settings_from_args\n"
        "parser = argparse.ArgumentParser()\n"
        "ingest.register(parser.add_subparsers())\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.handler(args, settings_from_args(args)))\n"
    )
    return [sys.executable, "-c", code, "produce", "live", "--no-progress"]


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill_9_then_restart_resumes_from_the_persisted_id(
    ingest_settings: Settings,
    data_dir: Path,
    tmp_path: Path,
    record_property: Callable[[str, Any], None],
) -> None:
    server = SSEServer.from_files([data_dir / "recentchange"], rate=800, retry_ms=10)
    n = len(server.payloads)
    state = ResumeState(ingest_settings.producer_state_file, server.url)
    kafka = ingest_settings.kafka
    env = {
        **os.environ,
        "WIKI__KAFKA__BOOTSTRAP": kafka.bootstrap,
        "WIKI__KAFKA__TOPIC_RAW": kafka.topic_raw,
        "WIKI__KAFKA__TOPIC_DLQ": kafka.topic_dlq,
        "WIKI__PRODUCER__URL": server.url,
        "WIKI__PRODUCER__USER_AGENT": UA,
        "WIKI__PRODUCER__STATE_FILE": str(ingest_settings.producer_state_file),
        "WIKI__STACK__STATE_DIR": str(tmp_path),
    }
    with server:
        first = subprocess.Popen(_producer_cmd(), env=env, stderr=subprocess.DEVNULL)
        try:
            _wait(lambda: server.events_sent >= n // 3 and state.load() is not None, 60, "start")
        finally:
            first.kill()
            first.wait(30)
        persisted = state.load()
        assert persisted is not None
        resumed_at = json.loads(persisted)[0]["offset"] + 1
        assert 0 < resumed_at < n
        requests_before = len(server.requests)

        second = subprocess.Popen(
            _producer_cmd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            _wait(lambda: state.load() == server.event_id(n - 1), 120, "the last event acked")
        finally:
            second.send_signal(signal.SIGTERM)
            out, _ = second.communicate(timeout=60)
        assert second.returncode == 0
        restart = server.requests[requests_before]
        assert restart.last_event_id == persisted
        assert restart.start == resumed_at
        stats = json.loads(out)
        assert stats["received"] == n - resumed_at

    raw = event_ids(read_topic(kafka.bootstrap, kafka.topic_raw))
    corpus = Counter(json.loads(p)["meta"]["id"] for p in server.payloads if p)
    assert set(raw) == set(corpus)
    duplicates = sum((raw - corpus).values())
    record_property("duplicates", duplicates)
    print(f"kill -9 at event {resumed_at} of {n}: {duplicates} duplicate(s) after restart")


def test_broker_restart_during_production_loses_nothing(
    ingest_settings: Settings, stack: Any
) -> None:
    count = 12_000
    start = datetime(2025, 1, 1, tzinfo=UTC)
    source = SyntheticSource(count, seed=99, start=start, rate=1000, speed=1)
    expected = {
        json.loads(r.data)["meta"]["id"] for r in SyntheticSource(count, seed=99, start=start)
    }
    with IngestProducer(ingest_settings, delivery_timeout_s=120) as producer:
        run = Background(producer, source)
        run.wait_for(lambda s: s.produced >= 1500, timeout_s=60)
        stack.kafka.stop_broker(1)
        time.sleep(3)
        during = producer.stats()
        stack.kafka.start_broker(1)
        stats = run.join(timeout_s=300)
    assert during.in_flight > 1000, "the outage did not hold anything back"
    assert stats.received == stats.produced == count
    assert stats.failed == 0
    kafka = ingest_settings.kafka
    raw = event_ids(read_topic(kafka.bootstrap, kafka.topic_raw))
    assert set(raw) == expected
    print(f"broker restart: {sum(raw.values()) - count} duplicate(s)")


def _bad_inputs(good: list[bytes]) -> list[tuple[bytes | None, str]]:
    obj = json.loads(good[0])
    missing = json.loads(good[1])
    del missing["meta"]["id"]
    wrong = json.loads(good[2])
    wrong["namespace"] = "0"
    huge = dict(obj, comment="x" * (1024 * 1024))
    canary = json.loads(good[3])
    canary["meta"]["domain"] = "canary"
    return [
        (good[4][: len(good[4]) // 2], "invalid_json"),
        (good[5].replace(b'"title":"', b'"title":"\xff\xfe\xc3', 1), "not_utf8"),
        (json.dumps(missing).encode(), "missing_field:meta.id"),
        (json.dumps(wrong).encode(), "wrong_type:namespace"),
        (json.dumps(huge).encode(), "too_large"),
        (None, "sse_no_data"),
        (b'["a", "list"]', "not_object"),
        (json.dumps(canary).encode(), "canary"),
    ]


def test_bad_input_goes_to_the_dead_letter_topic_and_the_rest_is_delivered(
    ingest_settings: Settings, data_dir: Path
) -> None:
    good = [
        r.data
        for r in read_records(
            data_dir / "recentchange" / "kirajano_wiki-streams__wiki_recentchange_2021-09-10.jsonl"
        )
    ]
    bad = _bad_inputs(good)
    payloads: list[bytes | None] = []
    for i, (data, _) in enumerate(bad):
        payloads.extend(good[20 * i + 10 : 20 * (i + 1) + 10])
        payloads.append(data)
    payloads.extend(good[200:220])
    server = SSEServer(payloads)
    last = server.event_id(len(payloads) - 1)
    with server, IngestProducer(ingest_settings) as producer:
        run = Background(producer, SSESource(server.url, user_agent=UA))
        run.wait_for(lambda s: s.last_position == last, timeout_s=60)
        assert run.thread.is_alive()
        stats = run.stop()

    kafka = ingest_settings.kafka
    raw = read_topic(kafka.bootstrap, kafka.topic_raw)
    assert Counter(r.value for r in raw) == Counter(valid_payloads(payloads))
    assert len(raw) == 20 * len(bad) + 20
    dead = [decode_dead_letter(r.value) for r in read_topic(kafka.bootstrap, kafka.topic_dlq)]
    invalid = [(data, reason) for data, reason in bad if reason != "canary"]
    assert [d["reason"] for d in dead] == [reason for _, reason in invalid]
    for record, (data, reason) in zip(dead, invalid, strict=True):
        index = payloads.index(data)
        assert record["position"] == server.event_id(index), reason
        assert record["source"] == "live"
        if data is None:
            assert record["original"] == server.frame(index)
        else:
            assert record["original"] == data
            assert record["size"] == len(data)
    assert stats.canaries == 1
    assert stats.invalid == stats.dead_lettered == len(invalid)
    assert stats.invalid_reasons["too_large"] == 1


def test_a_small_pre_existing_dead_letter_topic_gets_a_cut_copy_that_fits(
    ingest_settings: Settings,
) -> None:
    kafka = ingest_settings.kafka
    ensure_topics(
        kafka.bootstrap, {kafka.topic_dlq: TopicSpec(1, 1, {"max.message.bytes": "100000"})}
    )
    payload = b'{"comment": "' + os.urandom(150_000).hex().encode() + b'"'
    with IngestProducer(ingest_settings) as producer, SSEServer([payload]) as server:
        run = Background(producer, SSESource(server.url, user_agent=UA))
        run.wait_for(lambda s: s.dead_lettered == 1, timeout_s=60)
        stats = run.stop()
    (record,) = [decode_dead_letter(r.value) for r in read_topic(kafka.bootstrap, kafka.topic_dlq)]
    assert record["reason"] == "invalid_json"
    assert record["truncated"] is True
    assert record["size"] == len(payload)
    assert payload.startswith(record["original"])
    assert stats.failed == 0


def test_batches_fit_a_raw_topic_with_a_small_message_limit(
    ingest_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = ingest_settings.kafka
    ensure_topics(
        kafka.bootstrap, {kafka.topic_raw: TopicSpec(1, 1, {"max.message.bytes": "150000"})}
    )
    events = 3_000
    caplog.set_level(logging.WARNING, logger="kafka")
    with IngestProducer(ingest_settings, log_interval_s=3600) as producer:
        assert producer.batch_size < 150_000 < ingest_settings.producer.batch_size
        stats = producer.run(SyntheticSource(events, seed=5), progress=False)
    assert stats.produced == events and stats.failed == 0
    assert len(read_topic(kafka.bootstrap, kafka.topic_raw)) == events
    assert not [r for r in caplog.records if "splitting batch" in r.getMessage()]


def _cli_env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    kafka = settings.kafka
    return {
        **os.environ,
        "WIKI__KAFKA__BOOTSTRAP": kafka.bootstrap,
        "WIKI__KAFKA__TOPIC_RAW": kafka.topic_raw,
        "WIKI__KAFKA__TOPIC_DLQ": kafka.topic_dlq,
        "WIKI__PRODUCER__STATE_FILE": str(settings.producer_state_file),
        "WIKI__STACK__STATE_DIR": str(tmp_path),
        **extra,
    }


def _produce_cli(env: dict[str, str], *args: str) -> dict[str, Any]:
    cmd = [*_producer_cmd()[:3], "produce", *args, "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats: dict[str, Any] = json.loads(proc.stdout)
    return stats


def test_cli_replay_with_filters_sends_only_matching_events(
    ingest_settings: Settings, data_dir: Path, tmp_path: Path
) -> None:
    path = data_dir / "recentchange" / "kirajano_wiki-streams__recentchange_2021-08-27.jsonl"
    lines = [r.data for r in read_records(path)]
    wanted = [
        line
        for line in lines
        if json.loads(line)["type"] in {"edit", "new"} and not json.loads(line)["bot"]
    ]
    env = _cli_env(ingest_settings, tmp_path, WIKIPULSE_PRODUCE_FILTER_BOTS="exclude")
    stats = _produce_cli(env, f"replay:{path}", "--filter-type", "edit,new")
    assert stats["received"] == len(lines)
    assert stats["produced"] == len(wanted)
    assert stats["filtered"] == len(lines) - len(wanted)
    kafka = ingest_settings.kafka
    raw = read_topic(kafka.bootstrap, kafka.topic_raw)
    assert Counter(r.value for r in raw) == Counter(wanted)


def test_cli_synthetic_run(ingest_settings: Settings, tmp_path: Path) -> None:
    stats = _produce_cli(_cli_env(ingest_settings, tmp_path), "synth:3000", "--seed", "5")
    assert stats["received"] == stats["produced"] == 3000
    raw = read_topic(ingest_settings.kafka.bootstrap, ingest_settings.kafka.topic_raw)
    assert len(event_ids(raw)) == 3000


def test_cli_serve_sse_and_produce_live(
    ingest_settings: Settings, data_dir: Path, tmp_path: Path
) -> None:
    serve = [*_producer_cmd()[:3], "serve-sse", str(data_dir / "sse" / "*.sse"), "--port", "0"]
    server = subprocess.Popen(serve, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        banner = server.stderr.readline()
        url = banner.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:"), banner
        env = _cli_env(ingest_settings, tmp_path, WIKI__PRODUCER__URL=url)
        stats = _produce_cli(env, "live", "--max-events", "100")
        assert stats["received"] == stats["produced"] == 100
        assert stats["last_position"] == json.dumps(
            [{"topic": "local.mediawiki.recentchange", "partition": 0, "offset": 99}],
            separators=(",", ":"),
        )
        again = _produce_cli(env, "live", "--max-events", "10")
        assert json.loads(again["last_position"])[0]["offset"] == 109
        assert (
            ResumeState(ingest_settings.producer_state_file, url).load() == again["last_position"]
        )
    finally:
        server.terminate()
        server.wait(30)


def test_resume_state_is_replaced_atomically_and_belongs_to_one_url(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "state.json"
    state = ResumeState(path, "http://a/stream")
    assert state.load() is None
    state.save('[{"offset":1}]')
    state.save('[{"offset":2}]')
    assert state.load() == '[{"offset":2}]'
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]
    assert ResumeState(path, "http://b/stream").load() is None
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        state.load()
