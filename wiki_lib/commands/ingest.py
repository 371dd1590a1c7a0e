"""Ingest commands: ``produce`` (a source into Kafka) and ``serve-sse`` (a local EventStreams)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wiki_lib.commands._common import add_command, plain_flag, print_json, setting_flag
from wiki_lib.config import Settings
from wiki_lib.producer import (
    EventFilter,
    IngestProducer,
    freeze_startup_heap,
    resume_state,
    source_from_spec,
)
from wiki_lib.sources import DEFAULT_CORPUS, Source

__all__ = ["build_source", "register"]

log = logging.getLogger(__name__)


def _csv(convert: Callable[[str], Any]) -> Callable[[str], frozenset[Any]]:
    def parse(text: str) -> frozenset[Any]:
        return frozenset(convert(part.strip()) for part in text.split(",") if part.strip())

    return parse


def build_source(spec: str, args: argparse.Namespace, settings: Settings) -> Source:
    """The source of ``--source`` with the source flags of ``args``."""
    return source_from_spec(
        spec,
        settings,
        speed=args.speed,
        loop=args.loop,
        since=args.since,
        seed=args.seed,
        rate=args.rate,
        corpus=args.corpus,
        resume=not args.from_start,
    )


def _produce(args: argparse.Namespace, settings: Settings) -> int:
    source = build_source(args.source, args, settings)
    filters = EventFilter(
        types=args.filter_type,
        wikis=args.filter_wiki,
        namespaces=args.filter_namespace,
        bots=args.filter_bots,
    )
    producer = IngestProducer(
        settings,
        filters=filters,
        strict=args.strict,
        state=resume_state(args.source, settings),
        create_topics=not args.no_create_topics,
        log_interval_s=args.log_interval,
    )
    previous = signal.signal(signal.SIGTERM, lambda *_: producer.stop())
    freeze_startup_heap()
    try:
        with producer:
            try:
                stats = producer.run(
                    source, max_events=args.max_events, progress=False if args.no_progress else None
                )
            except KeyboardInterrupt:
                stats = producer.stats()
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_json(stats.to_dict())
    return 0


def _serve_sse(args: argparse.Namespace, settings: Settings) -> int:
    from wiki_lib.testing import SSEServer

    server = SSEServer.from_files(
        args.files,
        host=args.host,
        port=args.port,
        cut_every=args.cut_every,
        cut_after_s=args.cut_after,
        stall_after=args.stall_after,
        stall_s=args.stall_seconds,
        malformed_every=args.malformed_every,
        malformed=args.malformed,
        status=args.status,
        status_count=args.status_count,
        retry_ms=args.retry_ms,
        rate=args.rate,
    )
    print(f"serving {len(server.payloads)} events at {server.url}", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _register_produce(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "produce", _produce, "Ingest events from a source into Kafka.")
    p.add_argument(
        "source",
        help="live (EventStreams), replay:GLOB[,GLOB...] (.jsonl/.sse recordings) or synth:N",
    )
    setting_flag(p, "--bootstrap", "kafka.bootstrap", "Kafka bootstrap servers")
    setting_flag(p, "--topic", "kafka.topic_raw", "topic of the raw events")
    setting_flag(p, "--dlq-topic", "kafka.topic_dlq", "dead-letter topic")
    setting_flag(p, "--partitions", "kafka.partitions", "partitions of created topics", type=int)
    setting_flag(p, "--replication-factor", "kafka.replication_factor", "replication", type=int)
    setting_flag(p, "--url", "producer.url", "EventStreams URL (live)")
    setting_flag(p, "--user-agent", "producer.user_agent", "User-Agent with a contact (live)")
    setting_flag(p, "--state-file", "producer.state_file", "resume state (live; replays beside it)")
    setting_flag(p, "--linger-ms", "producer.linger_ms", "Kafka linger.ms", type=int)
    setting_flag(p, "--batch-size", "producer.batch_size", "Kafka batch.size", type=int)
    setting_flag(p, "--compression", "producer.compression", "Kafka compression (lz4, none...)")
    cmd = "produce"
    plain_flag(p, cmd, "--since", "live: start at this ISO time or epoch-ms (EventStreams since)")
    plain_flag(
        p, cmd, "--speed", "pacing: 1 = original, 10 = 10x, 0 = unpaced", type=float, default=0.0
    )
    plain_flag(p, cmd, "--loop", "replay: start again at the end", action="store_true")
    plain_flag(
        p,
        cmd,
        "--from-start",
        "replay: ignore the saved position and send every record again",
        action="store_true",
    )
    plain_flag(p, cmd, "--seed", "synth: random seed (default: random, logged)", type=int)
    plain_flag(p, cmd, "--rate", "synth: events per second of event time", type=float, default=50.0)
    plain_flag(p, cmd, "--corpus", "synth: recordings to resample", default=str(DEFAULT_CORPUS))
    plain_flag(p, cmd, "--max-events", "stop after this many records", type=int)
    plain_flag(p, cmd, "--filter-type", "only these types (edit,new,...)", type=_csv(str))
    plain_flag(p, cmd, "--filter-wiki", "only these wikis (enwiki,...)", type=_csv(str))
    plain_flag(p, cmd, "--filter-namespace", "only these namespaces (0,1,...)", type=_csv(int))
    plain_flag(
        p,
        cmd,
        "--filter-bots",
        "bot events: include, exclude or only",
        choices=["include", "exclude", "only"],
        default="include",
    )
    plain_flag(p, cmd, "--strict", "also check the official JSON Schema", action="store_true")
    plain_flag(p, cmd, "--no-create-topics", "do not create the topics", action="store_true")
    plain_flag(p, cmd, "--no-progress", "no progress bar", action="store_true")
    plain_flag(p, cmd, "--log-interval", "seconds between counter logs", type=float, default=30.0)


def _register_serve_sse(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "serve-sse", _serve_sse, "Serve recordings as a local EventStreams.")
    p.add_argument("files", nargs="+", type=Path, help=".jsonl or .sse recordings (globs ok)")
    cmd = "serve_sse"
    plain_flag(p, cmd, "--host", "listen address", default="127.0.0.1")
    plain_flag(p, cmd, "--port", "listen port (0 = a free one)", type=int, default=8765)
    plain_flag(p, cmd, "--rate", "events per second (default: as fast as possible)", type=float)
    plain_flag(p, cmd, "--cut-every", "drop each connection after N events", type=int)
    plain_flag(p, cmd, "--cut-after", "drop each connection after T seconds", type=float)
    plain_flag(p, cmd, "--stall-after", "go silent after N events per connection", type=int)
    plain_flag(p, cmd, "--stall-seconds", "how long a stall lasts", type=float, default=30.0)
    plain_flag(p, cmd, "--malformed-every", "add a broken frame after every Nth event", type=int)
    plain_flag(
        p,
        cmd,
        "--malformed",
        "kind of broken frame",
        choices=["no_data", "truncated_json", "not_utf8", "not_object"],
        default="no_data",
    )
    plain_flag(p, cmd, "--status", "answer requests with this HTTP status", type=int)
    plain_flag(p, cmd, "--status-count", "only the first N requests get --status", type=int)
    plain_flag(p, cmd, "--retry-ms", "SSE retry: field to send", type=int)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``produce`` and ``serve-sse``."""
    _register_produce(sub)
    _register_serve_sse(sub)
